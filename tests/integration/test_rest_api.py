"""The REST API over real HTTP, on Ray Serve, against a running simulation."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import ray
import schemathesis
from hypothesis import HealthCheck, given, settings

from gtx_ray.errors import ConfigError
from gtx_ray.runtime import plan_layout, start_simulation
from gtx_ray.serve.api import start_rest_api, stop_rest_api
from gtx_ray.serve.views import rfc3339
from gtx_ray.settings import Settings
from gtx_ray.storage.parquet import read_readings
from tests.conftest import CAMPUS_CONFIG

TOKEN = "test-admin-token"
DASHBOARD = "http://dashboard.example:8080"  # in the API's allow-list (API_CORS_ORIGINS)
EVIL = "http://evil.example"
START = 1_735_664_400  # 2025-01-01 00:00 Bangkok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def request(
        self,
        path: str,
        body: dict | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ):
        headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path,
            data=data,
            headers=headers,
            method=method or ("POST" if body is not None else "GET"),
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def json(self, path: str, body: dict | None = None, token: str | None = None):
        status, _, raw = self.request(path, body, token)
        return status, json.loads(raw) if raw else None

    def control(self, **body):
        return self.json("/api/simulation", body, TOKEN)


@pytest.fixture(scope="module")
def running(ray_runtime, tmp_path_factory):
    """The campus at 1 hour of simulated time per second, paused before its first interval."""
    data = tmp_path_factory.mktemp("rest") / "data"
    settings = Settings(
        config_file=CAMPUS_CONFIG,
        influxdb_enabled=False,
        start_s=START,
        interval_s=900,
        speed=3600.0,
        data_dir=data,
        namespace="gtx_ray_tests",
        admin_token=TOKEN,
        api_cors_origins=(DASHBOARD,),
    )
    simulation = start_simulation(settings)
    ray.get(simulation.clock.pause.remote())
    port = _free_port()
    api = Api(port)
    try:
        app_name = start_rest_api(simulation.settings, simulation.layout, "127.0.0.1", port, TOKEN)
    except BaseException:  # leave no simulation behind for the next module
        simulation.stop()
        simulation.finish()
        raise
    try:
        deadline = time.monotonic() + 60
        while api.json("/api/simulation")[0] != 200:  # its background refresh saw the clock
            assert time.monotonic() < deadline, "the API never saw the simulation"
            time.sleep(0.2)
        yield simulation, api, settings
    finally:
        stop_rest_api(app_name)
        simulation.stop()
        simulation.finish()


def _wait_stored(simulation, rows: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        status = simulation.status()
        if status and status["storage"]["rows_stored"] >= rows:
            return
        assert time.monotonic() < deadline, "not enough readings stored"
        time.sleep(0.2)


def _pause_and_settle(simulation, api) -> None:
    """Make sure readings exist, pause, let in-flight windows land, let the snapshot catch up."""
    api.control(action="resume")
    _wait_stored(simulation, 25 * 8)
    api.control(action="pause")
    deadline = time.monotonic() + 60
    while True:  # every interval received is stored, nothing is in flight
        status = simulation.status()
        storage = status["storage"]
        if not status["clock"]["windows_in_flight"] and storage["stored_until_s"] > (
            storage["latest_interval_s"] or 0
        ):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.2)  # the API's live view refreshes every 0.5 s


def test_before_the_first_interval(running):
    _, api, _ = running
    status, body = api.json("/api/readings")
    assert (status, body) == (200, [])
    status, body = api.json("/api/campus/summary")
    assert status == 503 and "no readings yet" in body["error"]
    status, body = api.json("/health")
    assert status == 503 and body["status"] == "unhealthy" and "paused" in body["reason"]
    status, body = api.json("/api/meters/AMI_METER_UTCC_001/reading")
    assert status == 503 and body["status"] == 503


def test_control_needs_the_admin_token(running):
    _, api, _ = running
    status, body = api.json("/api/simulation", {"action": "resume"})
    assert status == 403 and "token" in body["error"]
    status, body = api.json("/api/simulation", {"action": "resume"}, token="wrong")
    assert status == 403
    status, body = api.json("/api/simulation", {"speed": -3}, token=TOKEN)
    assert status == 422
    status, body = api.json("/api/simulation", {"speed": "inf"}, token=TOKEN)
    assert status == 422 and "finite" in body["error"]
    status, body = api.json("/api/simulation", {"action": "explode"}, token=TOKEN)
    assert status == 422 and "action" in body["error"]


def _paused(api) -> bool:
    status, clock = api.json("/api/simulation")
    assert status == 200, clock
    return clock["paused"]


def test_other_sites_pages_cannot_control_or_read_admin(running):
    """A page of another site, open in the operator's browser, sends its Origin (or, for a
    no-cors GET, only Sec-Fetch-Site): refused even with a token, and the clock is untouched."""
    _, api, _ = running
    paused = _paused(api)
    flip = {"action": "resume" if paused else "pause"}
    for headers in (
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # e.g. another app on another port of this host
        {
            "Origin": f"http://rebound.example:{api.base.rsplit(':', 1)[1]}",
            "Host": f"rebound.example:{api.base.rsplit(':', 1)[1]}",
        },  # DNS rebinding
    ):
        status, response_headers, raw = api.request("/api/simulation", flip, TOKEN, headers)
        body = json.loads(raw)
        assert (status, body["status"]) == (403, 403), headers
        assert "may not use this endpoint" in body["error"]
        assert "Access-Control-Allow-Origin" not in response_headers
        status, _, raw = api.request("/api/ieee2030_5/admin/devices", None, TOKEN, headers)
        assert status == 403 and json.loads(raw)["status"] == 403, headers
        status, _, _ = api.request(
            "/api/ieee2030_5/admin/devices/1", None, TOKEN, headers, method="DELETE"
        )
        assert status == 403, headers
    assert _paused(api) is paused

    # preflights of protected routes grant nothing to other origins
    for path, method in (
        ("/api/simulation", "POST"),
        ("/api/ieee2030_5/admin/devices", "GET"),
        ("/api/ieee2030_5/admin/rates", "PUT"),
        ("/api/readings", "DELETE"),
    ):
        status, headers, raw = api.request(
            path,
            headers={
                "Origin": EVIL,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization, content-type",
            },
            method="OPTIONS",
        )
        assert status == 403 and json.loads(raw)["status"] == 403, path
        assert not any(h.lower().startswith("access-control-allow") for h in headers), path


def test_own_origin_allow_list_and_scripts_may_control(running):
    _, api, _ = running
    own = api.base  # http://127.0.0.1:PORT, as a page the API served would send it
    paused = _paused(api)
    flip, back = ({"action": "resume"}, {"action": "pause"})
    if not paused:
        flip, back = back, flip
    headers = {"Origin": own, "Sec-Fetch-Site": "same-origin"}
    status, _, raw = api.request("/api/simulation", flip, TOKEN, headers)
    assert status == 200 and json.loads(raw)["paused"] is (not paused)
    status, headers, raw = api.request("/api/simulation", back, TOKEN, {"Origin": DASHBOARD})
    assert status == 200 and json.loads(raw)["paused"] is paused
    assert headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert "Origin" in headers["Vary"]
    status, _, _ = api.request("/api/ieee2030_5/admin/devices", None, TOKEN, {"Origin": own})
    assert status == 404  # allowed through; this run has no 2030.5 server
    status, _, _ = api.request("/api/ieee2030_5/admin/devices", None, TOKEN)  # curl-style
    assert status == 404
    status, _, _ = api.request("/api/ieee2030_5/admin/devices")  # no token: still refused
    assert status == 403
    for origin in (own, DASHBOARD):
        status, headers, _ = api.request(
            "/api/simulation",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            method="OPTIONS",
        )
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
    # public reads stay open to every dashboard
    status, headers, _ = api.request("/api/simulation", headers={"Origin": EVIL})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"


def test_live_endpoints_while_running(running, campus):
    simulation, api, _ = running
    status, body = api.control(action="resume")
    assert status == 200 and body["paused"] is False
    _wait_stored(simulation, 25 * 8)
    time.sleep(1.2)
    status, health = api.json("/health")
    assert status == 200, health
    assert health["status"] == "healthy" and health["meters_active"] == 25
    assert health["campus"] == "UTCC"

    status, meters = api.json("/api/meters")
    assert status == 200 and len(meters) == 25
    by_id = {m["meter_id"]: m for m in meters}
    gym = by_id["AMI_METER_UTCC_022"]
    assert gym["type"] == "hybrid_prosumer" and gym["has_solar"] and gym["has_battery"]
    assert gym["capacity_kw"] == 400 and gym["phase_type"] == "three_phase"
    assert 0 <= gym["battery_level"] <= 100
    assert by_id["AMI_METER_UTCC_001"]["has_solar"] is False
    assert by_id["AMI_METER_UTCC_001"]["battery_level"] is None
    assert {m["meter_id"] for m in meters} == {m.meter_id for m in campus.meters}


def test_values_match_storage_and_summary_adds_up(running):
    simulation, api, settings = running
    _pause_and_settle(simulation, api)
    status, readings = api.json("/api/readings")
    assert status == 200 and len(readings) == 25
    expected_keys = {
        "meter_id",
        "timestamp",
        "building",
        "floor",
        "meter_type",
        "phase_type",
        "energy_consumed",
        "energy_generated",
        "voltage",
        "current",
        "power_factor",
        "battery_level",
        "solar_generation",
        "grid_feed_in",
        "temperature",
        "humidity",
        "energy_import_kwh",
        "energy_export_kwh",
        "import_register_kwh",
        "export_register_kwh",
    }
    assert expected_keys <= set(readings[0])

    stored = read_readings(settings.data_dir).to_pylist()
    by_key = {(r["meter_id"], rfc3339(r["timestamp"].timestamp())): r for r in stored}
    for reading in readings:
        source = by_key[(reading["meter_id"], reading["timestamp"])]
        for field in (
            "energy_consumed",
            "voltage",
            "current",
            "import_register_kwh",
            "battery_level",
            "solar_generation",
        ):
            assert reading[field] == source[field], field
        status, single = api.json(f"/api/meters/{reading['meter_id']}/reading")
        assert status == 200 and single == reading

    status, summary = api.json("/api/campus/summary")
    assert status == 200
    assert summary["total_meters"] == 25
    assert summary["total_consumption"] == pytest.approx(
        sum(r["energy_consumed"] for r in readings)
    )
    assert summary["total_generation"] == pytest.approx(
        sum(r["energy_generated"] for r in readings)
    )
    assert summary["total_grid_feed_in"] == pytest.approx(sum(r["grid_feed_in"] for r in readings))
    assert (summary["consumer_count"], summary["prosumer_count"]) == (9, 16)
    assert (summary["meters_with_solar"], summary["meters_with_battery"]) == (16, 5)
    assert summary["three_phase_count"] + summary["single_phase_count"] == 25
    levels = [r["battery_level"] for r in readings if r["battery_level"] is not None]
    assert summary["average_battery_level"] == pytest.approx(np.mean(levels))
    assert sum(b["meters"] for b in summary["buildings"]) == 25
    assert len(summary["buildings"]) == 14

    # the pre-rendered fast path and the FastAPI routes (taken with a query string) agree: a
    # page is rendered from the reading dicts, the full list from pre-rendered bytes
    status, headers, raw = api.request("/api/readings?limit=24&offset=1")
    assert (status, json.loads(raw)) == (200, readings[1:25])
    assert headers["X-Total-Count"] == "25"
    meter = readings[3]["meter_id"]
    assert api.json(f"/api/meters/{meter}/reading?via=routes") == (200, readings[3])
    api.control(action="resume")


def test_pollers_get_304_until_a_new_interval(running):
    simulation, api, _ = running
    _pause_and_settle(simulation, api)
    for path in ("/api/campus/summary", "/api/readings", "/api/meters/AMI_METER_UTCC_022/reading"):
        status, headers, first = api.request(path)
        etag = headers["ETag"]
        assert status == 200 and etag and headers["Cache-Control"] == "no-cache"
        status, again, raw = api.request(path, headers={"If-None-Match": etag})
        assert (status, raw, again["ETag"]) == (304, b"", etag), path
        status, _, _ = api.request(path, headers={"If-None-Match": f'"other", W/{etag}'})
        assert status == 304, path
        status, _, raw = api.request(path, headers={"If-None-Match": '"other"'})
        assert status == 200 and raw == first, path

    status, headers, raw = api.request("/api/campus/summary")
    etag, before = headers["ETag"], json.loads(raw)["timestamp"]
    stored = simulation.status()["storage"]["rows_stored"]
    api.control(action="resume")
    _wait_stored(simulation, stored + 25 * 2)
    api.control(action="pause")
    time.sleep(1.2)
    status, headers, raw = api.request("/api/campus/summary", headers={"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag
    assert json.loads(raw)["timestamp"] > before
    api.control(action="resume")


def test_history_equals_storage_json_and_csv(running):
    simulation, api, settings = running
    _pause_and_settle(simulation, api)
    meter = "AMI_METER_UTCC_013"
    start, end = rfc3339(START + 900), rfc3339(START + 6 * 900)
    status, rows = api.json(f"/api/meters/{meter}/readings?start={start}&end={end}")
    assert status == 200
    assert [r["timestamp"] for r in rows] == [rfc3339(START + k * 900) for k in range(1, 6)]
    table = read_readings(settings.data_dir)
    mine = {
        rfc3339(r["timestamp"].timestamp()): r for r in table.to_pylist() if r["meter_id"] == meter
    }
    for row in rows:
        assert row["energy_consumed"] == mine[row["timestamp"]]["energy_consumed"]
        assert row["import_register_kwh"] == mine[row["timestamp"]]["import_register_kwh"]

    status, headers, raw = api.request(
        f"/api/meters/{meter}/readings?start={START}&end={START + 3 * 900}&format=csv"
    )
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(raw.decode())))
    assert len(parsed) == 3
    assert float(parsed[0]["energy_consumed"]) == mine[rfc3339(START)]["energy_consumed"]
    header = raw.decode().splitlines()[0]
    assert header.split(",") == list(rows[0])  # the JSON keys, in order

    # no readings in the range: still the header row, so a CSV reader sees the columns
    status, headers, raw = api.request(f"/api/meters/{meter}/readings?start=0&end=900&format=csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert raw.decode() == header + "\n"

    status, rows = api.json(f"/api/meters/{meter}/readings?start={START}&limit=2")
    assert status == 200 and len(rows) == 2
    api.control(action="resume")


def test_building_and_campus_history_are_the_sums_of_their_meters(running):
    simulation, api, settings = running
    _pause_and_settle(simulation, api)
    stored = read_readings(settings.data_dir).to_pylist()
    span = f"start={START}&end={START + 4 * 900}"
    building = next(r["building"] for r in stored if r["meter_id"] == "AMI_METER_UTCC_013")

    def expected(rows, k):
        at = [r for r in rows if r["timestamp"].timestamp() == START + k * 900]
        consumption = sum(r["energy_consumed"] for r in at)
        generation = sum(r["energy_generated"] for r in at)
        battery = sum(r["battery_power"] or 0.0 for r in at)
        return len(at), consumption, generation, battery, sum(r["energy_import_kwh"] for r in at)

    for path, rows in (
        ("/api/campus/readings", stored),
        (
            f"/api/buildings/{urllib.parse.quote(building)}/readings",
            [r for r in stored if r["building"] == building],
        ),
    ):
        status, body = api.json(f"{path}?{span}")
        assert status == 200, body
        assert [r["timestamp"] for r in body] == [rfc3339(START + k * 900) for k in range(4)]
        for k, row in enumerate(body):
            meters, consumption, generation, battery, imported = expected(rows, k)
            assert row["meters"] == meters
            assert row["consumption_kw"] == pytest.approx(consumption, abs=1e-3)
            assert row["generation_kw"] == pytest.approx(generation, abs=1e-3)
            assert row["battery_kw"] == pytest.approx(battery, abs=1e-3)
            assert row["import_kwh"] == pytest.approx(imported, abs=1e-3)
            assert row["net_grid_kw"] == pytest.approx(consumption - generation + battery, abs=2e-3)
    assert body[0]["meters"] < 25  # a building is not the campus

    status, headers, raw = api.request(f"/api/campus/readings?{span}&format=csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(raw.decode())))
    assert len(parsed) == 4 and int(parsed[0]["meters"]) == 25
    assert api.json("/api/buildings/Nowhere/readings")[0] == 404
    status, _, raw = api.request("/api/campus/readings?start=0&end=900&format=csv")
    assert status == 200 and raw.decode().startswith("timestamp,meters,consumption_kw")
    api.control(action="resume")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/meters/NOT_A_METER/reading", 404),
        ("/api/meters/NOT_A_METER/readings", 404),
        ("/api/meters/AMI_METER_UTCC_001/readings?start=yesterday", 422),
        ("/api/meters/AMI_METER_UTCC_001/readings?start=2025-01-02&end=2025-01-01", 422),
        ("/api/meters/AMI_METER_UTCC_001/readings?limit=0", 422),
        ("/api/meters/AMI_METER_UTCC_001/readings?limit=100001", 422),
        ("/api/meters/AMI_METER_UTCC_001/readings?format=xml", 422),
        ("/api/readings?limit=abc", 422),
        ("/api/meters/AMI_METER_UTCC_001/readings?start=%C2%B2", 422),
        ("/api/meters/AMI_METER_UTCC_001/readings?start=1000000000000000", 422),
        ("/api/meters/AMI_METER_UTCC_001/readings?end=0001-01-01", 422),
        ("/no/such/path", 404),
    ],
)
def test_errors_are_json_with_a_message(running, path, status):
    _, api, _ = running
    got, body = api.json(path)
    assert got == status
    assert body["status"] == status and body["error"]


def _raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is on a new connection; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "problem"),
    [
        (
            b"GET /api/readings?x=" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
            414,
            "target",
        ),
        (
            b"GET /api/readings HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
            431,
            "head",
        ),
        (
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n",
            431,
            "header",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "invalid"),
    ],
)
def test_over_long_or_broken_requests_get_json_errors(running, request_bytes, status, problem):
    _, api, _ = running
    port = int(api.base.rsplit(":", 1)[1])
    got, headers, body = _raw_exchange(port, request_bytes)
    assert got == status and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["status"] == status and problem in answer["error"]
    assert api.json("/api/meters")[0] == 200  # the server is fine


def test_readings_paging_and_cors(running):
    _, api, _ = running
    status, headers, raw = api.request("/api/readings?limit=10&offset=20")
    assert status == 200 and len(json.loads(raw)) == 5
    assert headers["X-Total-Count"] == "25"
    req = urllib.request.Request(
        api.base + "/api/readings",
        method="OPTIONS",
        headers={"Origin": "http://dashboard.example", "Access-Control-Request-Method": "GET"},
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        assert response.headers["Access-Control-Allow-Origin"] in ("*", "http://dashboard.example")
    for path in ("/api/readings", "/api/readings?limit=3", "/api/meters"):
        req = urllib.request.Request(api.base + path, headers={"Origin": "http://dash.example"})
        with urllib.request.urlopen(req, timeout=30) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*", path
            assert "X-Total-Count" in response.headers["Access-Control-Expose-Headers"], path


def test_a_busy_port_is_a_clear_error(running):
    simulation, api, _ = running
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*API_PORT"):
            start_rest_api(simulation.settings, simulation.layout, "127.0.0.1", port, TOKEN)
    assert api.json("/api/meters")[0] == 200  # the running API is untouched


def _api_replicas() -> list[str]:
    return [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if "RestApi" in a["name"] and a["namespace"] == "serve"
    ]


def test_serve_replaces_a_killed_replica_on_the_same_port(running):
    _, api, _ = running
    (killed,) = _api_replicas()
    ray.kill(ray.get_actor(killed, namespace="serve"), no_restart=True)
    deadline = time.monotonic() + 120
    while True:  # Serve notices the death and starts a new replica, which binds the same port
        replicas = _api_replicas()
        if replicas and killed not in replicas:
            try:
                status, meters = api.json("/api/meters")
                if status == 200:
                    break
            except OSError:
                pass  # refused while the new replica starts
        assert time.monotonic() < deadline, "Serve did not bring the REST API back"
        time.sleep(0.5)
    assert len(meters) == 25 and len(replicas) == 1


def test_ieee2030_5_endpoints_tell_the_truth_when_absent(running):
    _, api, _ = running
    status, body = api.json("/api/ieee2030_5/status")
    assert status == 200 and body["enabled"] is False and body["running"] is False
    assert api.json("/api/ieee2030_5/clients") == (200, [])
    for path in (
        "/api/ieee2030_5/dr/events",
        "/api/ieee2030_5/tariff",
        "/api/ieee2030_5/messages?active=true",
        "/api/ieee2030_5/der/controls",
    ):
        status, body = api.json(path)
        assert status == 404 and "no built-in IEEE 2030.5 server" in body["error"], path


def test_openapi_document_and_no_server_errors(running):
    """The OpenAPI document loads, and property-based requests against it never get a 5xx."""
    _, api, _ = running
    status, document = api.json("/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    assert "/api/campus/summary" in document["paths"]
    status, _, docs = api.request("/docs")
    assert status == 200 and b"swagger" in docs.lower()

    schema = schemathesis.openapi.from_url(api.base + "/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        if operation.method.upper() == "POST":
            continue  # control changes the clock; its validation is tested above

        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def no_server_error(case):
            response = case.call(base_url=api.base, timeout=30)
            assert response.status_code < 500, (case.path, case.query, response.text[:300])

        no_server_error()


def test_speed_change_and_stop(running):
    simulation, api, _ = running
    status, body = api.control(speed=7200)
    assert status == 200 and body["speed"] == 7200
    status, body = api.control(speed="max")
    assert status == 200 and body["speed"] == "max"
    status, body = api.control(action="stop")
    assert status == 200
    deadline = time.monotonic() + 60
    while not simulation.wait(timeout_s=0.5):
        assert time.monotonic() < deadline
    time.sleep(1.2)
    status, health = api.json("/health")
    assert status == 503 and "finished" in health["reason"]


def test_requests_are_counted_as_ray_metrics(running):
    _, api, _ = running
    for path in ("/api/readings", "/api/campus/summary", "/api/meters/NOT_A_METER/reading"):
        api.request(path)
    port = ray.nodes()[0]["MetricsExportPort"]
    wanted = (
        ('route="readings"', 'status="2xx"'),
        ('route="meter_reading"', 'status="4xx"'),
    )
    deadline = time.monotonic() + 90
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            lines = [
                line
                for line in response.read().decode().splitlines()
                if line.startswith("ray_gtx_api_requests") or line.startswith("gtx_api_requests")
            ]
        if all(any(a in line and b in line for line in lines) for a, b in wanted):
            break
        assert time.monotonic() < deadline, lines
        time.sleep(1)


def test_the_api_answers_starting_until_the_actors_exist(ray_runtime, tmp_path):
    """The CLI deploys the API before the simulation's actors: it must say so, not fail."""
    settings = Settings(
        config_file=CAMPUS_CONFIG,
        meters=4,
        meters_per_actor=4,
        influxdb_enabled=False,
        start_s=START,
        interval_s=900,
        speed=3600.0,
        data_dir=tmp_path / "data",
        namespace="gtx_api_starting",
    )
    layout = plan_layout(settings)
    port = _free_port()
    app_name = start_rest_api(settings, layout, "127.0.0.1", port, None)
    api = Api(port)
    try:
        status, body = api.json("/health")
        assert status == 503 and "starting" in body["reason"]
        assert api.json("/api/readings") == (200, [])
        status, body = api.json("/api/simulation")
        assert status == 503 and "starting" in body["error"]
        assert len(api.json("/api/meters")[1]) == 4

        simulation = start_simulation(settings, layout=layout)
        try:
            deadline = time.monotonic() + 120
            while len(api.json("/api/readings")[1]) < 4:
                assert time.monotonic() < deadline, "the API never saw the simulation"
                time.sleep(0.5)
            status, health = api.json("/health")
            assert status == 200 and health["meters_active"] == 4
            status, clock = api.json("/api/simulation")
            assert status == 200 and clock["running"] is True
        finally:
            simulation.stop()
            simulation.finish()
    finally:
        stop_rest_api(app_name)


