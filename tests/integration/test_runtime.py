"""The simulator on a real local Ray runtime: actors, clock, aggregator, Parquet output."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
import ray

from gtx_ray.fleet import generate_fleet
from gtx_ray.model.meters import MeterModel
from gtx_ray.runtime import SimulationFailed, start_simulation, wall_anchor_s
from gtx_ray.settings import Settings
from gtx_ray.storage.parquet import read_readings
from tests.integration.runs import (
    JAN_1_2025_BANGKOK,
    by_time,
    finish,
    run_settings,
    wait_stored_windows,
)
from tests.unit.helpers import assert_physics, run


def _settings(tmp_path, **overrides) -> Settings:
    return run_settings(tmp_path, **overrides)


_sorted = by_time
_finish = finish


def test_campus_day_on_25_meter_actors(ray_runtime, campus, campus_meters, tmp_path):
    settings = _settings(tmp_path)
    simulation = start_simulation(settings)
    try:
        names = {
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == "gtx_ray_tests"
        }
        expected = {f"meter:AMI_METER_UTCC_{i:03d}" for i in range(1, 26)}
        assert expected <= names and {"clock", "aggregator"} <= names
        assert len(simulation.meter_actors) == 25
        final = _finish(simulation)
    except BaseException:
        simulation.stop()
        simulation.finish()
        raise
    assert final["storage"]["rows_stored"] == 25 * 96
    assert final["clock"]["intervals_done"] == 96

    stored = _sorted(read_readings(settings.data_dir))
    assert stored.num_rows == 25 * 96
    timestamps = np.unique(stored.column("timestamp").cast(pa.int64()).to_numpy())
    assert np.array_equal(timestamps, JAN_1_2025_BANGKOK + 900 * np.arange(96))
    model = MeterModel(campus_meters, campus, settings.seed, 900)
    expected_table, _ = run(model, JAN_1_2025_BANGKOK, 96, 96)
    assert stored.equals(_sorted(expected_table))
    assert_physics(expected_table, model, 900)
    # The meter actors are gone once the run has finished.
    remaining = {
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "gtx_ray_tests"
    }
    assert not remaining & expected


def test_packed_fleet_equals_one_process(ray_runtime, campus, tmp_path):
    settings = _settings(tmp_path, meters=2000, meters_per_actor=500, seed=7)
    simulation = start_simulation(settings)
    assert len(simulation.meter_actors) == 4
    final = _finish(simulation)
    assert final["storage"]["rows_stored"] == 2000 * 96
    for name in simulation.layout.actor_names:  # free at once: a next run may reuse them
        with pytest.raises(ValueError):
            ray_runtime.get_actor(name, namespace=settings.namespace)

    fleet = generate_fleet(campus, 2000, seed=7)
    expected, _ = run(MeterModel(fleet, campus, 7, 900), JAN_1_2025_BANGKOK, 96, 96)
    assert _sorted(read_readings(settings.data_dir)).equals(_sorted(expected))


def test_killed_meter_actors_lose_and_duplicate_nothing(ray_runtime, campus, tmp_path):
    """Kill one meter actor with ray.kill and another with SIGKILL while windows flow."""
    days = 3
    settings = _settings(
        tmp_path,
        meters=400,
        meters_per_actor=100,
        seed=3,
        duration_s=days * 86_400,
        speed=days * 86_400 / 12.0,
        window_intervals=2,
        max_in_flight=2,
    )
    simulation = start_simulation(settings)
    try:
        wait_stored_windows(simulation, 3)  # so the kills land mid-run
        ray.kill(simulation.meter_actors[1], no_restart=False)
        pid = ray.get(simulation.meter_actors[2].pid.remote(), timeout=60)
        os.kill(pid, signal.SIGKILL)
        status = simulation.status()
        assert status["clock"]["intervals_done"] < days * 96, "the run ended before the kills"
        new_pid = ray.get(simulation.meter_actors[2].pid.remote(), timeout=120)
        assert new_pid != pid, "the SIGKILLed actor was not restarted"
        final = _finish(simulation)
    except BaseException:
        simulation.stop()
        simulation.finish()
        raise
    assert final["storage"]["rows_stored"] == 400 * days * 96
    assert final["storage"]["duplicates_ignored"] == 0

    stored = _sorted(read_readings(settings.data_dir))
    fleet = generate_fleet(campus, 400, seed=3)
    expected, _ = run(MeterModel(fleet, campus, 3, 900), JAN_1_2025_BANGKOK, days * 96, 96)
    assert stored.num_rows == expected.num_rows
    assert stored.equals(_sorted(expected))


def test_real_time_pacing_and_lag(ray_runtime, tmp_path):
    """At speed 1 with a 1 s interval, readings arrive at the wall clock's pace."""
    now = int(time.time())
    settings = _settings(tmp_path, meters=10, interval_s=1, speed=1.0, start_s=now, duration_s=6)
    began = time.monotonic()
    simulation = start_simulation(settings)
    final = _finish(simulation, timeout_s=120)
    elapsed = time.monotonic() - began
    assert final["storage"]["rows_stored"] == 10 * 6
    assert elapsed >= 5.0, "a 6-second real-time run finished too early"
    assert final["clock"]["lag_s"] < 5.0
    table = read_readings(settings.data_dir)
    ts = np.unique(table.column("timestamp").cast(pa.int64()).to_numpy())
    assert np.array_equal(ts, now + np.arange(6))


