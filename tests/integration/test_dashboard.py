"""The campus dashboard at ``/`` in a real headless browser (Debian's chromium over the DevTools
protocol) against a running simulation and its REST API: what it shows equals the API, it
follows the simulation live, its buttons drive the clock, and it stays small and quick with a
10,000-meter fleet."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import ray

from gtx_ray.runtime import start_simulation
from gtx_ray.serve.api import start_rest_api, stop_rest_api
from gtx_ray.settings import Settings
from tests.browser import Chromium, Page
from tests.conftest import CAMPUS_CONFIG
from tests.servers import free_port

START = 1_735_664_400  # 2025-01-01 00:00 Bangkok
BANGKOK_S = 7 * 3600
HOURS = 900 / 3600  # the simulations' interval


def _get(base: str, path: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _json(base: str, path: str):
    status, _, body = _get(base, path)
    return status, json.loads(body) if body else None


def _clock(base: str) -> dict:
    """The clock's state, or {} while the API answers 503 (not known yet, or a refresh of the
    live view timed out on a busy machine)."""
    status, body = _json(base, "/api/simulation")
    return body if status == 200 else {}


def _serve(tmp_path_factory, name: str, **fleet):
    """A simulation at 1 h per second, paused, with its REST API on a free port."""
    settings = Settings(
        config_file=CAMPUS_CONFIG,
        influxdb_enabled=False,
        start_s=START,
        interval_s=900,
        speed=3600.0,
        data_dir=tmp_path_factory.mktemp(name) / "data",
        namespace=f"gtx_dashboard_{name}",
        **fleet,
    )
    simulation = start_simulation(settings)
    ray.get(simulation.clock.pause.remote())
    port = free_port()
    try:
        app_name = start_rest_api(simulation.settings, simulation.layout, "127.0.0.1", port, None)
    except BaseException:
        simulation.stop()
        simulation.finish()
        raise
    return simulation, app_name, f"http://127.0.0.1:{port}"


def _wait(what: str, check, timeout_s: float, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval_s)


@pytest.fixture
def browser(tmp_path):
    chromium = Chromium(tmp_path / "chromium").start()
    page = chromium.page()
    for domain in ("Page", "Runtime", "Performance", "Network"):
        page.call(f"{domain}.enable")
    yield page
    page.close()
    chromium.stop()


PAGE_STATE = """(() => {
  const num = (el) => (el.dataset.value === "" ? null : Number(el.dataset.value));
  const cells = (row) => Object.fromEntries([...row.querySelectorAll("td[data-field]")]
    .map((td) => [td.dataset.field, {value: num(td), text: td.textContent}]));
  const byId = (id) => document.getElementById(id);
  return {
    interval: document.body.dataset.interval || null,
    todayPoints: Number(document.body.dataset.todayPoints || 0),
    todayDate: document.querySelector(".today-date").textContent,
    firstRenderMs: Number(document.body.dataset.firstRenderMs || 0),
    state: byId("sim-state").dataset.state || null,
    simTime: byId("sim-time").textContent,
    speed: byId("sim-speed").textContent,
    kpi: Object.fromEntries([...document.querySelectorAll(".kpi [data-value]")]
      .map((el) => [el.id, {value: num(el), text: el.textContent}])),
    buildings: [...document.querySelectorAll("#buildings tbody.building")].map((tbody) => ({
      building: tbody.dataset.building,
      cells: cells(tbody.rows[0]),
      meters: [...tbody.querySelectorAll("tr.meter-row")]
        .map((tr) => ({meter_id: tr.dataset.meter, cells: cells(tr),
                       der: tr.querySelector("td.der").dataset.der})),
    })),
    types: document.querySelectorAll("#types tbody tr").length,
    ieee: {server: byId("ieee-server").textContent, devices: num(byId("ieee-devices"))},
    dr: [byId("dr-event").textContent, byId("dr-event").dataset.status],
    price: [byId("price").textContent, byId("price").dataset.status],
    chartPoints: (byId("chart-power").querySelector("path.consumption")
      .getAttribute("d").match(/[ML]/g) || []).length,
    banner: byId("banner").hidden ? "" : byId("banner").textContent,
  };
})()"""


def _shown(cell: dict) -> float | None:
    """The number a cell shows, parsed back (1 decimal, thousands separators, U+2212 minus)."""
    text = cell["text"].replace(",", "").replace("−", "-")
    return None if text == "–" else float(text)


def _same(cell: dict, expected: float | None) -> None:
    """The cell holds ``expected`` exactly (as the API computed it) and shows it rounded."""
    if expected is None:
        assert cell["value"] is None and cell["text"] == "–", cell
        return
    assert cell["value"] == pytest.approx(expected, rel=1e-9, abs=1e-9), cell
    assert _shown(cell) == pytest.approx(expected, abs=0.05 + 1e-9), cell


def _local(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch_s + BANGKOK_S))


@pytest.fixture(scope="class")
def campus_api(ray_runtime, tmp_path_factory):
    """The campus for the tests of one class (stopped before the next class starts its own)."""
    simulation, app_name, base = _serve(tmp_path_factory, "campus")
    yield simulation, base
    stop_rest_api(app_name)
    simulation.stop()
    simulation.finish()


class TestCampus:
    def test_page_files_have_their_types_and_caching(self, campus_api):
        _, base = campus_api
        status, headers, page = _get(base, "/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Cache-Control"] == "no-cache" and headers["ETag"]
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
        assert _get(base, "/", {"If-None-Match": headers["ETag"]})[0] == 304
        html = page.decode()
        assert "http://" not in html and "https://" not in html  # nothing from elsewhere
        for name, content_type in (("js", "text/javascript"), ("css", "text/css")):
            (url,) = re.findall(rf'"(dashboard/dashboard\.{name}\?v=[0-9a-f]+)"', html)
            status, headers, body = _get(base, "/" + url)
            assert status == 200 and headers["Content-Type"].startswith(content_type)
            assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
            status, headers, _ = _get(base, "/" + url.split("?")[0])
            assert status == 200 and headers["Cache-Control"] == "no-cache"
            assert _get(base, "/" + url, {"If-None-Match": headers["ETag"]})[0] == 304
        status, body = _json(base, "/dashboard/../app.py")
        assert status == 404 and body["error"]
        status, body = _json(base, "/dashboard/secrets.js")
        assert status == 404 and "secrets.js" in body["error"]
        status, document = _json(base, "/openapi.json")
        assert {"/api/campus/now", "/api/campus/today"} <= set(document["paths"])
        assert "/" not in document["paths"]

    def test_dashboard_shows_the_campus_live(self, campus_api, browser: Page, tmp_path: Path):
        simulation, base = campus_api
        status, today = _json(base, "/api/campus/today")
        assert status == 200 and today["points"] == 0  # before the first interval
        assert _json(base, "/api/campus/now")[0] == 503

        browser.call("Page.navigate", url=base + "/")
        browser.wait_for("document.body && document.body.dataset.polls", 30)
        clock = _wait("the clock's state", lambda: _clock(base), 60)
        assert clock["paused"] is True
        browser.wait_for("document.getElementById('sim-state').dataset.state === 'paused'", 30)
        browser.evaluate("document.getElementById('resume').click()")  # the page's button
        _wait("the clock to run", lambda: _clock(base).get("paused") is False, 30)
        browser.wait_for("document.body.dataset.interval", 120)
        _wait("a few intervals", lambda: simulation.status()["clock"]["intervals_done"] >= 8, 120)

        browser.evaluate("document.getElementById('pause').click()")
        _wait("the clock to pause", lambda: _clock(base).get("paused"), 30)
        _wait("in-flight windows to land", lambda: _settled(simulation), 60)

        def caught_up():
            summary = _json(base, "/api/campus/summary")[1]
            today = _json(base, "/api/campus/today")[1]
            shown = browser.evaluate(PAGE_STATE)
            same = shown["interval"] == summary["timestamp"] == today["timestamp"][-1]
            return (summary, today, shown) if same and shown["todayPoints"] else None

        summary, today, shown = _wait("the page to show the API's interval", caught_up, 30)
        status, readings = _json(base, "/api/readings")
        assert {r["timestamp"] for r in readings} == {summary["timestamp"]}
        _matches_the_api(base, summary, readings, shown)
        assert shown["state"] == "paused" and shown["speed"] == "3,600×"
        clock = _wait("the clock's state", lambda: _clock(base), 30)
        assert shown["simTime"] == f"{_local(clock['next_start_s'])} (UTC+07:00)"
        status, ieee = _json(base, "/api/ieee2030_5/status")
        assert shown["ieee"] == {"server": "not running", "devices": ieee["registered_devices"]}
        # No 2030.5 server here: the DR line says what the readings say, the price line the
        # price in force from the readings.
        assert _json(base, "/api/ieee2030_5/dr/events?active=true")[0] == 404
        assert _json(base, "/api/ieee2030_5/tariff")[0] == 404
        now = _json(base, "/api/campus/now")[1]
        assert now["meters_shedding"] == 0 and now["shed_kw"] == 0
        assert shown["dr"] == ["none", "404"]
        assert shown["price"] == [f"{now['price_thb_per_kwh']:.2f} THB/kWh now", "404"]
        assert shown["banner"] == ""
        _only_its_own_origin(browser, base)

        interval_s = int(datetime.fromisoformat(summary["timestamp"]).timestamp())
        assert today["date"] == _local(interval_s)[:10]
        assert today["consumption_kw"][-1] == pytest.approx(summary["total_consumption"])
        assert shown["todayPoints"] == today["points"] == shown["chartPoints"] >= 1

        screenshot = browser.screenshot(tmp_path / "dashboard.png")
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"dashboard screenshot: {screenshot}")

        browser.evaluate("document.getElementById('resume').click()")
        before = shown
        later = _wait(
            "the page to follow the simulation",
            lambda: (s := browser.evaluate(PAGE_STATE))["interval"] > before["interval"] and s,
            60,
        )
        assert later["state"] == "running"
        consumption = "kpi-consumption"
        assert later["kpi"][consumption]["value"] != before["kpi"][consumption]["value"]
        if later["todayDate"] == before["todayDate"]:  # else a new day started a new series
            assert later["todayPoints"] > before["todayPoints"]
        browser.evaluate("document.getElementById('pause').click()")
        _wait("the clock to pause", lambda: _clock(base).get("paused"), 30)


def _requested(page: Page) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in page.events
        if e["method"] == "Network.requestWillBeSent"
    ]


def _only_its_own_origin(page: Page, base: str) -> None:
    """The page fetched nothing from elsewhere (no CDN, fonts, ...) and no per-meter data."""
    urls = _requested(page)
    assert urls and all(u.startswith(base + "/") for u in urls), urls
    paths = {u[len(base) :].split("?")[0] for u in urls}
    assert not paths & {"/api/readings", "/api/meters"}, paths


def _settled(simulation) -> bool:
    status = simulation.status()
    storage = status["storage"]
    return not status["clock"]["windows_in_flight"] and storage["stored_until_s"] > (
        storage["latest_interval_s"] or 0
    )


def _matches_the_api(base: str, summary: dict, readings: list[dict], shown: dict) -> None:
    """Every number on the page equals the API's at the same interval."""
    kpi = shown["kpi"]
    _same(kpi["kpi-consumption"], summary["total_consumption"])
    _same(kpi["kpi-generation"], summary["total_generation"])
    _same(kpi["kpi-export"], summary["total_grid_feed_in"])
    _same(kpi["kpi-soc"], summary["average_battery_level"])
    assert kpi["kpi-import"]["value"] * HOURS == pytest.approx(summary["total_import_kwh"])
    net = summary["total_import_kwh"] - summary["total_export_kwh"]
    assert kpi["kpi-net-grid"]["value"] * HOURS == pytest.approx(net)
    assert kpi["kpi-meters"]["value"] == summary["meters_reporting"] == summary["total_meters"]
    assert kpi["kpi-buildings"]["value"] == len(summary["buildings"])

    buildings = {b["building"]: b for b in summary["buildings"]}
    assert [b["building"] for b in shown["buildings"]] == sorted(buildings)
    assert len(shown["buildings"]) == 14 and shown["types"] >= 1
    by_meter = {r["meter_id"]: r for r in readings}
    _, meters = _json(base, "/api/meters")
    shown_meters = [m for b in shown["buildings"] for m in b["meters"]]
    assert sorted(m["meter_id"] for m in shown_meters) == sorted(m["meter_id"] for m in meters)
    assert len(shown_meters) == 25
    for building in shown["buildings"]:
        expected = buildings[building["building"]]
        _same(building["cells"]["consumption_kw"], expected["consumption"])
        _same(building["cells"]["generation_kw"], expected["generation"])
        _same(building["cells"]["export_kw"], expected["grid_feed_in"])
        assert len(building["meters"]) == expected["meters"]
        for meter in building["meters"]:
            reading = by_meter[meter["meter_id"]]
            assert reading["building"] == building["building"]
            _same(meter["cells"]["consumption_kw"], reading["energy_consumed"])
            _same(meter["cells"]["generation_kw"], reading["energy_generated"])
            _same(meter["cells"]["export_kw"], reading["grid_feed_in"])
            _same(meter["cells"]["battery_level_pct"], reading["battery_level"])
            _same(meter["cells"]["curtailed_kw"], reading["curtailed_kw"])
            assert meter["der"] == (reading["der_control"] or "")  # "none": a DER, no control
            imported = meter["cells"]["import_kw"]["value"]
            assert imported * HOURS == pytest.approx(reading["energy_import_kwh"], abs=1e-9)