ANSWER_WITHIN_S = 2.0  # the API answers in well under a second; slack for a loaded 2-core host


def _timed(api, path: str, **kwargs) -> tuple[int, dict | list]:
    started = time.monotonic()
    status, _, raw = api.request(path, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < ANSWER_WITHIN_S, f"{path} took {elapsed:.1f} s"
    body = json.loads(raw)
    if status == 503:
        assert body["error"], path  # says what it waits for
    return status, body


@pytest.fixture(scope="module")
def with_clients(ray_runtime, tmp_path_factory):
    """Four generated meters on two meter actors, every meter an IEEE 2030.5 client of a real
    2030.5 server; the API (no admin token: loopback clients are trusted) is deployed before
    the simulation's actors exist. Yields (api, start the simulation, its handles)."""
    from gtx_ray.actors.meter import ClientPlan
    from gtx_ray.ieee2030_5.pki import init_certs
    from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
    from gtx_ray.ieee2030_5.server.service import start_ieee2030_5, stop_ieee2030_5

    base = tmp_path_factory.mktemp("rest_clients")
    settings = Settings(
        config_file=CAMPUS_CONFIG,
        meters=4,
        meters_per_actor=2,
        influxdb_enabled=False,
        start_s=START,
        interval_s=900,
        speed=3600.0,
        data_dir=base / "data",
        certs_dir=base / "certs",
        namespace="gtx_api_clients",
    )
    layout = plan_layout(settings)
    init_certs(base / "certs", list(layout.meters.meter_id))
    server = start_ieee2030_5(
        Ieee2030_5Config(certs_dir=base / "certs", port=0, post_rate_s=1, poll_rate_s=5)
    )
    plan = ClientPlan(
        certs_dir=str(base / "certs"),
        server_url=f"https://127.0.0.1:{server.port}",
        pin=settings.ieee2030_5_pin,
    )
    port = _free_port()
    started = []
    try:
        app_name = start_rest_api(settings, layout, "127.0.0.1", port, None, server, True)
        try:

            def start():
                started.append(start_simulation(settings, clients=plan, layout=layout))
                return started[-1]

            yield Api(port), start, server
        finally:
            stop_rest_api(app_name)
            for simulation in started:
                simulation.stop()
                simulation.finish()
    finally:
        stop_ieee2030_5(server)


def test_2030_5_routes_answer_at_once_while_actors_start_or_are_busy(with_clients):
    """No request waits on a busy actor: with the meter actors, the clock, the aggregator and
    the 2030.5 registry all stopped (SIGSTOP, so calls to them hang), every route answers
    within about a second, from what the API already knows or with a 503 saying what it
    waits for."""
    import os
    import signal

    api, start, server = with_clients
    status, body = _timed(api, "/api/ieee2030_5/clients")  # meter actors do not exist yet
    assert status == 503 and "starting" in body["error"]
    _timed(api, "/api/ieee2030_5/status")

    simulation = start()
    deadline = time.monotonic() + 120
    while True:  # every meter's client has registered and its actor has said so
        status, _, raw = api.request("/api/ieee2030_5/clients")
        if status == 200 and all(c["registered"] for c in json.loads(raw)):
            break
        assert time.monotonic() < deadline, raw
        time.sleep(0.5)
    status, clients = _timed(api, "/api/ieee2030_5/clients")
    assert status == 200 and len(clients) == 4
    status, server_status = _timed(api, "/api/ieee2030_5/status")
    assert status == 200 and server_status["running"] and server_status["clients"]["meters"] == 4
    _wait_stored(simulation, 4 * 2)

    actors = [*simulation.meter_actors, simulation.clock, simulation.aggregator, server.registry]
    pids = ray.get([a.pid.remote() for a in simulation.meter_actors], timeout=60)
    pids += ray.get(
        [
            simulation.clock.__ray_call__.remote(lambda _: os.getpid()),
            simulation.aggregator.__ray_call__.remote(lambda _: os.getpid()),
            server.registry.__ray_call__.remote(lambda _: os.getpid()),
        ],
        timeout=60,
    )
    assert len(set(pids)) == len(actors)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(ray.exceptions.GetTimeoutError):  # they really are unresponsive
            ray.get(simulation.meter_actors[0].ieee2030_5_clients.remote(), timeout=1)
        time.sleep(2.5)  # the live view is now older than any "refresh it first" threshold
        for path in ("/api/ieee2030_5/clients", "/api/ieee2030_5/status"):
            status, body = _timed(api, path)
            assert status == 200, body  # the last answers
        assert len(_timed(api, "/api/ieee2030_5/clients")[1]) == 4
        for path in (
            "/api/simulation",
            "/health",
            "/api/readings",
            "/api/readings?limit=2",
            "/api/campus/summary",
            "/api/meters",
            f"/api/meters/{simulation.meters.meter_id[0]}/reading",
            f"/api/meters/{simulation.meters.meter_id[0]}/readings",
        ):
            _timed(api, path)
        status, body = _timed(api, "/api/ieee2030_5/admin/devices")
        assert status == 503 and "registry did not answer" in body["error"]
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 60
    while _timed(api, "/api/ieee2030_5/admin/devices")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_loopback_trust_does_not_extend_to_other_sites_pages(with_clients):
    """Without an admin token loopback clients may control the simulation; a page of another
    site in a browser on this host is a loopback client too, and must still be refused."""
    api, start, _ = with_clients
    if api.json("/api/simulation")[0] == 503:  # run alone: start the simulation
        start()
        deadline = time.monotonic() + 120
        while api.json("/api/simulation")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert _paused(api) is False
    status, _, raw = api.request("/api/simulation", {"action": "pause"}, headers={"Origin": EVIL})
    assert status == 403 and "may not use this endpoint" in json.loads(raw)["error"]
    status, _, raw = api.request("/api/ieee2030_5/admin/devices", headers={"Origin": EVIL})
    assert status == 403
    time.sleep(1.2)
    assert _paused(api) is False
    status, _, raw = api.request("/api/ieee2030_5/admin/devices")  # curl on this host
    assert status == 200 and len(json.loads(raw)["result"]) == 4
    status, _, raw = api.request("/api/simulation", {"action": "pause"})
    assert status == 200 and json.loads(raw)["paused"] is True


def test_a_command_is_applied_or_refused_never_applied_later(running):
    """A clock that cannot answer in time (SIGSTOPped) gets a 503 'not applied', and once it runs
    again it does not apply the stale command."""
    import os
    import signal

    simulation, api, _ = running
    status, body = api.control(action="pause")
    assert status == 200 and body["paused"] is True
    pid = ray.get(simulation.clock.pid.remote(), timeout=30)
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        status, body = api.control(action="resume")
        waited = time.monotonic() - began
    finally:
        os.kill(pid, signal.SIGCONT)
    assert status == 503 and "not applied" in body["error"], body
    assert waited < 20
    time.sleep(2.0)  # the stopped clock now sees the stale command
    assert ray.get(simulation.clock.status.remote(), timeout=30)["paused"] is True
    status, body = api.control(action="resume")  # a fresh command is applied and says so
    assert status == 200 and body["paused"] is False
    status, body = api.control(action="pause")
    assert status == 200 and body["paused"] is True
