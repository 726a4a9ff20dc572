"""Physics invariants over whole simulated years, many seeds and random windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtx_ray.fleet import generate_fleet
from gtx_ray.model.controls import MANAGED_CI_LOADS, LoadControl
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from gtx_ray.model.tariff import PriceInterval, TimeOfUseTariff
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


# Demand response and prices: the physics close with events and any tariff, and the batteries
# follow the prices.

HOUR_S = 3600
TUESDAY = YEAR_2025_BANGKOK + 13 * DAY_S  # Tue 14 Jan 2025 00:00 +07:00


@st.composite
def model_inputs(draw, start_s: int) -> ModelInputs:
    """Random events, tariff changes and price intervals around the first days after start_s."""
    events = []
    for i in range(draw(st.integers(0, 4))):
        form = draw(
            st.sampled_from(["reduce_pct", "reduce_kw", "duty_cycle_pct", "cooling_offset_c"])
        )
        value = draw(st.floats(0, {"reduce_kw": 500.0, "cooling_offset_c": 8.0}.get(form, 100.0)))
        begin = start_s + draw(st.integers(-6 * HOUR_S, 36 * HOUR_S))
        events.append(
            LoadControl(
                event_id=f"{i:04X}",
                start_s=begin,
                duration_s=draw(st.integers(0, 6 * HOUR_S)),
                randomize_start_s=draw(st.integers(-3600, 3600)),
                randomize_duration_s=draw(st.integers(-3600, 3600)),
                device_category=draw(st.sampled_from([0, MANAGED_CI_LOADS, 1 << 21, 1 << 23])),
                cancelled_at_s=draw(st.none() | st.integers(begin - HOUR_S, begin + 8 * HOUR_S)),
                cancel_randomized=draw(st.booleans()),
                rebound=draw(st.booleans()),
                **{form: value},
            )
        )
    tariffs = []
    for _ in range(draw(st.integers(0, 2))):
        on = draw(st.floats(0, 23))
        tariffs.append(
            TimeOfUseTariff(
                effective_from_s=start_s + draw(st.integers(-DAY_S, 2 * DAY_S)),
                on_peak_start_hour=on,
                on_peak_end_hour=draw(st.floats(on, 24)),
                on_peak_thb_per_kwh=draw(st.floats(0.5, 9)),
                off_peak_thb_per_kwh=draw(st.floats(0.5, 9)),
                ft_thb_per_kwh=draw(st.floats(0, 1)),
                export_thb_per_kwh=draw(st.floats(0, 5)),
            )
        )
    intervals = [
        PriceInterval(
            start_s + draw(st.integers(-HOUR_S, 2 * DAY_S)),
            draw(st.integers(60, 6 * HOUR_S)),
            draw(st.floats(0.1, 20)),
            draw(st.none() | st.floats(0, 10)),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    return ModelInputs(tuple(events), tuple(tariffs), tuple(intervals))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    seed=st.integers(0, 2**31 - 1),
    start_day=st.integers(0, 2 * 365),
    n_intervals=st.integers(1, 200),
    window=st.integers(1, 96),
    interval_s=st.sampled_from([60, 300, 900, 3600]),
    n_meters=st.integers(1, 40),
)
def test_events_and_prices_keep_the_physics(
    campus, data, seed, start_day, n_intervals, window, interval_s, n_meters
):
    meters = generate_fleet(campus, n_meters, seed)
    model = MeterModel(meters, campus, seed=seed, interval_s=interval_s)
    start = 1_704_067_200 + start_day * DAY_S + (seed % 96) * 900
    inputs = data.draw(model_inputs(start))
    table, _ = run(model, start, n_intervals, window, inputs)
    assert table.num_rows == n_meters * n_intervals
    assert_physics(table, model, interval_s)


def test_a_campus_day_of_events_keeps_the_physics_and_sheds(campus, campus_meters):
    model = MeterModel(campus_meters, campus, seed=2, interval_s=900)
    inputs = ModelInputs(
        load_controls=(
            LoadControl("AA01", TUESDAY + 13 * HOUR_S, 2 * HOUR_S, 900, 600, reduce_pct=20.0),
            LoadControl("AA02", TUESDAY + 14 * HOUR_S, HOUR_S, -900, duty_cycle_pct=30.0),
            LoadControl(
                "AA03",
                TUESDAY + 16 * HOUR_S,
                3 * HOUR_S,
                cooling_offset_c=3.0,
                device_category=1 << 23,
                cancelled_at_s=TUESDAY + 17 * HOUR_S,
            ),
        )
    )
    table, _ = run(model, TUESDAY, 96, 96, inputs)
    assert_physics(table, model, 900)
    assert column(table, "shed_kw", len(campus_meters))[52:60].min() > 0


def _battery_week(campus, campus_meters, inputs: ModelInputs | None) -> np.ndarray:
    """Battery power (kW, + charging) of the hybrids over the week from Tuesday 14 Jan 2025."""
    model = MeterModel(campus_meters, campus, seed=5, interval_s=900)
    table, _ = run(model, TUESDAY, 7 * 96, window=96, inputs=inputs)
    return column(table, "battery_power", len(campus_meters))[:, campus_meters.battery_kwh > 0]


def test_moving_the_on_peak_window_moves_the_batteries(campus, campus_meters):
    local_hour = ((np.arange(7 * 96) * 900) % DAY_S) / 3600 + 0.125
    weekday = ~np.isin(np.arange(7 * 96) // 96, [4, 5])  # Tue 14 … Mon 20 Jan; 18–19 weekend
    evening = TimeOfUseTariff(TUESDAY, 17.0, 21.0, 5.5, 2.6037, 0.3972, 2.2, name="evening peak")
    default = _battery_week(campus, campus_meters, None)
    moved = _battery_week(campus, campus_meters, ModelInputs(tariffs=(evening,)))

    morning = weekday & (local_hour >= 9) & (local_hour < 17)
    peak = weekday & (local_hour >= 17) & (local_hour < 21)
    assert default[morning].min() < 0, "the default tariff discharges in the morning"
    assert np.all(moved[morning] >= 0), "the moved window does not"
    assert np.all(moved[~peak] >= 0), "discharge only in the expensive hours"
    assert moved[peak].min() < 0
    night = local_hour < 6
    assert moved[night].max() > 0, "charges from the grid in the cheap hours"


def test_a_price_spike_makes_the_batteries_discharge(campus, campus_meters):
    spike = PriceInterval(TUESDAY + DAY_S + 3 * HOUR_S, 2 * HOUR_S, 12.0)  # Wed 03:00–05:00
    default = _battery_week(campus, campus_meters, None)
    spiked = _battery_week(campus, campus_meters, ModelInputs(prices=(spike,)))
    during = slice(96 + 12, 96 + 20)
    assert np.all(default[during] >= 0)
    assert np.all(spiked[during] < 0)
    assert np.array_equal(spiked[: 96 + 12], default[: 96 + 12])