@pytest.fixture
def fleet_api(ray_runtime, tmp_path_factory):
    """10,000 generated meters (about 5,000 buildings) in two meter actors."""
    simulation, app_name, base = _serve(
        tmp_path_factory, "fleet", meters=10_000, meters_per_actor=5_000
    )
    yield simulation, base
    stop_rest_api(app_name)
    simulation.stop()
    simulation.finish()


def test_ten_thousand_meters_load_fast_and_stay_bounded(fleet_api, browser: Page):
    _, base = fleet_api
    request = urllib.request.Request(
        base + "/api/simulation",
        data=json.dumps({"action": "resume"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    _wait("the first interval", lambda: _json(base, "/api/campus/now")[0] == 200, 180)

    started = time.monotonic()
    browser.call("Page.navigate", url=base + "/")
    browser.wait_for("document.body && document.body.dataset.interval", 30)
    wall_s = time.monotonic() - started
    shown = browser.evaluate(PAGE_STATE)
    print(f"10,000 meters: first data on screen {shown['firstRenderMs']:.0f} ms after navigation")
    assert shown["firstRenderMs"] < 3000 and wall_s < 3.0, (shown["firstRenderMs"], wall_s)

    _, now = _json(base, "/api/campus/now")
    assert shown["kpi"]["kpi-meters"]["value"] == now["totals"]["meters"] == 10_000
    assert len(shown["buildings"]) == len(now["buildings"]) < now["buildings_total"]
    rows = sum(len(b["meters"]) for b in shown["buildings"])
    assert rows == now["meter_rows_shown"] < 10_000

    browser.call("HeapProfiler.collectGarbage")
    loaded = browser.metrics()
    intervals = {shown["interval"]}

    def followed() -> bool:
        intervals.add(browser.evaluate("document.body.dataset.interval"))
        return len(intervals) >= 8

    _wait("the page to follow 7 new intervals", followed, 180, interval_s=0.5)
    browser.call("HeapProfiler.collectGarbage")
    later = browser.metrics()
    mib = 2**20
    print(
        f"JS heap {loaded['JSHeapUsedSize'] / mib:.1f} MiB after load, "
        f"{later['JSHeapUsedSize'] / mib:.1f} MiB after {len(intervals) - 1} updates; "
        f"DOM nodes {loaded['Nodes']:.0f} → {later['Nodes']:.0f}"
    )
    assert later["JSHeapUsedSize"] < 32 * mib
    assert later["JSHeapUsedSize"] - loaded["JSHeapUsedSize"] < 4 * mib
    assert later["Nodes"] < 2 * loaded["Nodes"] < 20_000
    _only_its_own_origin(browser, base)
