"""A managed campus end to end, on real sockets: operators act through the REST admin API, the
built-in IEEE 2030.5 server publishes over mutual TLS, the meters (2030.5 clients on Ray) poll
it and change what they do, and the stored readings show it.

One simulated working day of four generated meters (a hybrid with a battery, two prosumers, a
consumer) at 1,200× real time, paused at its start while the operator:
- creates a 30 % load-control event 10:00-11:00 local for meters 0 and 1 (start randomised over
  10 minutes), and a 25 % event 15:00-17:00 for meter 2 that is cancelled half way;
- moves the on-peak window of the tariff to 13:00-20:00 (5.00 THB/kWh, off-peak 2.00).
The stored readings are compared with the same meters stepped without any control (the model is
a pure function of seed and time): the targeted meters lose exactly 30 % of their demand in
the intervals the event covers whatever the randomisation, the others lose nothing, the
cancelled event stops at its cancellation, the prices follow the new window, the battery
discharges in its expensive hours, and the energy balance closes in every interval. The devices'
Responses (received, started, completed / cancelled) reach the operator's view, and the
scenario the server exports replays the day.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import ray

from gtx_ray.actors.meter import ClientPlan, fleet_group
from gtx_ray.fleet import load_campus
from gtx_ray.ieee2030_5.events import TimeOfUseRates
from gtx_ray.ieee2030_5.pki import init_certs, load_devices_index
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.service import start_ieee2030_5, stop_ieee2030_5
from gtx_ray.model.calendar import holiday_mask
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from gtx_ray.runtime import plan_layout, start_simulation
from gtx_ray.scenario import load_scenario, parse_scenario
from gtx_ray.scenario import model_inputs as scenario_model_inputs
from gtx_ray.serve.api import start_rest_api, stop_rest_api
from gtx_ray.settings import Settings
from gtx_ray.storage.parquet import read_readings
from tests.conftest import CAMPUS_CONFIG

DAY_S, HOUR_S, INTERVAL_S = 86_400, 3_600, 900
UTC_OFFSET_S = 25_200
SEED = 42
SPEED = 1_200.0


def _next_working_day_start() -> int:
    """Local midnight (epoch s) of the next Thai working day after today: inside the window of
    TimeTariffIntervals the server publishes (a week ahead of the wall clock)."""
    today = (int(time.time()) + UTC_OFFSET_S) // DAY_S
    days = np.arange(today + 1, today + 8)
    working = ((days + 3) % 7 < 5) & ~holiday_mask(days, "TH")
    return int(days[working][0]) * DAY_S - UTC_OFFSET_S


START = _next_working_day_start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, path: str, body: dict | None = None, method: str | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            headers={"Content-Type": "application/json"},
            method=method or ("POST" if body is not None else "GET"),
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _wait(what: str, check, timeout_s: float = 90.0, every_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)


@pytest.fixture(scope="module")
def campus_day(ray_runtime, tmp_path_factory):
    base = tmp_path_factory.mktemp("managed")
    campus = load_campus(CAMPUS_CONFIG)
    settings = Settings(
        config_file=CAMPUS_CONFIG,
        meters=4,
        meters_per_actor=2,
        seed=SEED,
        influxdb_enabled=False,
        start_s=START,
        duration_s=DAY_S,
        interval_s=INTERVAL_S,
        speed=SPEED,
        data_dir=base / "data",
        certs_dir=base / "certs",
        namespace="gtx_managed",
    )
    layout = plan_layout(settings)
    meter_ids = [str(m) for m in layout.meters.meter_id]
    init_certs(base / "certs", meter_ids)
    t = campus.tariff
    server = start_ieee2030_5(
        Ieee2030_5Config(
            certs_dir=base / "certs",
            port=0,
            post_rate_s=1,
            poll_rate_s=2,
            tariff=TimeOfUseRates(
                0,
                t.on_peak_start_hour,
                t.on_peak_end_hour,
                t.on_peak_thb_per_kwh,
                t.off_peak_thb_per_kwh,
                t.ft_thb_per_kwh,
                t.export_thb_per_kwh,
            ),
        )
    )
    plan = ClientPlan(
        certs_dir=str(base / "certs"),
        server_url=f"https://127.0.0.1:{server.port}",
        pin=settings.ieee2030_5_pin,
    )
    port = _free_port()
    simulation = None
    app_name = start_rest_api(settings, layout, "127.0.0.1", port, None, server, True)
    try:
        simulation = start_simulation(settings, clients=plan, layout=layout)
        ray.get(simulation.clock.pause.remote())
        yield {
            "api": Api(port),
            "simulation": simulation,
            "settings": settings,
            "campus": campus,
            "meter_ids": meter_ids,
            "lfdi": {m: r["lfdi"] for m, r in load_devices_index(base / "certs").items()},
        }
    finally:
        stop_rest_api(app_name)
        if simulation is not None:
            simulation.stop()
            simulation.finish()
        stop_ieee2030_5(server)


def _clients(simulation) -> list[dict]:
    rows = []
    for actor in simulation.meter_actors:
        rows.extend(ray.get(actor.ieee2030_5_clients.remote(), timeout=30))
    return rows


def _polls(simulation, function_set: str) -> dict[str, int]:
    return {
        c["meter_id"]: c.get("function_sets", {}).get(function_set, {}).get("polls", 0)
        for c in _clients(simulation)
    }


def _responses(api: Api, mrid: str) -> dict[str, set[int]]:
    status, body = api.call(f"/api/ieee2030_5/admin/responses?subject={mrid}")
    assert status == 200, body
    out: dict[str, set[int]] = {}
    for row in body["result"]:
        out.setdefault(row["lfdi"], set()).add(row["status"])
    return out


def test_events_and_a_tariff_change_reach_the_stored_readings(campus_day):
    api, simulation = campus_day["api"], campus_day["simulation"]
    meter_ids, lfdi = campus_day["meter_ids"], campus_day["lfdi"]
    _wait(
        "every meter's function sets polled",
        lambda: (
            all(n >= 1 for n in _polls(simulation, "drlc").values())
            and len(_clients(simulation)) == 4
        ),
    )

    # --- the operator, before the day starts ------------------------------------------------
    status, shed = api.call(
        "/api/ieee2030_5/admin/dr/events",
        {
            "start": START + 10 * HOUR_S,
            "duration_s": HOUR_S,
            "reduction_pct": 30,
            "randomize_start_s": 600,
            "targets": meter_ids[:2],
            "description": "morning shave",
        },
    )
    assert status == 201, shed
    shed = shed["result"]
    status, cancelled = api.call(
        "/api/ieee2030_5/admin/dr/events",
        {
            "start": START + 15 * HOUR_S,
            "duration_s": 2 * HOUR_S,
            "reduction_pct": 25,
            "targets": [meter_ids[2]],
        },
    )
    assert status == 201, cancelled
    cancelled = cancelled["result"]
    before = _polls(simulation, "pricing")
    status, tariff = api.call(
        "/api/ieee2030_5/admin/tariffs",
        {
            "effective_from": START,
            "on_peak_start_hour": 13,
            "on_peak_end_hour": 20,
            "on_peak_thb_per_kwh": 5.0,
            "off_peak_thb_per_kwh": 2.0,
            "ft_thb_per_kwh": 0.0,
            "export_thb_per_kwh": 2.2,
            "name": "afternoon peak",
        },
    )
    assert status == 201, tariff
    # A malformed event is refused with the field named and never reaches a meter.
    status, body = api.call(
        "/api/ieee2030_5/admin/dr/events", {"start": START, "duration_s": 0, "reduction_pct": 5}
    )
    assert status == 422 and "duration_s" in json.dumps(body)
    status, body = api.call(
        "/api/ieee2030_5/admin/dr/events",
        {"start": START, "duration_s": 60, "reduction_pct": 5, "targets": ["NO_SUCH_METER"]},
    )
    assert status == 400 and "NO_SUCH_METER" in body["error"]

    targeted = {lfdi[m] for m in meter_ids[:2]}
    _wait(
        "the targeted meters received the event",
        lambda: set(m for m, s in _responses(api, shed["mrid"]).items() if 1 in s) == targeted,
    )
    _wait(
        "meter 2 received its event",
        lambda: lfdi[meter_ids[2]] in _responses(api, cancelled["mrid"]),
    )
    _wait(
        "every meter read the new prices",
        lambda: all(n >= before[m] + 2 for m, n in _polls(simulation, "pricing").items()),
    )

    # --- the day runs; the second event is cancelled half way ------------------------------
    api.call("/api/simulation", {"action": "resume"})
    half_way = START + 15 * HOUR_S + 45 * 60

    def clock_at_half_way():
        status, clock = api.call("/api/simulation")
        return status == 200 and clock["next_start_s"] >= half_way

    _wait("the second event's middle", clock_at_half_way, every_s=0.05)
    api.call("/api/simulation", {"action": "pause"})

    def paused_clock():
        status, clock = api.call("/api/simulation")  # 503 while a refresh timed out
        return clock if status == 200 and clock["paused"] else None

    clock = _wait("the clock to pause", paused_clock)
    cancel_at = clock["next_start_s"]
    assert half_way <= cancel_at < START + 17 * HOUR_S, "paused too late to cancel in the event"
    status, body = api.call(f"/api/ieee2030_5/admin/dr/events/{cancelled['id']}", method="DELETE")
    assert status == 200 and body["result"]["status"] == "cancelled", body
    assert body["result"]["status_time"] == cancel_at
    _wait(
        "meter 2 saw the cancellation",
        lambda: 6 in _responses(api, cancelled["mrid"]).get(lfdi[meter_ids[2]], set()),
    )
    api.call("/api/simulation", {"action": "resume"})
    assert simulation.wait(timeout_s=300), "the simulated day did not finish"

    # --- what the devices answered -----------------------------------------------------------
    _wait(
        "started and completed from both targeted meters",
        lambda: _responses(api, shed["mrid"]) == {who: {1, 2, 3} for who in targeted},
        timeout_s=60,
    )
    assert _responses(api, cancelled["mrid"]) == {lfdi[meter_ids[2]]: {1, 2, 6}}
    status, events = api.call("/api/ieee2030_5/admin/dr/events")
    by_id = {e["id"]: e for e in events["result"]}
    assert by_id[shed["id"]]["responses"] == {
        "event_received": 2,
        "event_started": 2,
        "event_completed": 2,
    }

    # --- what the meters did -----------------------------------------------------------------
    stored = read_readings(campus_day["settings"].data_dir).sort_by([("timestamp", "ascending")])
    n = len(meter_ids)
    assert stored.num_rows == 96 * n

    def grid(name: str) -> np.ndarray:
        values = stored.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        order = np.array([meter_ids.index(m) for m in stored.column("meter_id").to_pylist()])
        out = np.full((96, n), np.nan)
        rows = (stored.column("timestamp").cast("int64").to_numpy() - START) // INTERVAL_S
        out[rows, order] = values
        return out

    campus = campus_day["campus"]
    uncontrolled = MeterModel(fleet_group(campus, n, SEED, 0, n), campus, SEED, INTERVAL_S)
    baseline = uncontrolled.step(
        uncontrolled.initial_state(START),
        96,
        inputs=ModelInputs(tariffs=(campus.model_tariff(),)),
    ).batch
    base_load = baseline.column("energy_consumed").to_numpy().reshape(96, n)
    load, shed_kw = grid("energy_consumed"), grid("shed_kw")
    hour = np.arange(96) / 4.0  # local hour of each interval's start

    covered = (hour >= 10.25) & (hour < 11.0)  # whatever each meter's 0-10 min start offset
    np.testing.assert_allclose(shed_kw[covered][:, :2], 0.3 * base_load[covered][:, :2], rtol=1e-9)
    np.testing.assert_allclose(load[covered][:, :2], 0.7 * base_load[covered][:, :2], rtol=1e-9)
    first = hour == 10.0  # the randomised start falls inside it: a partial cut
    assert np.all(shed_kw[first][:, :2] <= 0.3 * base_load[first][:, :2] + 1e-9)
    assert np.all(shed_kw[:, 3] == 0) and np.allclose(load[:, 3], base_load[:, 3], rtol=1e-12)
    untouched = hour < 10.0
    np.testing.assert_allclose(load[untouched], base_load[untouched], rtol=1e-12)
    rebound = (hour >= 11.25) & (hour < 13.0)  # after each meter's randomised end
    assert np.all(load[rebound][:, :2] > base_load[rebound][:, :2])
    assert np.all(shed_kw[rebound][:, :2] == 0)

    cancel_hour = (cancel_at - START) / HOUR_S
    during = (hour >= 15.0) & (hour < cancel_hour)
    after = hour >= cancel_hour
    np.testing.assert_allclose(shed_kw[during, 2], 0.25 * base_load[during, 2], rtol=1e-9)
    assert np.all(shed_kw[after, 2] == 0)

    price = grid("price_thb_per_kwh")[:, 0]
    assert np.allclose(price[(hour >= 13) & (hour < 20)], 5.0)
    assert np.allclose(price[(hour < 13) | (hour >= 20)], 2.0)
    battery = grid("battery_power")[:, 0]  # meter 0 is the hybrid: + charging, − discharging
    assert np.all(battery[(hour >= 9) & (hour < 13)] >= 0), "discharged in the old on-peak hours"
    assert np.any(battery[(hour >= 13) & (hour < 20)] < 0), "did not discharge in the new ones"
    hours = INTERVAL_S / HOUR_S
    balance = (load - grid("energy_generated") + np.nan_to_num(grid("battery_power"))) * hours
    np.testing.assert_allclose(
        balance, grid("energy_import_kwh") - grid("energy_export_kwh"), rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        grid("import_cost_thb"), grid("energy_import_kwh") * grid("price_thb_per_kwh"), rtol=1e-12
    )

    # --- the run can be replayed from what the server held ------------------------------------
    status, exported = api.call("/api/ieee2030_5/admin/scenario")
    assert status == 200, exported
    replay = parse_scenario(exported, "exported scenario")
    assert {e.mrid for e in replay.events} == {shed["mrid"], cancelled["mrid"]}
    assert [set(e.spec.targets) for e in replay.events] == [set(meter_ids[:2]), {meter_ids[2]}]
    inputs = scenario_model_inputs(replay, campus.model_tariff())
    replayed = uncontrolled.step(uncontrolled.initial_state(START), 96, inputs=inputs).batch
    for name in ("energy_consumed", "shed_kw", "battery_power", "energy_import_kwh"):
        again = np.nan_to_num(replayed.column(name).to_numpy(zero_copy_only=False).reshape(96, n))
        np.testing.assert_allclose(again, np.nan_to_num(grid(name)), rtol=1e-9, atol=1e-9)

    # --- and from what the meters recorded they learned (also for someone else's server) ----
    learned = load_scenario(campus_day["settings"].data_dir / "learned")
    assert {e.mrid for e in learned.events} == {shed["mrid"], cancelled["mrid"]}
    assert learned.prices, "the meters recorded the prices they learned"
    replayed = uncontrolled.step(
        uncontrolled.initial_state(START),
        96,
        inputs=scenario_model_inputs(learned, campus.model_tariff()),
    ).batch
    for name in ("energy_consumed", "shed_kw", "battery_power", "price_thb_per_kwh"):
        again = np.nan_to_num(replayed.column(name).to_numpy(zero_copy_only=False).reshape(96, n))
        np.testing.assert_allclose(again, np.nan_to_num(grid(name)), rtol=1e-9, atol=1e-9)