def test_real_time_from_now_is_the_wall_clock(ray_runtime, tmp_path):
    """Real time from "now": simulated time is the wall clock, so an interval is stored as soon
    as it has ended, however long the actors took to start (not an interval after that)."""
    settings = _settings(tmp_path, meters=10, interval_s=5, speed=1.0, start_s=None, duration_s=10)
    simulation = start_simulation(settings)
    plan = simulation.plan
    assert plan.wall_anchor_s == plan.start_s
    final = _finish(simulation, timeout_s=120)
    assert final["storage"]["rows_stored"] == 10 * 2
    assert time.time() < plan.end_s + 10.0, "the last interval was stored long after it ended"
    for other in ({"start_s": plan.start_s}, {"speed": 60.0}):  # then: from the clock's start
        assert wall_anchor_s(replace(settings, **other), plan.start_s) is None


def test_too_short_a_run_is_refused(ray_runtime, tmp_path):
    from gtx_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="at least one interval"):
        start_simulation(_settings(tmp_path, duration_s=10))


def _kill_mid_run(simulation, actor_of, times: int = 2) -> None:
    """SIGKILL the actor ``actor_of(simulation)`` ``times`` times while windows flow, each time
    once it has been restarted and more windows were stored."""
    for _ in range(times):
        deadline = time.monotonic() + 180
        before = None
        while True:  # wait until windows are being stored, so the kill lands mid-run
            status = simulation.status()
            if status:
                stored = status["storage"]["windows_stored"] + status["clock"]["intervals_done"]
                if before is None:
                    before = stored
                elif stored >= before + 3:
                    break
            assert time.monotonic() < deadline, "no progress before the kill"
            time.sleep(0.2)
        assert not status["clock"]["finished"], "the run ended before the kill"
        pid = ray.get(actor_of(simulation).pid.remote(), timeout=60)
        os.kill(pid, signal.SIGKILL)
        new_pid = ray.get(actor_of(simulation).pid.remote(), timeout=180)
        assert new_pid != pid, "the killed actor was not restarted"


@pytest.mark.parametrize(
    ("victim", "aggregators"),
    [("aggregator", 1), ("clock", 1), ("aggregator-2", 3), ("clock", 3)],
)
def test_sigkilled_clock_or_aggregator_store_every_interval_once(
    ray_runtime, campus, tmp_path, victim, aggregators
):
    """SIGKILL an aggregator (or the clock) twice mid-run: Ray restarts it, it resumes from the
    run's checkpoint and Parquet parts, and the stored readings equal a run without faults.
    With 3 aggregators each checkpoints on its own, so a restarted clock finds their meter
    groups at different times and steps each from where its aggregator stands."""
    days = 4
    settings = _settings(
        tmp_path,
        meters=200,
        meters_per_actor=25 if aggregators > 1 else 100,
        aggregators=aggregators,
        seed=5,
        duration_s=days * 86_400,
        speed=days * 86_400 / 30.0,
        window_intervals=2,
        max_in_flight=2,
    )
    simulation = start_simulation(settings)
    try:
        assert len(simulation.aggregators) == aggregators
        actor_of = {"clock": lambda s: s.clock, "aggregator": lambda s: s.aggregators[0]}
        _kill_mid_run(simulation, actor_of.get(victim, lambda s: s.aggregators[-1]))
        deadline = time.monotonic() + 300
        while not simulation.wait(timeout_s=1.0):
            assert time.monotonic() < deadline, "simulation did not finish in time"
        latest = ray.get(simulation.aggregator.latest.remote(), timeout=60)
        final = simulation.finish()
    except SimulationFailed as exc:
        pytest.fail(f"the run failed: {exc.cause}")
    except BaseException:
        simulation.stop()
        simulation.finish()
        raise
    assert final["storage"]["stored_until_s"] == JAN_1_2025_BANGKOK + days * 86_400
    assert final["storage"]["rows_stored"] == 200 * days * 96
    assert final["storage"].get("aggregators", 1) == aggregators
    assert latest.num_rows == 200  # the leader's view covers every aggregator's meters
    stored = _sorted(read_readings(settings.data_dir))
    fleet = generate_fleet(campus, 200, seed=5)
    expected, _ = run(MeterModel(fleet, campus, 5, 900), JAN_1_2025_BANGKOK, days * 96, 96)
    assert stored.num_rows == expected.num_rows  # nothing lost, nothing twice
    assert stored.equals(_sorted(expected))


