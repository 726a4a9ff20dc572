"""The clock stands in for meter actors that are still starting (``actors.standin``): a paced run
stores its first intervals before any meter actor exists, the actors take over from the state
the clock reached, every reading (stepped by either) is the one the model gives, and the meters'
2030.5 clients mirror the readings the clock stepped for them too."""

from __future__ import annotations

import time

import pytest
import ray

from gtx_ray.actors.meter import ClientPlan
from gtx_ray.fleet import generate_fleet
from gtx_ray.ieee2030_5.client.quantities import QUANTITIES
from gtx_ray.ieee2030_5.pki import init_certs
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.service import start_ieee2030_5, status_ieee2030_5, stop_ieee2030_5
from gtx_ray.model.meters import MeterModel
from gtx_ray.runtime import plan_layout, start_clock, start_meters
from gtx_ray.storage.parquet import read_readings
from tests.integration.runs import JAN_1_2025_BANGKOK, by_time, finish, run_settings
from tests.unit.helpers import run

pytestmark = pytest.mark.ray


def _clock_status(simulation) -> dict:
    return ray.get(simulation.clock.status.remote(), timeout=30)


def _wait_clock(simulation, done, what: str, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = _clock_status(simulation)
        if done(status):
            return status
        assert time.monotonic() < deadline, f"{what}: {status}"
        time.sleep(0.1)


def _meter_actors_exist(simulation) -> list[str]:
    names = set(simulation.layout.meter_actor_names)
    return [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == simulation.settings.namespace and a["name"] in names
    ]


def test_the_clock_stands_in_until_the_meter_actors_take_over(ray_runtime, campus, tmp_path):
    settings = run_settings(tmp_path, meters=40, meters_per_actor=10, seed=11, speed=3600.0)
    simulation = start_clock(settings, plan_layout(settings))
    try:
        early = _wait_clock(
            simulation, lambda s: s["intervals_done"] >= 8, "no interval stored without actors"
        )
        assert _meter_actors_exist(simulation) == []
        assert early["groups_standing_in"] == 4
        start_meters(simulation)
        handed = _wait_clock(
            simulation, lambda s: s["groups_standing_in"] == 0, "the actors never took over"
        )
        assert handed["intervals_done"] < 96, "the run ended before the actors took over"
        final = finish(simulation)
    except BaseException:
        simulation.stop()
        simulation.finish()
        raise
    assert final["storage"]["rows_stored"] == 40 * 96
    assert final["storage"]["duplicates_ignored"] == 0
    assert final["clock"]["groups_standing_in"] == 0
    fleet = generate_fleet(campus, 40, seed=11)
    expected, _ = run(MeterModel(fleet, campus, 11, 900), JAN_1_2025_BANGKOK, 96, 96)
    assert by_time(read_readings(settings.data_dir)).equals(by_time(expected))


def test_clients_mirror_the_readings_the_clock_stepped_for_them(ray_runtime, tmp_path):
    settings = run_settings(
        tmp_path,
        meters=4,
        meters_per_actor=2,
        speed=3600.0,
        duration_s=6 * 3600,
        certs_dir=tmp_path / "certs",
        namespace="gtx_standin_clients",
    )
    layout = plan_layout(settings)
    intervals = 24
    init_certs(settings.certs_dir, list(layout.meters.meter_id))
    server = start_ieee2030_5(
        Ieee2030_5Config(certs_dir=settings.certs_dir, port=0, post_rate_s=1, poll_rate_s=5)
    )
    plan = ClientPlan(
        certs_dir=str(settings.certs_dir),
        server_url=f"https://127.0.0.1:{server.port}",
        pin=settings.ieee2030_5_pin,
    )
    try:
        simulation = start_clock(settings, layout)
        try:
            _wait_clock(simulation, lambda s: s["intervals_done"] >= 4, "nothing stored")
            start_meters(simulation, plan)
            _wait_clock(simulation, lambda s: s["finished"], "the run did not end")
            deadline = time.monotonic() + 120
            while True:  # every reading of the run, stepped by the clock or the actor, posted
                clients = [
                    c
                    for actor in simulation.meter_actors
                    for c in ray.get(actor.ieee2030_5_clients.remote(), timeout=30)
                ]
                if all(c["readings_posted"] == intervals for c in clients):
                    break
                assert time.monotonic() < deadline, clients
                time.sleep(0.2)
            final = finish(simulation)
        except BaseException:
            simulation.stop()
            simulation.finish()
            raise
        service = status_ieee2030_5(server)
    finally:
        stop_ieee2030_5(server)
    assert final["storage"]["rows_stored"] == 4 * intervals
    assert len(clients) == 4
    assert service["readings_mirrored"] == 4 * intervals * len(QUANTITIES)
    assert service["server_errors"] == 0


def test_without_stand_ins_the_clock_waits_for_its_meters_and_still_stops(ray_runtime, tmp_path):
    """As fast as possible the clock steps nothing itself: it waits for the meter actors, and a
    stop before they exist (the 2030.5 server failed to start, say) ends the run at once."""
    settings = run_settings(tmp_path, namespace="gtx_standin_none")
    simulation = start_clock(settings, plan_layout(settings))
    time.sleep(2.0)
    status = _clock_status(simulation)
    assert status["running"] and status["intervals_done"] == 0
    assert status["groups_standing_in"] == 0
    began = time.monotonic()
    simulation.stop()
    final = simulation.finish(timeout_s=60)
    assert time.monotonic() - began < 30
    assert final["storage"]["rows_stored"] == 0 and final["clock"]["finished"]
