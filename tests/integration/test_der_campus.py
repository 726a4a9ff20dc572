"""DER controls end to end, on real sockets: an operator creates DERControls through the REST
admin API, the built-in IEEE 2030.5 server publishes them over mutual TLS, the meters with PV or
a battery (2030.5 clients on Ray) report their DER, follow the controls and answer them, and
the stored readings show it.

Four generated meters (seed 42: meter 0 a hybrid with a battery, meters 1 and 3 prosumers,
meter 2 a consumer) run 08:00-19:15 local of a working day at 1,200× real time, paused at the
start while the operator creates an export limit of 0 W for the prosumers 11:00-13:00 and a
fixed-W discharge at 50 % of the hybrid's battery rating 18:00-19:00. The server's tariff has
its on-peak at 18:00-22:00, so the battery holds its charge until the hybrid's hour (under the
campus tariff it would be empty by then). The stored readings are compared with the same meters
stepped without any control (the model is a pure function of seed and time): the prosumers
export nothing in the covered intervals (what they would have exported is curtailed) and export
as before afterwards, the consumer is untouched, the hybrid's battery discharges at the
set-point in its hour (and at the price policy's full rate without the control), the energy
balance closes in every interval. The server holds each DER meter's DERCapability (from its
ratings) and a DERStatus, and the DERControlResponses (received, started, completed) reach the
operator's view. That every DER body a meter writes is valid against the CSIP-AUS schema is
tested on the document builders (tests/ieee2030_5/test_der_documents.py) and on real sockets
(tests/ieee2030_5/test_der_client.py).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import ray

from gtx_ray.actors.meter import ClientPlan, fleet_group
from gtx_ray.fleet import load_campus
from gtx_ray.ieee2030_5.der import DER_TYPE_PV, DER_TYPE_PV_AND_STORAGE
from gtx_ray.ieee2030_5.events import TimeOfUseRates
from gtx_ray.ieee2030_5.pki import init_certs, load_devices_index
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.service import start_ieee2030_5, stop_ieee2030_5
from gtx_ray.model.der_dispatch import MODE_BITS
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from gtx_ray.runtime import plan_layout, start_simulation
from gtx_ray.scenario import load_scenario
from gtx_ray.scenario import model_inputs as scenario_model_inputs
from gtx_ray.serve.api import start_rest_api, stop_rest_api
from gtx_ray.settings import Settings
from gtx_ray.storage.parquet import read_readings
from tests.conftest import CAMPUS_CONFIG
from tests.integration.test_managed_campus import (
    START,
    Api,
    _clients,
    _free_port,
    _polls,
    _wait,
)

HOUR_S, INTERVAL_S = 3_600, 900
SEED = 42
SPEED = 1_200.0
FIRST_HOUR, END_HOUR = 8.0, 19.25
"""The simulated span, local hours: before the first control, to just after the last."""
BEGIN = START + int(FIRST_HOUR * HOUR_S)
N_INTERVALS = int((END_HOUR - FIRST_HOUR) * HOUR_S) // INTERVAL_S
ON_PEAK = (18.0, 22.0)
FIXED_PCT = 50.0


@pytest.fixture(scope="module")
def der_day(ray_runtime, tmp_path_factory):
    base = tmp_path_factory.mktemp("der")
    campus = load_campus(CAMPUS_CONFIG)
    settings = Settings(
        config_file=CAMPUS_CONFIG,
        meters=4,
        meters_per_actor=2,
        seed=SEED,
        influxdb_enabled=False,
        start_s=BEGIN,
        duration_s=N_INTERVALS * INTERVAL_S,
        interval_s=INTERVAL_S,
        speed=SPEED,
        data_dir=base / "data",
        certs_dir=base / "certs",
        namespace="gtx_der",
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
                ON_PEAK[0],
                ON_PEAK[1],
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


def _der_devices(api: Api) -> dict[str, dict]:
    status, body = api.call("/api/ieee2030_5/der/devices")
    assert status == 200, body
    return {row["meter_id"]: row for row in body["result"]}


def _der_responses(api: Api) -> dict[str, dict[str, int]]:
    status, body = api.call("/api/ieee2030_5/admin/der/controls")
    assert status == 200, body
    return {c["mrid"]: c["responses"] for c in body["result"]}


def test_der_controls_reach_the_stored_readings(der_day):
    api, simulation = der_day["api"], der_day["simulation"]
    meter_ids, campus = der_day["meter_ids"], der_day["campus"]
    n = len(meter_ids)
    meters = fleet_group(campus, n, SEED, 0, n)
    assert meters.meter_type.tolist() == [2, 1, 0, 1], "seed 42: hybrid, prosumer, consumer, ..."
    hybrid, prosumers, consumer = meter_ids[0], [meter_ids[1], meter_ids[3]], meter_ids[2]
    der_meters = [hybrid, *prosumers]

    # --- before the day: the DER meters found their DER and reported it ----------------------
    _wait(
        "every meter's function sets polled, the DER ones their DER",
        lambda: (
            len(_clients(simulation)) == n
            and all(v >= 1 for v in _polls(simulation, "pricing").values())
            and all(_polls(simulation, "der")[m] >= 1 for m in der_meters)
        ),
    )
    assert _polls(simulation, "der")[consumer] == 0, "a consumer has no DER poller"
    devices = _wait(
        "each DER meter's DERCapability on the server",
        lambda: (d := _der_devices(api)) and all(d[m]["capability"] for m in der_meters) and d,
    )
    for i, m in enumerate(meter_ids):
        cap = devices[m]["capability"]
        if m == consumer:
            assert cap is None
            continue
        assert cap["rated_w_kw"] == pytest.approx(float(meters.inverter_kw[i]))
        assert cap["doe_modes_supported"] == 0x0F
        assert devices[m]["settings"]["set_max_w_kw"] == pytest.approx(cap["rated_w_kw"])
    hyb = devices[hybrid]["capability"]
    assert hyb["der_type"] == DER_TYPE_PV_AND_STORAGE
    assert hyb["rated_wh_kwh"] == pytest.approx(float(meters.battery_kwh[0]))
    assert hyb["max_discharge_rate_kw"] == pytest.approx(float(meters.battery_kw[0]))
    assert devices[prosumers[0]]["capability"]["der_type"] == DER_TYPE_PV

    # --- the operator, before the day starts ------------------------------------------------
    status, cap_control = api.call(
        "/api/ieee2030_5/admin/der/controls",
        {
            "start": START + 11 * HOUR_S,
            "duration_s": 2 * HOUR_S,
            "export_limit_kw": 0,
            "targets": prosumers,
            "description": "midday export cap",
        },
    )
    assert status == 201, cap_control
    cap_control = cap_control["result"]
    status, discharge = api.call(
        "/api/ieee2030_5/admin/der/controls",
        {
            "start": START + 18 * HOUR_S,
            "duration_s": HOUR_S,
            "fixed_w_pct": FIXED_PCT,
            "targets": [hybrid],
            "description": "evening discharge",
        },
    )
    assert status == 201, discharge
    discharge = discharge["result"]
    _wait(
        "the targeted meters received their controls",
        lambda: (
            (r := _der_responses(api))[cap_control["mrid"]].get("event_received") == 2
            and r[discharge["mrid"]].get("event_received") == 1
        ),
    )

    # --- the day runs -------------------------------------------------------------------------
    api.call("/api/simulation", {"action": "resume"})
    assert simulation.wait(timeout_s=300), "the simulated day did not finish"

    # --- what the devices answered and reported ------------------------------------------------
    done = {"event_received": 1, "event_started": 1, "event_completed": 1}
    _wait(
        "started and completed from every targeted meter",
        lambda: (
            (r := _der_responses(api))[cap_control["mrid"]] == {k: 2 for k in done}
            and r[discharge["mrid"]] == done
        ),
        timeout_s=60,
    )
    last = START + int(END_HOUR * HOUR_S) - INTERVAL_S
    devices = _wait(  # DERStatus and DERAvailability are posts of their own: wait for both
        "each DER meter's DERStatus, and the hybrid's DERAvailability, of the last interval",
        lambda: (
            (d := _der_devices(api))
            and all(d[m]["status"] and d[m]["status"]["reading_time"] == last for m in der_meters)
            and (d[hybrid]["availability"] or {}).get("reading_time") == last
            and d
        ),
        timeout_s=60,
    )
    assert devices[consumer]["status"] is None
    hybrid_status = devices[hybrid]["status"]
    assert 0 <= hybrid_status["state_of_charge_pct"] <= 100
    assert hybrid_status["operational_mode_status"] == 2
    assert devices[hybrid]["availability"]["reading_time"] == last

    # --- what the meters did -----------------------------------------------------------------
    stored = read_readings(der_day["settings"].data_dir).sort_by([("timestamp", "ascending")])
    assert stored.num_rows == N_INTERVALS * n

    def grid(name: str) -> np.ndarray:
        values = stored.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        order = np.array([meter_ids.index(m) for m in stored.column("meter_id").to_pylist()])
        out = np.full((N_INTERVALS, n), np.nan)
        rows = (stored.column("timestamp").cast("int64").to_numpy() - BEGIN) // INTERVAL_S
        out[rows, order] = values
        return out

    tariff = replace(
        campus.model_tariff(), on_peak_start_hour=ON_PEAK[0], on_peak_end_hour=ON_PEAK[1]
    )
    uncontrolled = MeterModel(meters, campus, SEED, INTERVAL_S)
    baseline = uncontrolled.step(
        uncontrolled.initial_state(BEGIN), N_INTERVALS, inputs=ModelInputs(tariffs=(tariff,))
    ).batch

    def base(name: str) -> np.ndarray:
        column = baseline.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        return column.reshape(N_INTERVALS, n)

    hour = FIRST_HOUR + np.arange(N_INTERVALS) / 4.0  # local hour of each interval's start
    p = [1, 3]
    export, curtailed = grid("grid_feed_in"), grid("curtailed_kw")
    base_export = base("grid_feed_in")

    capped = (hour >= 11.0) & (hour < 13.0)
    assert np.any(base_export[capped][:, p] > 1.0), "the prosumers would export at midday"
    assert np.all(export[capped][:, p] == 0), "a prosumer exported under a 0 W export limit"
    assert np.all(grid("energy_export_kwh")[capped][:, p] == 0)
    # what they would have exported is curtailed (no battery to take it)
    np.testing.assert_allclose(curtailed[capped][:, p], base_export[capped][:, p], atol=1e-9)
    exported = base_export[capped][:, p] > 0
    assert np.all(curtailed[capped][:, p][exported] > 0)
    # before and after the limit, the prosumers and the consumer do what they would have done
    free = ~capped
    for name in ("grid_feed_in", "energy_generated", "energy_consumed", "energy_import_kwh"):
        np.testing.assert_allclose(grid(name)[free][:, p], base(name)[free][:, p], rtol=1e-12)
        np.testing.assert_allclose(grid(name)[:, 2], base(name)[:, 2], rtol=1e-12)
    assert np.all(curtailed[free][:, p] == 0) and np.all(curtailed[:, 2] == 0)
    resumed = (hour >= 13.0) & (hour < 14.0)
    assert np.all(export[resumed, 1] > 0), "export did not resume after the limit"
    # each reading says what held its DER: the event's export limit, else nothing
    mode = grid("der_mode")
    assert np.all(mode[capped][:, p] == MODE_BITS["export_limit"] | MODE_BITS["event"])
    assert np.all(mode[free][:, p] == 0) and np.all(np.isnan(mode[:, 2]))

    battery = grid("battery_power")[:, 0]  # + charging, − discharging
    rating = float(meters.battery_kw[0])
    evening = (hour >= 18.0) & (hour < 19.0)
    np.testing.assert_allclose(battery[evening], -FIXED_PCT / 100.0 * rating, rtol=1e-9)
    assert np.all(grid("der_mode")[evening, 0] == MODE_BITS["fixed_w"] | MODE_BITS["event"])
    base_battery = base("battery_power")[:, 0]
    assert np.all(base_battery[evening] < battery[evening] - 1.0), "the policy discharges more"
    before = hour < 18.0
    np.testing.assert_allclose(battery[before], base_battery[before], rtol=1e-9, atol=1e-9)
    assert np.all(battery[hour >= 19.0] < battery[evening][0]), "the policy takes over again"

    hours = INTERVAL_S / HOUR_S
    balance = (grid("energy_consumed") - grid("energy_generated")) * hours
    balance += np.nan_to_num(grid("battery_power")) * hours
    np.testing.assert_allclose(
        balance, grid("energy_import_kwh") - grid("energy_export_kwh"), rtol=0, atol=1e-9
    )

    # --- what the meters recorded they learned replays the same DER operation ----------------
    learned = load_scenario(der_day["settings"].data_dir / "learned")
    assert {c.mrid for c in learned.der_controls} == {cap_control["mrid"], discharge["mrid"]}
    replayed = uncontrolled.step(
        uncontrolled.initial_state(BEGIN),
        N_INTERVALS,
        inputs=scenario_model_inputs(learned, tariff),
    ).batch
    for name in ("grid_feed_in", "curtailed_kw", "battery_power", "der_mode"):
        column = replayed.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        again = np.nan_to_num(column.reshape(N_INTERVALS, n))
        np.testing.assert_allclose(again, np.nan_to_num(grid(name)), rtol=1e-9, atol=1e-9)