def test_a_meter_actor_gone_for_good_ends_the_run_after_bounded_recoveries(ray_runtime, tmp_path):
    """A meter actor killed without restart: the clock resumes from the checkpoint a bounded
    number of times, then the run ends on the actor's death (not a hang), and what was stored
    holds every interval before the failure once."""
    days = 4
    settings = _settings(
        tmp_path,
        meters=40,
        meters_per_actor=20,
        duration_s=days * 86_400,
        speed=days * 86_400 / 30.0,
        window_intervals=2,
        max_in_flight=2,
    )
    simulation = start_simulation(settings)
    wait_stored_windows(simulation, 2)
    ray.kill(simulation.meter_actors[1], no_restart=True)
    began = time.monotonic()
    while not (status := simulation.status()) or not status["clock"]["recoveries"]:
        assert time.monotonic() - began < 60, "the clock did not try to recover"
        time.sleep(0.2)
    assert "Actor" in status["clock"]["last_recovery"]["cause"]
    with pytest.raises(SimulationFailed) as failed:
        _finish(simulation, timeout_s=120)
    assert isinstance(failed.value.cause, ray.exceptions.RayActorError), failed.value.cause
    assert time.monotonic() - began < 120
    storage = failed.value.storage
    assert storage is not None and storage["stored_until_s"] < JAN_1_2025_BANGKOK + days * 86_400
    stored = read_readings(settings.data_dir)
    intervals = (storage["stored_until_s"] - JAN_1_2025_BANGKOK) // 900
    assert stored.num_rows == 40 * intervals == storage["rows_stored"]


def test_a_scenario_run_is_reproducible_and_independent_of_windows(ray_runtime, tmp_path):
    """A run with a scenario (one demand-response event, one tariff change) stores the same
    readings twice with the same seed, and again when the clock steps it in other windows;
    the event is in them (a cut where it applies) and the tariff change moves the price."""
    import json

    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps(
            {
                "dr_events": [
                    {
                        "start": JAN_1_2025_BANGKOK + 86_400 + 14 * 3600,
                        "duration_s": 3600,
                        "reduction_pct": 25,
                        "randomize_start_s": 900,
                        "randomize_duration_s": 600,
                    }
                ],
                "tariffs": [
                    {
                        "effective_from": JAN_1_2025_BANGKOK + 86_400,
                        "on_peak_start_hour": 12,
                        "on_peak_end_hour": 18,
                        "on_peak_thb_per_kwh": 6.0,
                        "off_peak_thb_per_kwh": 2.0,
                    }
                ],
            }
        )
    )
    runs = []
    # default windows: the whole two days in one step per actor; then steps of 7 intervals,
    # which cut through the event, its rebound and the tariff change
    for name, windows in (("first", None), ("again", None), ("other_windows", 7)):
        settings = _settings(
            tmp_path / name,
            meters=6,
            meters_per_actor=3,
            seed=11,
            duration_s=2 * 86_400,
            scenario_file=scenario,
            window_intervals=windows,
        )
        _finish(start_simulation(settings))
        runs.append(_sorted(read_readings(settings.data_dir)))
    assert runs[0].num_rows == 6 * 192
    assert runs[0].equals(runs[1])
    assert runs[0].equals(runs[2])
    shed = np.asarray(runs[0].column("shed_kw"))
    assert shed.sum() > 0 and np.count_nonzero(shed) <= 6 * 6  # ≤ 1 h 25 min of 15-min rows
    price = np.asarray(runs[0].column("price_thb_per_kwh"))
    assert set(np.round(price, 4)) >= {round(6.0 + 0.3972, 4), round(2.0 + 0.3972, 4)}
