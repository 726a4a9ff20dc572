"""Physics invariants over whole simulated years, many seeds and random windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtx_ray.fleet import generate_fleet
from gtx_ray.model.meters import MeterModel
from tests.unit.helpers import DAY_S, assert_physics, column, run

YEAR_2025_BANGKOK = 1_735_664_400  # 2025-01-01 00:00 +07:00


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_campus_year_keeps_the_physics(campus, campus_meters, seed):
    model = MeterModel(campus_meters, campus, seed=seed, interval_s=900)
    table, state = run(model, YEAR_2025_BANGKOK, 365 * 96, window=96 * 7)
    assert table.num_rows == 25 * 365 * 96
    assert_physics(table, model, 900)
    # PV is exactly zero whenever the sun is down at the interval's mid-point (independent check
    # with pvlib's ephemeris algorithm, not the SPA the model uses), positive at every local noon.
    mids = pd.to_datetime(YEAR_2025_BANGKOK + 450 + 900 * np.arange(365 * 96), unit="s", utc=True)
    elevation = pvlib.solarposition.ephemeris(mids, 13.78, 100.56)["elevation"].to_numpy()
    pv = column(table, "energy_generated", len(campus_meters))
    assert np.all(pv[elevation < -0.5] == 0)
    noon = (np.arange(365 * 96) % 96) == 48
    assert np.all(pv[noon][:, campus_meters.pv_kwp > 0] > 0)
    assert state.next_start_s == YEAR_2025_BANGKOK + 365 * DAY_S


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    start_day=st.integers(0, 3 * 365),
    n_intervals=st.integers(1, 200),
    window=st.integers(1, 96),
    interval_s=st.sampled_from([60, 300, 900, 3600]),
    n_meters=st.integers(1, 60),
)
def test_random_fleets_and_windows_keep_the_physics(
    campus, seed, start_day, n_intervals, window, interval_s, n_meters
):
    meters = generate_fleet(campus, n_meters, seed)
    model = MeterModel(meters, campus, seed=seed, interval_s=interval_s)
    start = 1_704_067_200 + start_day * DAY_S + (seed % 96) * 900
    table, _ = run(model, start, n_intervals, window)
    assert table.num_rows == n_meters * n_intervals
    assert_physics(table, model, interval_s)


def test_batteries_store_surplus_and_discharge_on_peak(campus, campus_meters):
    """The dispatch policy does what it says: charge off-peak, discharge on weekday peaks."""
    model = MeterModel(campus_meters, campus, seed=5, interval_s=900)
    table, _ = run(model, YEAR_2025_BANGKOK + 13 * DAY_S, 7 * 96, window=96)  # Tue 14 Jan 2025 on
    n = len(campus_meters)
    battery = column(table, "battery_power", n)[:, campus_meters.battery_kwh > 0]
    local_hour = ((np.arange(7 * 96) * 900) % DAY_S) / 3600
    weekday = ~np.isin(np.arange(7 * 96) // 96, [4, 5])  # Tue 14 … Mon 20 Jan; 18–19 weekend
    on_peak = weekday & (local_hour >= 9) & (local_hour < 22)
    assert battery[on_peak].min() < 0, "no discharge on peak"
    assert battery[~on_peak].max() > 0, "no charging off peak"
    assert np.all(battery[~on_peak] >= 0), "the policy only discharges on peak"


def test_override_steers_the_battery(campus, campus_meters):
    model = MeterModel(campus_meters, campus, seed=5, interval_s=900)
    state = model.initial_state(YEAR_2025_BANGKOK + 2 * DAY_S)  # a Friday night (off-peak)
    override = np.full(len(campus_meters), np.nan)
    has_battery = campus_meters.battery_kwh > 0
    override[has_battery] = campus_meters.battery_kw[has_battery]  # discharge at full power
    steered = model.step(state, 4, override_kw=override).batch
    free = model.step(state, 4).batch
    n = len(campus_meters)
    steered_kw = column(steered, "battery_power", n)
    free_kw = column(free, "battery_power", n)
    assert np.all(steered_kw[:, has_battery] < 0)
    assert np.all(free_kw[:, has_battery] >= 0)
