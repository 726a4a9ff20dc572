"""Demand-response load control: who sheds, how much, when, and the rebound after it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gtx_ray.fleet import METER_TYPES
from gtx_ray.model.controls import (
    AC_SHARE_OF_LOAD,
    COMBINED_PV_AND_STORAGE,
    MANAGED_CI_LOADS,
    PHOTOVOLTAIC_SYSTEM,
    REBOUND_RATIO,
    REBOUND_SPAN_S,
    REBOUND_TAU_S,
    ControlledMeters,
    LoadControl,
    ac_share_of,
    device_category_of,
    shed_rate_kw,
    shed_window,
    targeted,
)
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.load import BUILDING_TYPES
from gtx_ray.model.meters import MeterModel
from tests.unit.helpers import DAY_S, column

TUESDAY = 1_735_664_400 + 13 * DAY_S  # Tue 14 Jan 2025 00:00 +07:00, a semester workday
EVENT_START = TUESDAY + 13 * 3600  # 13:00 local, interval 52 of the day
FIRST, END = 52, 60  # a two-hour event covers intervals 52..59 of 15 minutes


def _model(campus, campus_meters) -> MeterModel:
    return MeterModel(campus_meters, campus, seed=5, interval_s=900)


def _day(model: MeterModel, *events: LoadControl, field: str = "energy_consumed") -> np.ndarray:
    """A field over Tuesday (96 intervals × meters) with these events in force."""
    inputs = ModelInputs(load_controls=events) if events else None
    batch = model.step(model.initial_state(TUESDAY), 96, inputs=inputs).batch
    return column(batch, field, len(model))


def _event(**kwargs) -> LoadControl:
    fields = {"event_id": "0A1B2C3D", "start_s": EVENT_START, "duration_s": 7200, **kwargs}
    return LoadControl(**fields)


def test_a_20_pct_reduction_cuts_the_targeted_meters_by_20_pct(campus, campus_meters):
    model = _model(campus, campus_meters)
    chosen = [0, 3, 10, 17, 22]
    event = _event(
        reduce_pct=20.0,
        randomize_start_s=600,
        meter_ids=frozenset(campus_meters.meter_id[chosen]),
        rebound=False,
    )
    free = _day(model)
    controlled = _day(model, event)
    shed = _day(model, event, field="shed_kw")
    ratio = controlled[:, chosen] / free[:, chosen]

    # Each meter starts 0–600 s late, so the first and the one-after-last intervals shed partly.
    np.testing.assert_allclose(ratio[FIRST + 1 : END], 0.8, rtol=1e-12)
    assert np.all((ratio[[FIRST, END]] >= 0.8 - 1e-12) & (ratio[[FIRST, END]] <= 1.0))
    assert np.all(ratio[FIRST] < 1.0), "a start offset below 900 s sheds in the first interval"
    assert np.array_equal(controlled[:FIRST], free[:FIRST])
    assert np.array_equal(controlled[END + 1 :], free[END + 1 :])
    others = np.setdiff1d(np.arange(len(campus_meters)), chosen)
    assert np.array_equal(controlled[:, others], free[:, others])
    np.testing.assert_allclose(shed, free - controlled, rtol=0, atol=1e-12)
    assert np.all(shed[:, others] == 0)


def test_an_event_covering_part_of_an_interval_sheds_that_part(campus, campus_meters):
    model = _model(campus, campus_meters)
    event = _event(start_s=EVENT_START + 450, reduce_pct=20.0, rebound=False)
    ratio = _day(model, event) / _day(model)
    np.testing.assert_allclose(ratio[FIRST], 0.9, rtol=1e-12)  # half the interval at −20 %
    np.testing.assert_allclose(ratio[FIRST + 1 : END], 0.8, rtol=1e-12)
    np.testing.assert_allclose(ratio[END], 0.9, rtol=1e-12)


def test_duty_cycle_and_setpoint_offset_shed_only_the_air_conditioning(campus, campus_meters):
    model = _model(campus, campus_meters)
    ac = ac_share_of(campus_meters.building_type)
    free = _day(model)
    for event, expected in (
        (_event(duty_cycle_pct=40.0, rebound=False), ac * 0.6),
        (_event(cooling_offset_c=2.0, rebound=False), ac * 0.16),
        (_event(cooling_offset_c=10.0, rebound=False), ac * 0.5),  # capped at half the cooling
    ):
        shed = _day(model, event, field="shed_kw")
        np.testing.assert_allclose(
            shed[FIRST:END] / free[FIRST:END], np.tile(expected, (END - FIRST, 1)), rtol=1e-12
        )
        assert np.all(shed[:FIRST] == 0) and np.all(shed[END:] == 0)
    assert AC_SHARE_OF_LOAD["parking"] < AC_SHARE_OF_LOAD["library"]


def test_the_largest_reduction_wins_and_never_exceeds_the_load():
    load = np.array([[100.0, 30.0, 2.0]])
    ac = np.array([0.6, 0.6, 0.1])
    both = _event(reduce_pct=10.0, reduce_kw=5.0)
    np.testing.assert_allclose(shed_rate_kw(both, load, ac), [[10.0, 5.0, 2.0]])
    duty = _event(reduce_pct=10.0, duty_cycle_pct=50.0)
    np.testing.assert_allclose(shed_rate_kw(duty, load, ac), [[30.0, 9.0, 0.2]])
    everything = _event(reduce_kw=1_000.0)
    np.testing.assert_array_equal(shed_rate_kw(everything, load, ac), load)


def test_the_load_pays_the_energy_back_after_the_event(campus, campus_meters):
    model = _model(campus, campus_meters)
    free = _day(model)
    with_rebound = _day(model, _event(reduce_pct=20.0))
    without = _day(model, _event(reduce_pct=20.0, rebound=False))
    assert np.array_equal(with_rebound[:END], without[:END]), "no rebound during the event"
    extra = with_rebound - free

    # S = the shed rate of the event's last interval; the rebound is ρ·S·e^(−t/τ), averaged.
    shed_rate = 0.2 * free[END - 1]
    tau, step = REBOUND_TAU_S, 900.0
    first = REBOUND_RATIO * shed_rate * tau * (1 - math.exp(-step / tau)) / step
    np.testing.assert_allclose(extra[END], first, rtol=1e-9)
    span = REBOUND_SPAN_S // 900  # 3τ = 135 min = 9 intervals
    assert np.all(extra[END : END + span] > 0)
    assert np.all(np.diff(extra[END : END + span], axis=0) < 0), "the rebound decays"
    np.testing.assert_array_equal(extra[END + span :], 0.0)
    payback_kwh = extra[END:].sum(axis=0) * 0.25
    np.testing.assert_allclose(
        payback_kwh, REBOUND_RATIO * shed_rate * tau / 3600 * (1 - math.exp(-3)), rtol=1e-9
    )
    assert np.array_equal(without[END:], free[END:])


def test_a_cancelled_event_stops_shedding(campus, campus_meters):
    model = _model(campus, campus_meters)
    free = _day(model)
    cancelled = _day(
        model, _event(reduce_pct=20.0, rebound=False, cancelled_at_s=EVENT_START + 3600)
    )
    np.testing.assert_allclose(cancelled[FIRST : FIRST + 4] / free[FIRST : FIRST + 4], 0.8)
    assert np.array_equal(cancelled[FIRST + 4 :], free[FIRST + 4 :])
    before = _event(reduce_pct=20.0, cancelled_at_s=EVENT_START - 60)
    assert np.array_equal(_day(model, before), free), "cancelled before it began: no effect"


def test_a_randomised_cancellation_follows_each_meters_start_offset(campus_meters):
    meters = _controlled(campus_meters)
    plain = _event(reduce_pct=20.0, randomize_start_s=900, cancelled_at_s=EVENT_START + 1800)
    begin, end = shed_window(plain, 5, meters)
    np.testing.assert_array_equal(end, EVENT_START + 1800.0)
    spread = _event(
        reduce_pct=20.0,
        randomize_start_s=900,
        cancelled_at_s=EVENT_START + 1800,
        cancel_randomized=True,
    )
    begin, end = shed_window(spread, 5, meters)
    np.testing.assert_allclose(end - begin, 1800.0, rtol=0, atol=1e-6)
    assert len(np.unique(end)) == len(campus_meters)


def _controlled(meters) -> ControlledMeters:
    return ControlledMeters.of(meters.meter_id, meters.key, meters.meter_type, meters.building_type)


def test_events_target_by_device_category_and_meter_id(campus_meters):
    meters = _controlled(campus_meters)
    kind = campus_meters.meter_type
    cases = {
        0: np.full(len(kind), True),
        MANAGED_CI_LOADS: np.full(len(kind), True),
        PHOTOVOLTAIC_SYSTEM: kind == METER_TYPES.index("prosumer"),
        COMBINED_PV_AND_STORAGE: kind == METER_TYPES.index("hybrid_prosumer"),
        PHOTOVOLTAIC_SYSTEM | COMBINED_PV_AND_STORAGE: kind != METER_TYPES.index("consumer"),
        1 << 3: np.full(len(kind), False),  # another device class (here: none)
    }
    for category, expected in cases.items():
        np.testing.assert_array_equal(
            targeted(_event(reduce_pct=5, device_category=category), meters), expected
        )
    consumer = campus_meters.meter_id[kind == 0][0]
    prosumer = campus_meters.meter_id[kind == 1][0]
    event = _event(
        reduce_pct=5, device_category=PHOTOVOLTAIC_SYSTEM, meter_ids=frozenset({consumer, prosumer})
    )
    assert list(campus_meters.meter_id[targeted(event, meters)]) == [prosumer]


def test_only_targeted_meters_shed_in_the_model(campus, campus_meters):
    model = _model(campus, campus_meters)
    shed = _day(
        model, _event(reduce_pct=20, device_category=COMBINED_PV_AND_STORAGE), field="shed_kw"
    )
    hybrid = campus_meters.meter_type == METER_TYPES.index("hybrid_prosumer")
    assert np.all(shed[FIRST:END][:, hybrid] > 0)
    assert np.all(shed[:, ~hybrid] == 0)


def test_randomisation_is_per_meter_deterministic_and_bounded(campus_meters):
    meters = _controlled(campus_meters)
    late = _event(reduce_pct=5, randomize_start_s=900, randomize_duration_s=-600)
    begin, end = shed_window(late, 5, meters)
    offset, duration = begin - EVENT_START, end - begin
    assert np.all((offset >= 0) & (offset <= 900)) and len(np.unique(offset)) == len(offset)
    assert np.all((duration >= 7200 - 600) & (duration <= 7200))
    early = _event(reduce_pct=5, randomize_start_s=-900)
    assert np.all(shed_window(early, 5, meters)[0] <= EVENT_START)
    again = shed_window(late, 5, meters)
    np.testing.assert_array_equal(again[0], begin)
    # Keyed by the meter, not its position: a subset of meters draws the same offsets.
    subset = _controlled(campus_meters.take(np.array([20, 4, 11])))
    np.testing.assert_array_equal(shed_window(late, 5, subset)[0], begin[[20, 4, 11]])
    # … and by the event and the seed.
    other = _event(event_id="FFEE", reduce_pct=5, randomize_start_s=900)
    assert not np.array_equal(shed_window(other, 5, meters)[0], begin)
    assert not np.array_equal(shed_window(late, 6, meters)[0], begin)


def test_device_categories_and_air_conditioning_cover_every_type():
    assert list(device_category_of(np.arange(len(METER_TYPES)))) == [
        MANAGED_CI_LOADS,
        MANAGED_CI_LOADS | PHOTOVOLTAIC_SYSTEM,
        MANAGED_CI_LOADS | COMBINED_PV_AND_STORAGE,
    ]
    assert METER_TYPES == ("consumer", "prosumer", "hybrid_prosumer")  # the order the bits follow
    shares = ac_share_of(np.arange(len(BUILDING_TYPES)))
    assert np.all((shares > 0) & (shares < 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "set reduce_pct"),
        ({"reduce_pct": 20, "randomize_start_s": 3601}, "randomize_start_s"),
        ({"reduce_pct": 120}, "reduce_pct"),
        ({"duty_cycle_pct": -1}, "duty_cycle_pct"),
        ({"reduce_kw": 5, "duration_s": -1}, "duration_s"),
        ({"reduce_kw": 5, "event_id": ""}, "event_id"),
    ],
)
def test_malformed_events_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _event(**kwargs)
