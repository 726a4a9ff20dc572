"""IEEE 2030.5 DER controls in the model: export, import, generation and charge limits, fixed
battery set-points, disconnects, the PV power cap, ramps, precedence, cancellation, targeting and
the default control; the energy balance closes under all of them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gtx_ray.fleet import METER_TYPES
from gtx_ray.model.controls import COMBINED_PV_AND_STORAGE, PHOTOVOLTAIC_SYSTEM
from gtx_ray.model.der import (
    DerControl,
    DerDefault,
    DerMeters,
    by_precedence,
    control_weights,
    control_window,
)
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from tests.unit.helpers import DAY_S, assert_physics, column

SUNDAY = 1_735_664_400 + 11 * DAY_S  # Sun 12 Jan 2025 00:00 +07:00: low load, PV surplus
TUESDAY = SUNDAY + 2 * DAY_S  # a semester workday, on-peak 09:00–22:00
TEN = 40  # interval of 10:00 local (15-minute intervals)
TWO_PM = 56  # 14:00 local


def _model(campus, campus_meters) -> MeterModel:
    return MeterModel(campus_meters, campus, seed=5, interval_s=900)


def _run(
    model: MeterModel,
    *controls: DerControl,
    default: DerDefault | None = None,
    day: int = SUNDAY,
    defaults: tuple[DerDefault, ...] = (),
) -> pa.Table:
    """A day (96 intervals) with these DER controls and defaults (``default``: one for all);
    the readings pass every physics check."""
    defaults = defaults or (() if default is None else (default,))
    inputs = ModelInputs(der_controls=controls, der_defaults=defaults)
    batch = model.step(model.initial_state(day), 96, inputs=inputs).batch
    table = pa.Table.from_batches([batch])
    assert_physics(table, model, 900)
    return table


def _col(table: pa.Table, name: str) -> np.ndarray:
    return column(table, name, table.num_rows // 96)


def _event(**kwargs) -> DerControl:
    """10:00–14:00 local on Sunday unless told otherwise."""
    fields = {"event_id": "D0E1F2A3", "start_s": SUNDAY + 10 * 3600, "duration_s": 4 * 3600}
    return DerControl(**{**fields, **kwargs})


def _kinds(meters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kind = meters.meter_type
    return tuple(kind == METER_TYPES.index(name) for name in METER_TYPES)


def test_an_export_limit_of_zero_stops_export_by_curtailing_pv(campus, campus_meters):
    model = _model(campus, campus_meters)
    consumer, prosumer, _ = _kinds(campus_meters)
    free = _run(model)
    limited = _run(
        model,
        _event(export_limit_kw=0.0, device_category=PHOTOVOLTAIC_SYSTEM | COMBINED_PV_AND_STORAGE),
    )
    free_export, export = _col(free, "grid_feed_in"), _col(limited, "grid_feed_in")
    curtailed = _col(limited, "curtailed_kw")
    during = slice(TEN, TWO_PM)
    assert free_export[during][:, prosumer].max() > 5.0, "the test needs a PV surplus"

    assert np.all(export[during] == 0.0), "no export while the limit is in force"
    # A prosumer without a battery spills exactly the surplus it would have exported.
    np.testing.assert_allclose(
        curtailed[during][:, prosumer], free_export[during][:, prosumer], rtol=1e-12, atol=1e-12
    )
    assert np.all(curtailed[during][free_export[during] > 0] > 0)
    np.testing.assert_allclose(
        _col(limited, "energy_generated") + curtailed, _col(free, "energy_generated"), rtol=1e-12
    )
    # Before it and after it a prosumer runs as free; export resumes.
    for part in (slice(0, TEN), slice(TWO_PM, 96)):
        assert np.array_equal(export[part][:, prosumer], free_export[part][:, prosumer])
        assert np.all(curtailed[part] == 0)
    assert export[TWO_PM:][:, prosumer].max() > 0, "export resumes after the event"
    for name in ("energy_consumed", "energy_generated", "grid_feed_in", "energy_import_kwh"):
        assert np.array_equal(_col(limited, name)[:, consumer], _col(free, name)[:, consumer])
    assert np.all(curtailed[:, consumer] == 0)


def test_the_battery_absorbs_surplus_before_pv_is_curtailed(campus, campus_meters):
    model = _model(campus, campus_meters)
    _, _, hybrid = _kinds(campus_meters)
    event = _event(export_limit_kw=0.0, device_category=COMBINED_PV_AND_STORAGE)
    limited = _run(model, event)
    charge = np.maximum(_col(limited, "battery_power"), 0.0)[TEN:TWO_PM][:, hybrid]
    curtailed = _col(limited, "curtailed_kw")[TEN:TWO_PM][:, hybrid]
    level = _col(limited, "battery_level")[TEN:TWO_PM][:, hybrid]
    power = campus_meters.battery_kw[hybrid]
    assert np.all(_col(limited, "grid_feed_in")[TEN:TWO_PM][:, hybrid] == 0.0)
    # PV is spilled only while the battery charges at full power or is full.
    spilled = curtailed > 1e-9
    assert spilled.any(), "the test needs a surplus larger than the batteries take"
    flat_out_or_full = (np.abs(charge - power) < 1e-9) | (level >= 100.0 - 1e-9)
    assert np.all(flat_out_or_full[spilled])


def test_an_export_limit_beats_a_set_point(campus, campus_meters):
    """Limits are constraints, the set-point the objective: an idle or discharging set-point gives
    way to the export limit (the battery charges surplus rather than PV being spilled)."""
    model = _model(campus, campus_meters)
    _, _, hybrid = _kinds(campus_meters)
    for set_point in (0.0, 40.0):
        event = _event(
            export_limit_kw=0.0, fixed_kw=set_point, device_category=COMBINED_PV_AND_STORAGE
        )
        drain = _event(event_id="D0", start_s=SUNDAY + 6 * 3600, fixed_kw=1_000.0)  # 06–10:00
        table = _run(model, drain, event)
        assert np.all(_col(table, "grid_feed_in")[TEN:TWO_PM][:, hybrid] == 0.0)
        battery = _col(table, "battery_power")[TEN:TWO_PM][:, hybrid]
        curtailed = _col(table, "curtailed_kw")[TEN:TWO_PM][:, hybrid]
        level = _col(table, "battery_level")[TEN:TWO_PM][:, hybrid]
        surplus = (_col(table, "energy_generated") + _col(table, "curtailed_kw"))[TEN:TWO_PM][
            :, hybrid
        ] > _col(table, "energy_consumed")[TEN:TWO_PM][:, hybrid] + 1e-6
        assert surplus.any(), "the test needs a PV surplus at a hybrid"
        # Under surplus the battery charges (never discharges) unless it is full.
        full = level >= 100.0 - 1e-9
        assert np.all((battery[surplus] > 0) | full[surplus])
        assert np.mean(battery[surplus] > 0) > 0.5, "mostly not full: the batteries were drained"
        flat_out = np.abs(battery - campus_meters.battery_kw[hybrid]) < 1e-9
        assert np.all((flat_out | full)[curtailed > 1e-9])


def test_a_limit_above_the_export_leaves_the_meter_alone(campus, campus_meters):
    model = _model(campus, campus_meters)
    free = _run(model)
    loose = _run(model, _event(export_limit_kw=10_000.0))
    for name in ("energy_generated", "grid_feed_in", "battery_power", "battery_level"):
        np.testing.assert_array_equal(_col(loose, name), _col(free, name))


def test_controls_out_of_the_day_or_for_no_one_change_nothing(campus, campus_meters):
    model = _model(campus, campus_meters)
    free = _run(model)
    later = _event(start_s=SUNDAY + 3 * DAY_S, export_limit_kw=0.0, fixed_kw=50.0)
    nobody = _event(meter_ids=frozenset({"NO_SUCH_METER"}), connect=False)
    assert _run(model, later, nobody).equals(free)
    assert _run(model, later, default=DerDefault(set_grad_w=1.0)).equals(free)


def test_a_fixed_set_point_drives_the_battery_within_its_limits(campus, campus_meters):
    model = _model(campus, campus_meters)
    _, _, hybrid = _kinds(campus_meters)
    free = _run(model)
    one_hour = _event(duration_s=3600, fixed_kw=30.0, device_category=COMBINED_PV_AND_STORAGE)
    battery = _col(_run(model, one_hour), "battery_power")
    np.testing.assert_allclose(battery[TEN : TEN + 4][:, hybrid], -30.0, rtol=1e-12)
    assert not np.allclose(_col(free, "battery_power")[TEN : TEN + 4][:, hybrid], -30.0)
    assert np.array_equal(battery[:TEN], _col(free, "battery_power")[:TEN], equal_nan=True)

    # Beyond the battery's power: its power; all day long: down to the reserve and no further.
    hard = _event(duration_s=10 * 3600, fixed_kw=1_000.0, device_category=COMBINED_PV_AND_STORAGE)
    table = _run(model, hard)
    battery, level = _col(table, "battery_power"), _col(table, "battery_level")
    np.testing.assert_allclose(battery[TEN][hybrid], -campus_meters.battery_kw[hybrid], rtol=1e-12)
    reserve = model._policy.reserve_pct
    assert np.all(level[:, hybrid] >= reserve - 1e-9)
    np.testing.assert_allclose(level[TEN + 39][hybrid], reserve, rtol=1e-9)
    assert np.all(battery[TEN + 39][hybrid] == 0.0), "empty to the reserve: no more discharge"

    # A negative set-point charges.
    charging = _event(duration_s=3600, fixed_kw=-20.0, device_category=COMBINED_PV_AND_STORAGE)
    table = _run(model, charging)
    battery = _col(table, "battery_power")[TEN : TEN + 4][:, hybrid]
    full = _col(table, "battery_level")[TEN - 1 : TEN + 3][:, hybrid] >= model._policy.max_soc_pct
    np.testing.assert_allclose(battery[~full], 20.0, rtol=1e-12)
    assert np.all(battery[full] == 0.0) and (~full).sum() > 4


def test_a_fixed_set_point_in_percent_asks_each_battery_by_its_rating(campus, campus_meters):
    model = _model(campus, campus_meters)
    _, _, hybrid = _kinds(campus_meters)
    power = campus_meters.battery_kw[hybrid]
    assert len(np.unique(power)) > 1, "the test needs batteries of different ratings"
    one_hour = _event(duration_s=3600, fixed_pct=60.0)
    battery = _col(_run(model, one_hour), "battery_power")[TEN : TEN + 4][:, hybrid]
    np.testing.assert_allclose(battery, np.broadcast_to(-0.6 * power, battery.shape), rtol=1e-12)
    # From the default, only where the default targets the meter.
    first = campus_meters.meter_id[hybrid][:1]
    default = DerDefault(fixed_pct=-25.0, meter_ids=frozenset(first))
    table = _run(model, _event(duration_s=3600, max_limit_pct=50.0), default=default)
    battery = _col(table, "battery_power")[:, hybrid]
    level = _col(table, "battery_level")[:, hybrid]
    room = np.vstack([np.full(level.shape[1], 50.0), level[:-1]]) < 100.0 - 1e-6
    charging = battery[:, 0][room[:, 0]]
    assert len(charging) > 10
    np.testing.assert_allclose(charging[: len(charging) - 1], 0.25 * power[0], rtol=1e-12)
    assert not np.allclose(battery[:, 1], 0.25 * power[1])
    with pytest.raises(ValueError, match="not both"):
        _event(fixed_kw=5.0, fixed_pct=10.0)


@pytest.mark.parametrize("mode", [{"connect": False}, {"energize": False}])
def test_a_disconnect_takes_pv_and_battery_off(campus, campus_meters, mode):
    model = _model(campus, campus_meters)
    has_pv = campus_meters.pv_kwp > 0
    free = _run(model)
    off = _run(model, _event(ramp_s=3600, **mode))  # a disconnect is never ramped
    during = slice(TEN, TWO_PM)
    assert np.all(_col(off, "energy_generated")[during] == 0.0)
    assert np.all(np.nan_to_num(_col(off, "battery_power")[during]) == 0.0)
    np.testing.assert_allclose(
        _col(off, "curtailed_kw")[during][:, has_pv],
        _col(free, "energy_generated")[during][:, has_pv],
        rtol=1e-12,
    )
    assert _col(free, "energy_generated")[during].max() > 0
    level = _col(off, "battery_level")[TEN - 1 : TWO_PM]
    assert np.array_equal(level[1:], np.broadcast_to(level[0], level[1:].shape), equal_nan=True)


def test_max_limit_pct_caps_pv_at_a_share_of_the_inverter(campus, campus_meters):
    model = _model(campus, campus_meters)
    free_pv = _col(_run(model), "energy_generated")
    pv = _col(_run(model, _event(max_limit_pct=40.0)), "energy_generated")
    cap = 0.4 * campus_meters.inverter_kw
    during = slice(TEN, TWO_PM)
    np.testing.assert_array_equal(pv[during], np.minimum(free_pv[during], cap))
    assert np.any(free_pv[during] > cap + 1.0), "the cap must bite somewhere"
    assert np.array_equal(pv[TWO_PM:], free_pv[TWO_PM:])


def test_a_ramp_moves_the_setting_linearly(campus, campus_meters):
    model = _model(campus, campus_meters)
    free_pv = _col(_run(model), "energy_generated")
    expected = free_pv[TEN : TEN + 4] * (1.0 - (np.arange(4)[:, None] + 0.5) / 4.0)
    ramped = _col(_run(model, _event(max_limit_pct=0.0, ramp_s=3600)), "energy_generated")
    np.testing.assert_allclose(ramped[TEN : TEN + 4], expected, rtol=1e-12, atol=1e-12)
    assert np.all(ramped[TEN + 4 : TWO_PM] == 0.0)
    # Without rampTms the default's setGradW applies: 100 %/3600 s is a one-hour ramp.
    graded = _run(model, _event(max_limit_pct=0.0), default=DerDefault(set_grad_w=100.0 / 3600))
    np.testing.assert_allclose(
        _col(graded, "energy_generated")[TEN : TEN + 4], expected, rtol=1e-12, atol=1e-12
    )
    # rampTms 0 is a step, whatever the default says.
    step = _run(model, _event(max_limit_pct=0.0, ramp_s=0), default=DerDefault(set_grad_w=0.01))
    assert np.all(_col(step, "energy_generated")[TEN:TWO_PM] == 0.0)


def test_the_meter_returns_to_the_default_at_set_grad_w(campus, campus_meters):
    model = _model(campus, campus_meters)
    free_pv = _col(_run(model), "energy_generated")
    default = DerDefault(set_grad_w=100.0 / 3600)  # full scale in an hour
    one_hour = _event(duration_s=3600, max_limit_pct=0.0, ramp_s=0)
    pv = _col(_run(model, one_hour, default=default), "energy_generated")
    back = TEN + 4  # 11:00
    assert np.all(pv[TEN:back] == 0.0)
    np.testing.assert_allclose(
        pv[back : back + 4], free_pv[back : back + 4] * (np.arange(4)[:, None] + 0.5) / 4.0
    )
    np.testing.assert_array_equal(pv[back + 4 :], free_pv[back + 4 :])
    # Without a default gradient the return is a step.
    stepped = _col(_run(model, one_hour), "energy_generated")
    np.testing.assert_array_equal(stepped[back:], free_pv[back:])
    # An event that reached half its hold (half of its one-hour ramp) falls from there: 30 min.
    half = _event(duration_s=1800, max_limit_pct=0.0, ramp_s=3600)
    pv = _col(_run(model, half, default=default), "energy_generated")
    # 10:00–10:30 ramps in (hold t/3600), 10:30–11:00 falls from 0.5 at 1/3600 per s.
    hold = np.array([450, 1350, 1800 - 450, 1800 - 1350]) / 3600
    np.testing.assert_allclose(pv[TEN:back], free_pv[TEN:back] * (1 - hold[:, None]), rtol=1e-12)
    np.testing.assert_array_equal(pv[back:], free_pv[back:])
    # A weaker event that starts as a stronger one ends takes over at once (no ramp-out between).
    weaker = _event(
        event_id="EE", start_s=SUNDAY + 11 * 3600, max_limit_pct=50.0, primacy=9, ramp_s=0
    )
    pv = _col(_run(model, one_hour, weaker, default=default), "energy_generated")
    np.testing.assert_array_equal(
        pv[back:TWO_PM], np.minimum(free_pv, 0.5 * campus_meters.inverter_kw)[back:TWO_PM]
    )


def test_primacy_then_creation_decides_between_overlapping_events(campus, campus_meters):
    model = _model(campus, campus_meters)
    free_pv = _col(_run(model), "energy_generated")
    inverter = campus_meters.inverter_kw
    strong = _event(event_id="AA", max_limit_pct=20.0, primacy=0, duration_s=2 * 3600)
    weak = _event(event_id="BB", max_limit_pct=60.0, primacy=5, created_s=SUNDAY)
    pv = _col(_run(model, weak, strong), "energy_generated")
    np.testing.assert_array_equal(
        pv[TEN : TEN + 8], np.minimum(free_pv, 0.2 * inverter)[TEN : TEN + 8]
    )
    np.testing.assert_array_equal(
        pv[TEN + 8 : TWO_PM], np.minimum(free_pv, 0.6 * inverter)[TEN + 8 : TWO_PM]
    )

    # Equal primacy: the later-created event wins, whatever the order of the inputs.
    old = _event(event_id="CC", max_limit_pct=20.0, created_s=SUNDAY)
    new = _event(event_id="DD", max_limit_pct=60.0, created_s=SUNDAY + 60)
    for order in ((old, new), (new, old)):
        pv = _col(_run(model, *order), "energy_generated")
        np.testing.assert_array_equal(
            pv[TEN:TWO_PM], np.minimum(free_pv, 0.6 * inverter)[TEN:TWO_PM]
        )
    assert [c.event_id for c in by_precedence((old, new, strong, weak))] == ["AA", "DD", "CC", "BB"]


def test_a_cancelled_event_stops_at_its_cancellation(campus, campus_meters):
    model = _model(campus, campus_meters)
    free_pv = _col(_run(model), "energy_generated")
    cancelled = _event(max_limit_pct=0.0, cancelled_at_s=SUNDAY + 11 * 3600 + 450)
    pv = _col(_run(model, cancelled), "energy_generated")
    assert np.all(pv[TEN : TEN + 4] == 0.0)
    np.testing.assert_allclose(pv[TEN + 4], 0.5 * free_pv[TEN + 4], rtol=1e-12)  # half an interval
    assert np.array_equal(pv[TEN + 5 :], free_pv[TEN + 5 :])
    early = _event(max_limit_pct=0.0, cancelled_at_s=SUNDAY + 9 * 3600)
    assert np.array_equal(_col(_run(model, early), "energy_generated"), free_pv)


def test_events_target_by_meter_id_and_device_category(campus, campus_meters):
    model = _model(campus, campus_meters)
    _, prosumer, hybrid = _kinds(campus_meters)
    free_pv = _col(_run(model), "energy_generated")
    chosen = np.flatnonzero(prosumer)[:2]
    by_id = _event(max_limit_pct=0.0, meter_ids=frozenset(campus_meters.meter_id[chosen]))
    pv = _col(_run(model, by_id), "energy_generated")
    assert np.all(pv[TEN:TWO_PM][:, chosen] == 0.0)
    others = np.setdiff1d(np.arange(len(campus_meters)), chosen)
    assert np.array_equal(pv[:, others], free_pv[:, others])

    by_category = _event(max_limit_pct=0.0, device_category=COMBINED_PV_AND_STORAGE)
    pv = _col(_run(model, by_category), "energy_generated")
    assert np.all(pv[TEN:TWO_PM][:, hybrid] == 0.0)
    assert np.array_equal(pv[:, ~hybrid], free_pv[:, ~hybrid])


def test_the_default_control_applies_outside_events_and_fills_their_unset_modes(
    campus, campus_meters
):
    model = _model(campus, campus_meters)
    inverter = campus_meters.inverter_kw
    default = DerDefault(export_limit_kw=0.0)
    table = _run(model, _event(max_limit_pct=30.0), default=default)
    assert np.all(_col(table, "grid_feed_in") == 0.0), "the default's export limit holds all day"
    pv = _col(table, "energy_generated")
    assert np.all(pv[TEN:TWO_PM] <= 0.3 * inverter + 1e-12)
    assert np.any(pv[:TEN] > 0.3 * inverter + 1.0), "outside the event only the default applies"
    # A default that targets no meter does nothing.
    none = DerDefault(export_limit_kw=0.0, meter_ids=frozenset({"NO_SUCH_METER"}))
    assert _run(model, default=none).equals(_run(model))


def test_each_meter_follows_the_first_default_that_targets_it(campus, campus_meters):
    """Two servers' programs (or one server's per-device programs) give meters different
    DefaultDERControls: each meter follows its own, modes and setGradW alike."""
    model = _model(campus, campus_meters)
    has_pv = campus_meters.pv_kwp > 0
    ids = campus_meters.meter_id[has_pv]
    first, rest = frozenset(ids[:3]), frozenset(ids[3:])
    capped = DerDefault(export_limit_kw=0.0, meter_ids=first)
    halved = DerDefault(max_limit_pct=50.0, meter_ids=rest, set_grad_w=100.0 / 3600)
    everyone = DerDefault(export_limit_kw=0.0)  # shadowed by the first two where they target
    table = _run(model, defaults=(capped, halved, everyone))
    alone = {
        "capped": _run(model, default=capped),
        "halved": _run(model, default=halved),
    }
    in_first = np.isin(campus_meters.meter_id, list(first))
    in_rest = np.isin(campus_meters.meter_id, list(rest))
    for name in ("energy_generated", "grid_feed_in", "battery_power"):
        mixed = _col(table, name)
        np.testing.assert_array_equal(mixed[:, in_first], _col(alone["capped"], name)[:, in_first])
        np.testing.assert_array_equal(mixed[:, in_rest], _col(alone["halved"], name)[:, in_rest])
    assert np.any(_col(table, "grid_feed_in")[:, in_rest] > 0), "the halved ones still export"
    # Events ramp by the setGradW of each meter's own default: an hour for the halved, a step
    # for the capped (their default has none).
    event = _event(duration_s=3600, max_limit_pct=0.0)
    pv = _col(_run(model, event, defaults=(capped, halved)), "energy_generated")
    assert np.all(pv[TEN, in_first] == 0.0)
    assert np.all(pv[TEN, in_rest & has_pv] > 0.0)


def test_each_reading_says_which_modes_hold_its_der(campus, campus_meters):
    """``der_mode``: the modes of the event in force (+128), the default's outside it, 0
    uncontrolled, null for meters without PV or a battery."""
    from gtx_ray.model.der_dispatch import MODE_BITS

    model = _model(campus, campus_meters)
    is_der = (campus_meters.pv_kwp > 0) | (campus_meters.battery_kwh > 0)
    mode = _col(_run(model, _event(export_limit_kw=0.0)), "der_mode")
    assert np.all(np.isnan(mode[:, ~is_der]))
    event = MODE_BITS["export_limit"] | MODE_BITS["event"]
    assert np.all(mode[TEN:TWO_PM][:, is_der] == event)
    assert np.all(mode[:TEN][:, is_der] == 0) and np.all(mode[TWO_PM:][:, is_der] == 0)
    off = _event(connect=False, duration_s=3600)
    mode = _col(_run(model, off, default=DerDefault(max_limit_pct=50.0)), "der_mode")
    assert np.all(mode[TEN : TEN + 4][:, is_der] == MODE_BITS["disconnected"] | 64 | 128)
    assert np.all(mode[TEN + 4 :][:, is_der] == MODE_BITS["max_lim_w"])
    assert np.all(_col(_run(model), "der_mode")[:, is_der] == 0)


def test_an_import_limit_makes_the_battery_discharge(campus, campus_meters):
    model = _model(campus, campus_meters)
    _, _, hybrid = _kinds(campus_meters)
    free = _run(model, day=TUESDAY)
    limit = 20.0
    event = _event(start_s=TUESDAY + 7 * 3600, import_limit_kw=limit)
    table = _run(model, event, day=TUESDAY)
    first, last = 28, 44  # 07:00–11:00, partly off-peak: the policy alone would not discharge
    imported = (_col(table, "energy_import_kwh") * 4.0)[first:last][:, hybrid]
    battery = _col(table, "battery_power")[first:last][:, hybrid]
    level = _col(table, "battery_level")[first:last][:, hybrid]
    power = campus_meters.battery_kw[hybrid]
    at_limit = imported <= limit + 1e-9
    flat_out = np.abs(battery + power) < 1e-9
    empty = level <= model._policy.reserve_pct + 1e-9
    assert np.all(at_limit | flat_out | empty)
    free_import = (_col(free, "energy_import_kwh") * 4.0)[first:last][:, hybrid]
    assert np.any(free_import > limit + 1.0) and np.any(at_limit & (free_import > limit + 1.0))
    # The building's load is never curtailed.
    assert np.array_equal(_col(table, "energy_consumed"), _col(free, "energy_consumed"))

    # On a Sunday (cheap all day) the battery would charge from the grid: it charges less.
    sunday = _run(model, _event(start_s=SUNDAY, duration_s=DAY_S, import_limit_kw=limit))
    imported = (_col(sunday, "energy_import_kwh") * 4.0)[:, hybrid]
    battery = _col(sunday, "battery_power")[:, hybrid]
    level = _col(sunday, "battery_level")[:, hybrid]
    flat_out = np.abs(battery + power) < 1e-9
    empty = level <= model._policy.reserve_pct + 1e-9
    assert np.all((imported <= limit + 1e-9) | flat_out | empty)
    free_sunday = _run(model)
    grid_charging = (_col(free_sunday, "battery_power")[:, hybrid] > 0) & (
        _col(free_sunday, "energy_import_kwh")[:, hybrid] * 4.0 > limit + 1.0
    )
    assert grid_charging.any(), "the test needs grid charging above the limit"


def test_generation_and_charge_limits(campus, campus_meters):
    model = _model(campus, campus_meters)
    _, _, hybrid = _kinds(campus_meters)
    gen = _run(model, _event(generation_limit_kw=15.0, fixed_kw=40.0))
    output = _col(gen, "energy_generated") + np.maximum(
        -np.nan_to_num(_col(gen, "battery_power")), 0
    )
    assert np.all(output[TEN:TWO_PM] <= 15.0 + 1e-9)
    assert output[TEN:TWO_PM].max() > 14.0

    free_charge = np.maximum(_col(_run(model), "battery_power")[:, hybrid], 0.0)
    assert free_charge.max() > 5.0 + 1.0, "the test needs charging above the limit"
    whole_day = _event(start_s=SUNDAY, duration_s=DAY_S, load_limit_kw=5.0)
    charge = np.maximum(_col(_run(model, whole_day), "battery_power")[:, hybrid], 0.0)
    assert np.all(charge <= 5.0 + 1e-12) and charge.max() > 4.0


def test_weights_split_an_interval_between_events_and_the_default(campus_meters):
    meters = _der_meters(campus_meters)
    starts = SUNDAY + 900 * np.arange(96)
    a = _event(event_id="01", start_s=SUNDAY + 450, duration_s=900, max_limit_pct=0.0, primacy=0)
    b = _event(event_id="02", start_s=SUNDAY, duration_s=1800, max_limit_pct=50.0, ramp_s=900)
    events, weights = control_weights((b, a), (), 1, meters, starts, 900)
    assert [e.event_id for e in events] == ["01", "02"]
    np.testing.assert_allclose(weights[0, :2], 0.5)  # a holds half of intervals 0 and 1
    # b ramps over interval 0 (∫ t/900 over its first 450 s = 112.5 s) and holds 450 s of 1.
    np.testing.assert_allclose(weights[1, 0], 112.5 / 900, rtol=1e-12)
    np.testing.assert_allclose(weights[1, 1], 0.5, rtol=1e-12)
    assert np.all(weights[:, 2:] == 0.0)
    assert np.all(weights.sum(axis=0) <= 1.0)


def _der_meters(campus_meters) -> DerMeters:
    pv = campus_meters.pv_kwp > 0
    return DerMeters(
        meter_id=np.asarray(campus_meters.meter_id, dtype=object)[pv],
        key=campus_meters.key[pv],
        category=np.zeros(pv.sum(), dtype=np.int64),
        inverter_kw=campus_meters.inverter_kw[pv],
        battery_kw=campus_meters.battery_kw[pv],
    )


def test_weights_of_an_interval_are_the_same_in_every_window(campus_meters):
    meters = _der_meters(campus_meters)
    controls = (
        _event(event_id="01", randomize_start_s=900, max_limit_pct=10.0, ramp_s=1000),
        _event(event_id="02", start_s=SUNDAY + 3600, duration_s=3600, primacy=0, fixed_kw=5.0),
        _event(
            event_id="03", start_s=SUNDAY + 11 * 3600, randomize_duration_s=-3600, connect=False
        ),
        _event(event_id="04", start_s=SUNDAY + 12 * 3600, cancelled_at_s=SUNDAY + 12 * 3600 + 700),
    )
    default = DerDefault(set_grad_w=0.07)
    starts = SUNDAY + 900 * np.arange(96)
    events, whole = control_weights(controls, (default,), 3, meters, starts, 900)
    assert [e.event_id for e in events] == ["02", "04", "03", "01"]
    assert np.all(whole.sum(axis=(1, 2)) > 0)
    ids = [e.event_id for e in events]
    for t in range(96):
        some, part = control_weights(controls, (default,), 3, meters, starts[t : t + 1], 900)
        for event, weight in zip(some, part, strict=True):
            np.testing.assert_array_equal(weight[0], whole[ids.index(event.event_id), t])
        left_out = [i for i, e in enumerate(events) if e not in some]
        assert np.all(whole[left_out, t] == 0.0)


def test_a_randomised_cancellation_follows_each_meters_start_offset(campus_meters):
    meters = _der_meters(campus_meters)
    fields = {"randomize_start_s": 900, "cancelled_at_s": SUNDAY + 11 * 3600, "fixed_kw": 1.0}
    begin, end = control_window(_event(**fields), 5, meters)
    np.testing.assert_array_equal(end, SUNDAY + 11 * 3600.0)
    begin, end = control_window(_event(cancel_randomized=True, **fields), 5, meters)
    np.testing.assert_allclose(end - begin, 3600.0, rtol=0, atol=1e-6)
    assert len(np.unique(end)) == len(begin)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event_id": ""}, "event_id"),
        ({"duration_s": -1}, "duration_s"),
        ({"randomize_start_s": 3601}, "randomize_start_s"),
        ({"export_limit_kw": -1.0}, "export_limit_kw"),
        ({"max_limit_pct": 101.0}, "max_limit_pct"),
        ({"ramp_s": -5}, "ramp_s"),
        ({"fixed_kw": float("nan")}, "fixed_kw"),
        ({"fixed_pct": -101.0}, "fixed_pct"),
        ({"device_category": -1}, "device_category"),
    ],
)
def test_malformed_controls_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _event(**kwargs)
    with pytest.raises(ValueError, match="set_grad_w"):
        DerDefault(set_grad_w=-1.0)
