"""The dashboard's day-so-far accumulator: one point per interval, local days, bounded."""

from __future__ import annotations

import itertools

from gtx_ray.serve.day_series import FIELDS, DaySeries

BANGKOK_S = 7 * 3600
MIDNIGHT_BANGKOK = 1_735_664_400  # 2025-01-01 00:00 +07:00 (2024-12-31 17:00 UTC)


def _totals(kw: float) -> dict:
    return {name: kw for name in FIELDS} | {"battery_level_pct": None}


def test_one_point_per_interval_of_the_local_day():
    day = DaySeries(BANGKOK_S)
    assert day.to_dict()["points"] == 0 and day.to_dict()["date"] is None
    assert day.add(MIDNIGHT_BANGKOK - 900, _totals(1.0))  # 23:45 on 31 December, local
    assert day.to_dict()["date"] == "2024-12-31"
    assert day.add(MIDNIGHT_BANGKOK, _totals(2.0))  # a new local day starts a new series
    assert not day.add(MIDNIGHT_BANGKOK, _totals(2.5))  # the same interval seen again
    assert day.add(MIDNIGHT_BANGKOK + 1800, _totals(3.0))  # an interval skipped at speed
    series = day.to_dict()
    assert series["date"] == "2025-01-01" and series["utc_offset_s"] == BANGKOK_S
    assert series["timestamp"] == ["2024-12-31T17:00:00Z", "2024-12-31T17:30:00Z"]
    assert series["consumption_kw"] == [2.0, 3.0]
    assert series["battery_level_pct"] == [None, None]


def test_time_going_back_starts_afresh():
    day = DaySeries(BANGKOK_S)
    for k in range(4):
        day.add(MIDNIGHT_BANGKOK + k * 900, _totals(k))
    assert day.add(MIDNIGHT_BANGKOK + 900, _totals(9.0))
    assert day.to_dict()["consumption_kw"] == [9.0]


def test_short_intervals_are_thinned_to_the_bound():
    day = DaySeries(0, max_points=96)
    kept = sum(day.add(MIDNIGHT_BANGKOK + 7 * 3600 + s, _totals(1.0)) for s in range(0, 86_400, 60))
    assert kept == 96 == day.to_dict()["points"]
    stamps = day.timestamps
    assert min(b - a for a, b in itertools.pairwise(stamps)) >= 900
