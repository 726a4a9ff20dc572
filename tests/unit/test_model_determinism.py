"""Same seed and config → identical readings, however the fleet is split into groups or windows.
This is what lets Ray shard the meters across actors and nodes."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from gtx_ray.fleet import generate_fleet
from gtx_ray.model.controls import COMBINED_PV_AND_STORAGE, PHOTOVOLTAIC_SYSTEM, LoadControl
from gtx_ray.model.der import DerControl, DerDefault
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from gtx_ray.model.tariff import PriceInterval, TimeOfUseTariff
from gtx_ray.readings import READING_SCHEMA
from tests.unit.helpers import run

START = 1_735_664_400 + 100 * 86_400


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("timestamp", "ascending"), ("meter_id", "ascending")])


def test_same_seed_same_batches(campus, campus_meters):
    a, _ = run(MeterModel(campus_meters, campus, 9, 900), START, 96, 96)
    b, _ = run(MeterModel(campus_meters, campus, 9, 900), START, 96, 96)
    assert a.equals(b)
    c, _ = run(MeterModel(campus_meters, campus, 10, 900), START, 96, 96)
    assert not a.equals(c)
    assert a.schema == READING_SCHEMA


@settings(max_examples=15, deadline=None)
@given(
    n_meters=st.integers(2, 300),
    cuts=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=5),
    window=st.integers(1, 50),
    seed=st.integers(0, 10_000),
)
def test_groups_and_windows_step_like_the_whole(campus, n_meters, cuts, window, seed):
    fleet = generate_fleet(campus, n_meters, seed)
    whole, whole_state = run(MeterModel(fleet, campus, seed, 900), START, 50, window=50)

    bounds = sorted({0, n_meters, *(int(c * n_meters) for c in cuts)})
    order = np.random.default_rng(seed).permutation(n_meters)  # groups need not be contiguous
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        group = fleet.take(np.sort(order[lo:hi]))
        table, state = run(MeterModel(group, campus, seed, 900), START, 50, window=window)
        parts.append(table)
        index = np.sort(order[lo:hi])
        np.testing.assert_array_equal(
            state.import_register_kwh, whole_state.import_register_kwh[index]
        )
        np.testing.assert_array_equal(state.soc_kwh, whole_state.soc_kwh[index])
    combined = _sorted(pa.concat_tables(parts))
    assert combined.equals(_sorted(whole))


def test_time_major_layout(campus, campus_meters):
    table, _ = run(MeterModel(campus_meters, campus, 1, 900), START, 4, 4)
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    assert np.array_equal(ts, np.repeat(START + 900 * np.arange(4), 25))
    assert table.column("meter_id").to_pylist()[:2] == ["AMI_METER_UTCC_001", "AMI_METER_UTCC_002"]
    assert pc.all(pc.equal(pc.count_distinct(table.column("meter_id")), 25)).as_py()


# Demand-response events and prices are inputs: the same inputs give the same readings, however
# the run is cut into windows or the fleet into groups.

TUESDAY = 1_735_664_400 + 13 * 86_400  # Tue 14 Jan 2025 00:00 +07:00
NOON = TUESDAY + 12 * 3600


def _inputs(meter_ids) -> ModelInputs:
    """Two overlapping randomised events (one cancelled, one for some meters only), a tariff
    change, a price interval and three overlapping DER controls (randomised, ramped, one
    cancelled, one for some meters only) under a default control between 12:00 and 20:00."""
    return ModelInputs(
        load_controls=(
            LoadControl(
                "C0FFEE01",
                NOON + 3600,
                2 * 3600,
                randomize_start_s=1200,
                randomize_duration_s=-900,
                reduce_pct=20.0,
                cooling_offset_c=2.0,
            ),
            LoadControl(
                "C0FFEE02",
                NOON + 2 * 3600,
                3 * 3600,
                randomize_start_s=-600,
                duty_cycle_pct=25.0,
                meter_ids=frozenset(meter_ids[::3]),
                cancelled_at_s=NOON + 4 * 3600,
                cancel_randomized=True,
            ),
        ),
        tariffs=(TimeOfUseTariff(NOON + 5 * 3600, 17.0, 21.0, 6.0, 2.5, 0.4, 2.0),),
        prices=(PriceInterval(NOON + 5 * 3600 + 1800, 2700, 9.0),),
        der_controls=(
            DerControl(
                "DE0001",
                NOON + 1800,
                3 * 3600,
                randomize_start_s=900,
                randomize_duration_s=-600,
                device_category=PHOTOVOLTAIC_SYSTEM | COMBINED_PV_AND_STORAGE,
                export_limit_kw=0.0,
                ramp_s=1200,
            ),
            DerControl(
                "DE0002",
                NOON + 2 * 3600,
                3 * 3600,
                randomize_start_s=-600,
                meter_ids=frozenset(meter_ids[1::2]),
                primacy=0,
                cancelled_at_s=NOON + 4 * 3600 + 300,
                fixed_kw=25.0,
            ),
            DerControl(
                "DE0003",
                NOON + 3 * 3600,
                2 * 3600,
                randomize_duration_s=1800,
                created_s=NOON,
                max_limit_pct=30.0,
                import_limit_kw=50.0,
            ),
        ),
        der_defaults=(DerDefault(generation_limit_kw=150.0, set_grad_w=0.05),),
    )


def test_same_inputs_same_batches(campus, campus_meters):
    inputs = _inputs(campus_meters.meter_id)
    a, _ = run(MeterModel(campus_meters, campus, 9, 900), NOON, 32, 32, inputs)
    b, _ = run(MeterModel(campus_meters, campus, 9, 900), NOON, 32, 32, inputs)
    assert a.equals(b)
    plain, _ = run(MeterModel(campus_meters, campus, 9, 900), NOON, 32, 32)
    assert not a.equals(plain)
    assert a.column("shed_kw").to_numpy().max() > 0
    assert a.column("curtailed_kw").to_numpy().max() > 0


def test_one_window_equals_two_split_at_any_interval(campus, campus_meters):
    """Splits fall before, inside and after both events (at randomised edges, inside the
    cancellation, inside the rebounds) and across the tariff change."""
    model = MeterModel(campus_meters, campus, 9, 900)
    inputs = _inputs(campus_meters.meter_id)
    state = model.initial_state(NOON)
    whole = model.step(state, 32, inputs=inputs)
    expected = pa.Table.from_batches([whole.batch])
    for cut in range(1, 32):
        head = model.step(state, cut, inputs=inputs)
        tail = model.step(head.state, 32 - cut, inputs=inputs)
        assert pa.Table.from_batches([head.batch, tail.batch]).equals(expected), cut
        np.testing.assert_array_equal(tail.state.soc_kwh, whole.state.soc_kwh)
        np.testing.assert_array_equal(
            tail.state.import_register_kwh, whole.state.import_register_kwh
        )


@settings(max_examples=10, deadline=None)
@given(
    n_meters=st.integers(2, 200),
    cut=st.floats(0.05, 0.95),
    window=st.integers(1, 40),
    seed=st.integers(0, 10_000),
)
def test_groups_and_windows_with_inputs_step_like_the_whole(campus, n_meters, cut, window, seed):
    fleet = generate_fleet(campus, n_meters, seed)
    inputs = _inputs(fleet.meter_id)
    whole, _ = run(MeterModel(fleet, campus, seed, 900), NOON, 40, 40, inputs)
    order = np.random.default_rng(seed).permutation(n_meters)
    k = max(1, int(cut * n_meters))
    parts = [
        run(MeterModel(fleet.take(np.sort(group)), campus, seed, 900), NOON, 40, window, inputs)[0]
        for group in (order[:k], order[k:])
    ]
    assert _sorted(pa.concat_tables(parts)).equals(_sorted(whole))
