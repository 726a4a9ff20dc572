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
from gtx_ray.model.meters import MeterModel
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
