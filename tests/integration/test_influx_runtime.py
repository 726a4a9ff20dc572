"""The simulator writing to a real InfluxDB 1.x through Ray, and the CLI's backfill and replay."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from gtx_ray.model.meters import MeterModel
from gtx_ray.runtime import influx_config, start_simulation
from gtx_ray.serve.history import influx_history
from gtx_ray.settings import Settings
from gtx_ray.storage.influx import influxql
from tests.conftest import CAMPUS_CONFIG, REPO
from tests.servers import ServerUnavailable, influxd_server
from tests.unit.helpers import run

JAN_1_2025_BANGKOK = 1_735_664_400


@pytest.fixture(scope="module")
def influxd(tmp_path_factory):
    try:
        server = influxd_server(tmp_path_factory.mktemp("influxd_e2e")).start()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


def _count(settings: Settings) -> int:
    rows = influxql(influx_config(settings), "SELECT count(energy_consumed) FROM meter_readings")
    return int(rows[0]["count"]) if rows else 0


def test_campus_day_lands_in_influxdb(ray_runtime, influxd, campus, campus_meters, tmp_path):
    settings = Settings(
        config_file=CAMPUS_CONFIG,
        start_s=JAN_1_2025_BANGKOK,
        interval_s=900,
        speed=None,
        duration_s=86_400,
        data_dir=tmp_path / "data",
        namespace="gtx_ray_tests",
        influxdb_url=influxd.url,
        influxdb_bucket="campus_day",
        influxdb_api="v1",
    )
    simulation = start_simulation(settings)
    deadline = time.monotonic() + 300
    while not simulation.wait(timeout_s=1.0):
        assert time.monotonic() < deadline
    final = simulation.finish()
    sink = final["storage"]["sinks"][0]
    assert sink["sink"] == "influxdb" and sink["api"] == "v1"
    assert sink["rows_written"] == 25 * 96 and sink["rows_pending"] == 0
    assert _count(settings) == 25 * 96

    # Tags and values equal the model's, for one meter whose building name has spaces.
    rows = influxql(
        influx_config(settings),
        "SELECT * FROM meter_readings WHERE meter_id = 'AMI_METER_UTCC_022' ORDER BY time",
    )
    assert len(rows) == 96
    assert {r["building"] for r in rows} == {"Gymnasium"}
    assert {r["meter_type"] for r in rows} == {"hybrid_prosumer"}
    model = MeterModel(campus_meters, campus, settings.seed, 900)
    table, _ = run(model, JAN_1_2025_BANGKOK, 96, 96)
    mine = [r for r in table.to_pylist() if r["meter_id"] == "AMI_METER_UTCC_022"]
    assert [r["time"] for r in rows] == [int(r["timestamp"].timestamp()) for r in mine]
    for stored, source in zip(rows, mine, strict=True):
        for field in (
            "energy_consumed",
            "solar_generation",
            "battery_level",
            "import_register_kwh",
            "voltage",
        ):
            assert stored[field] == pytest.approx(source[field], rel=1e-12), field
    # The REST API's history reader gives back the same readings from InfluxDB.
    history = influx_history(
        influx_config(settings),
        "AMI_METER_UTCC_022",
        JAN_1_2025_BANGKOK + 900,
        JAN_1_2025_BANGKOK + 5 * 900,
        1000,
    )
    assert history.column("timestamp").to_pylist() == [r["timestamp"] for r in mine[1:5]]
    assert history.column("energy_consumed").to_pylist() == pytest.approx(
        [r["energy_consumed"] for r in mine[1:5]], rel=1e-12
    )
    assert history.column("building").to_pylist() == ["Gymnasium"] * 4
    consumer = influxql(
        influx_config(settings),
        "SELECT * FROM meter_readings WHERE meter_id = 'AMI_METER_UTCC_001' LIMIT 1",
    )[0]
    assert consumer["building"] == "Engineering Building A"
    assert consumer.get("solar_generation") is None  # null fields are omitted, not zero


def _gtx(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gtx_ray", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def test_backfill_count_check_and_replay(ray_runtime, influxd, tmp_path):
    """backfill with InfluxDB: the final count check; then a Parquet-only run replayed twice
    (idempotent)."""
    env = {"INFLUXDB_URL": influxd.url, "INFLUXDB_BUCKET": "backfill_e2e"}
    common = [
        "--meters",
        "200",
        "--start",
        "2024-01-01",
        "--duration",
        "2d",
        "--interval",
        "900",
        "--disable-api",
        "--disable-ieee2030-5",
        "--namespace",
        "gtx_backfill",
        "--address",  # this session's cluster, not any other Ray running on the host
        ray_runtime.get_runtime_context().gcs_address,
    ]
    result = _gtx("backfill", *common, "--data-dir", str(tmp_path / "a"), env=env)
    assert result.returncode == 0, result.stderr
    assert "count check: InfluxDB holds all 38,400 readings" in result.stderr
    settings = Settings(influxdb_url=influxd.url, influxdb_bucket="backfill_e2e")
    assert _count(settings) == 200 * 192

    parquet_dir = tmp_path / "b"
    env_b = {**env, "INFLUXDB_BUCKET": "replay_e2e"}
    result = _gtx(
        "backfill",
        *common,
        "--seed",
        "9",
        "--disable-influxdb",
        "--data-dir",
        str(parquet_dir),
        env=env_b,
    )
    assert result.returncode == 0, result.stderr
    for _ in range(2):
        result = _gtx("replay", "--data-dir", str(parquet_dir), env=env_b)
        assert result.returncode == 0, result.stderr
        assert re.search(r"replay: 38,400 readings written", result.stderr), result.stderr
        assert _count(replace(settings, influxdb_bucket="replay_e2e")) == 200 * 192
    values = influxql(
        influx_config(replace(settings, influxdb_bucket="replay_e2e")),
        "SELECT sum(energy_import_kwh) FROM meter_readings",
    )
    assert np.isfinite(values[0]["sum"]) and values[0]["sum"] > 0


def test_replay_of_a_missing_dir_is_a_clear_error(tmp_path):
    result = _gtx("replay", "--data-dir", str(tmp_path / "nope"), env={}, timeout=60)
    assert result.returncode == 2
    assert "no such directory" in result.stderr and "Traceback" not in result.stderr


def _campus_data_dir(campus, campus_meters, data_dir) -> int:
    """Four campus intervals stored as Parquet under ``data_dir``; returns the reading count."""
    from gtx_ray.storage.parquet import ParquetSink

    model = MeterModel(campus_meters, campus, 42, 900)
    table, _ = run(model, JAN_1_2025_BANGKOK, 4, 4)
    sink = ParquetSink(data_dir)
    for batch in table.to_batches():
        sink.write(batch)
    sink.close()
    return table.num_rows


def _env_without_influx_target() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("INFLUXDB_ORG", "INFLUXDB_BUCKET")}


def test_without_org_and_bucket_readings_go_to_the_seed_defaults(
    influxd, campus, campus_meters, tmp_path
):
    """The seed's defaults: database/bucket meter_readings_2y, org gridtokenx (v1 and v2)."""
    import http.server
    import threading
    import urllib.parse

    rows = _campus_data_dir(campus, campus_meters, tmp_path / "data")
    env = {**_env_without_influx_target(), "INFLUXDB_URL": influxd.url}
    result = subprocess.run(
        [sys.executable, "-m", "gtx_ray", "replay", "--data-dir", str(tmp_path / "data")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "bucket meter_readings_2y" in result.stderr
    assert _count(Settings(influxdb_url=influxd.url, influxdb_bucket="meter_readings_2y")) == rows

    writes: list[dict[str, list[str]]] = []

    class V2(http.server.BaseHTTPRequestHandler):  # a v2 server: /ping, buckets API absent
        def log_message(self, *args) -> None:
            pass

        def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            if self.path.startswith("/ping"):
                self._answer(204, {"X-Influxdb-Version": "v2.7.0"})
            else:
                self._answer(404)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/api/v2/write":
                writes.append(urllib.parse.parse_qs(url.query))
                self._answer(204)
            else:
                self._answer(404)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), V2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env["INFLUXDB_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "gtx_ray", "replay", "--data-dir", str(tmp_path / "data")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert writes, result.stderr
    assert {(w["org"][0], w["bucket"][0]) for w in writes} == {("gridtokenx", "meter_readings_2y")}
