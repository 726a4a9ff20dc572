"""Campus configuration and generated fleets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gtx_ray.errors import ConfigError
from gtx_ray.fleet import METER_TYPES, generate_fleet, load_campus, type_counts
from gtx_ray.model.meters import MeterModel
from tests.conftest import CAMPUS_CONFIG


def test_campus_has_25_meters_in_14_buildings_with_the_specified_mix(campus):
    assert len(campus.meters) == 25
    assert len({m.building for m in campus.meters}) == 14
    assert Counter(m.meter_type for m in campus.meters) == {
        "consumer": 9,
        "prosumer": 11,
        "hybrid_prosumer": 5,
    }
    assert sum(m.capacity_kw for m in campus.meters) == 4635
    for m in campus.meters:
        assert (m.pv_kwp is not None) == (m.meter_type != "consumer")
        assert (m.battery is not None) == (m.meter_type == "hybrid_prosumer")
    assert campus.site.utc_offset_s == 7 * 3600


def test_campus_matches_the_reference_table(campus):
    """Spot-check the rows of shared/reference/campus.md."""
    by_id = {m.meter_id: m for m in campus.meters}
    assert by_id["AMI_METER_UTCC_008"].building == "Business Administration Building"
    assert (by_id["AMI_METER_UTCC_008"].floor, by_id["AMI_METER_UTCC_008"].phases) == (3, 1)
    assert by_id["AMI_METER_UTCC_022"].capacity_kw == 400
    assert by_id["AMI_METER_UTCC_025"].building_type == "research"


def _write(tmp_path: Path, mutate) -> Path:
    raw = json.loads(CAMPUS_CONFIG.read_text())
    mutate(raw)
    path = tmp_path / "campus.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda raw: raw["meters"][6].update(capacity_kw=-5),
            ["campus.json", "AMI_METER_UTCC_007", "capacity_kw", "greater than 0"],
        ),
        (lambda raw: raw["meters"][2].update(phases=2), ["AMI_METER_UTCC_003", "phases"]),
        (
            lambda raw: raw["meters"][0].update(pv_kwp=30.0, inverter_kw=26.0),
            ["AMI_METER_UTCC_001", "consumer meter has no pv_kwp"],
        ),
        (lambda raw: raw["meters"][21].pop("battery"), ["AMI_METER_UTCC_022", "needs a battery"]),
        (
            lambda raw: raw["meters"][4].update(building_type="casino"),
            ["AMI_METER_UTCC_005", "building_type"],
        ),
        (
            lambda raw: raw["meters"][1].update(meter_id="AMI_METER_UTCC_001"),
            ["meter_id appears more than once", "AMI_METER_UTCC_001"],
        ),
        (lambda raw: raw["site"].update(latitude_deg=123), ["site.latitude_deg"]),
        (
            lambda raw: raw["meters"][3].update(voltage_class="MV"),
            ["AMI_METER_UTCC_004", "voltage_class"],
        ),
    ],
)
def test_bad_campus_file_names_file_meter_and_field(tmp_path, mutate, expected):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as caught:
        load_campus(path)
    for fragment in expected:
        assert fragment in str(caught.value)


def test_unreadable_campus_files_give_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_campus(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"meters": [')
    with pytest.raises(ConfigError, match=r"broken\.json: not valid JSON"):
        load_campus(broken)


@pytest.mark.parametrize("n", [1, 10, 25, 1000, 100_000])
def test_generated_fleet_keeps_the_mix(campus, n):
    fleet = generate_fleet(campus, n, seed=7)
    counts = Counter(METER_TYPES[t] for t in fleet.meter_type)
    assert counts == {k: v for k, v in type_counts(n).items() if v}
    assert sum(counts.values()) == n
    assert abs(counts["consumer"] - 0.35 * n) <= 0.5 + 1e-9
    assert abs(counts.get("hybrid_prosumer", 0) - 0.20 * n) <= 0.5 + 1e-9
    assert len(set(fleet.meter_id)) == n
    has_pv = fleet.pv_kwp > 0
    assert np.array_equal(has_pv, fleet.meter_type != 0)
    assert np.array_equal(fleet.battery_kwh > 0, fleet.meter_type == 2)
    assert np.all(fleet.inverter_kw[has_pv] < fleet.pv_kwp[has_pv])


def test_generated_fleet_draws_from_the_campus_distribution(campus):
    fleet = generate_fleet(campus, 20_000, seed=3)
    campus_capacity = np.array([m.capacity_kw for m in campus.meters])
    # Capacities resemble the campus's (same median within 15 %), floors are 1–3 per building.
    assert abs(np.median(fleet.capacity_kw) / np.median(campus_capacity) - 1) < 0.15
    assert set(np.unique(fleet.floor)) == {1, 2, 3}
    campus_share = np.mean([m.phases == 3 for m in campus.meters])
    assert abs(np.mean(fleet.phases == 3) - campus_share) < 0.02
    # Every meter of a building shares its building type.
    first = {}
    for name, kind in zip(fleet.building, fleet.building_type, strict=True):
        assert first.setdefault(name, kind) == kind


def test_generated_fleet_is_deterministic(campus):
    a, b = generate_fleet(campus, 500, seed=11), generate_fleet(campus, 500, seed=11)
    for name, values in a.__dict__.items():
        assert np.array_equal(values, getattr(b, name)), name
    other = generate_fleet(campus, 500, seed=12)
    assert list(a.meter_id) == list(other.meter_id)  # ids depend on position only
    assert not np.array_equal(a.capacity_kw, other.capacity_kw)
    assert a.meter_id[0] == "AMI_METER_SIM_000001"


def test_fleet_size_must_be_positive(campus):
    with pytest.raises(ConfigError, match="at least 1"):
        generate_fleet(campus, 0, seed=1)


def test_without_batteries_removes_only_the_batteries(campus, campus_meters):
    bare = campus_meters.without_batteries()
    assert (campus_meters.battery_kwh > 0).sum() == 5  # the original is untouched
    assert not bare.battery_kwh.any() and not bare.battery_kw.any()
    assert np.all(bare.battery_efficiency == 1.0)
    for name, values in campus_meters.__dict__.items():
        if not name.startswith("battery"):
            assert np.array_equal(values, getattr(bare, name)), name

    start = 1_741_712_400  # Wednesday 2025-03-12 00:00 Bangkok, a working day
    models = [MeterModel(m, campus, seed=1, interval_s=900) for m in (campus_meters, bare)]
    day = [model.step(model.initial_state(start), 96).batch for model in models]
    assert day[1].column("battery_power").null_count == day[1].num_rows
    for name in ("energy_consumed", "solar_generation", "price_thb_per_kwh"):
        assert day[0].column(name).equals(day[1].column(name)), name
    assert not day[0].column("energy_import_kwh").equals(day[1].column("energy_import_kwh"))


def test_windows_on_their_way_to_storage_fit_a_quarter_of_the_home_object_store():
    from gtx_ray.runtime import READING_BYTES, STORE_SHARE, window_budget

    store = 80 * 2**20
    roomy = window_budget(25, 2976, 4, 8 * 2**30)  # the campus: a month per window, 4 in flight
    assert (roomy.fast_window_intervals, roomy.max_in_flight) == (2976, 4)
    for meters in (200, 10_000, 100_000):
        budget = window_budget(meters, 2976, 4, store)
        held = 2 * budget.max_in_flight * budget.fast_window_intervals * meters * READING_BYTES
        assert budget.max_in_flight >= 1 and budget.fast_window_intervals >= 1
        assert held <= STORE_SHARE * store or budget.fast_window_intervals == 1
    too_big = window_budget(1_000_000, 96, 4, store)  # one interval is more than the share
    assert (too_big.fast_window_intervals, too_big.max_in_flight) == (1, 1)


def test_groups_are_shared_among_aggregators_in_contiguous_shares():
    from gtx_ray.runtime import share_groups

    names, owner = share_groups(10, 3)
    assert names == ("aggregator", "aggregator-1", "aggregator-2")
    assert owner == (0, 0, 0, 0, 1, 1, 1, 2, 2, 2)
    assert share_groups(2, 5) == (("aggregator", "aggregator-1"), (0, 1))  # one per group at most
    assert share_groups(4, 1) == (("aggregator",), (0, 0, 0, 0))


def test_merged_storage_status_counts_every_aggregator_and_waits_for_the_slowest():
    from gtx_ray.actors.aggregator import merge_status

    def status(rows, until, day, kwh, error=None, first=10.0):
        today = {"date": day, "import_kwh": kwh, "net_cost_thb": kwh * 4} if day else None
        return {
            "rows_received": rows,
            "rows_stored": rows,
            "rows_spooled": 0,
            "rows_delivered": rows,
            "queue_depth": 1,
            "duplicates_ignored": 0,
            "rows_trimmed": 0,
            "windows_stored": until // 900,
            "stored_until_s": until,
            "first_stored_at": first,
            "latest_interval_s": until - 900,
            "today": today,
            "recovered": False,
            "last_error": error,
            "sinks": [{"sink": "parquet", "rows_written": rows}],
            "time": 1.0,
        }

    merged = merge_status(
        [
            status(100, 9000, "2025-01-01", 10.0),
            status(50, 8100, "2025-01-01", 5.0, error="disk full"),
            status(70, 9900, "2025-01-02", 1.0, first=12.5),  # a window ahead, next day
        ]
    )
    assert merged["rows_stored"] == 220 and merged["queue_depth"] == 3
    assert merged["stored_until_s"] == 8100 and merged["latest_interval_s"] == 7200
    assert merged["today"] == {"date": "2025-01-01", "import_kwh": 15.0, "net_cost_thb": 60.0}
    assert merged["last_error"] == "disk full" and len(merged["sinks"]) == 3
    assert merged["aggregators"] == 3
    assert merged["first_stored_at"] == 12.5  # when every aggregator had stored its first
    waiting = merge_status([status(1, 900, None, 0.0), status(0, 0, None, 0.0, first=None)])
    assert waiting["first_stored_at"] is None


def test_meter_groups_take_turns_over_the_nodes_by_their_cpus():
    from gtx_ray.placement import turns_by_cpus

    turns = turns_by_cpus({"head": 0.0, "big": 4.0, "small": 2.0}, 12)
    assert turns.count("big") == 8 and turns.count("small") == 4 and "head" not in turns
    assert set(turns[:3]) == {"big", "small"}  # interleaved, not one node after the other
    assert set(turns_by_cpus({"a": 1.0, "b": 1.0, "c": 1.0}, 3)) == {"a", "b", "c"}
    assert turns_by_cpus({"head": 0.0}, 5) == []
