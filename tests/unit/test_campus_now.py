"""The dashboard's campus-now aggregation over real model readings: it agrees with the campus
summary, closes the energy balance, and stays bounded for big fleets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gtx_ray.fleet import generate_fleet
from gtx_ray.model.meters import MeterModel
from gtx_ray.serve import campus_now as module
from gtx_ray.serve.campus_now import building_types, campus_now
from gtx_ray.serve.views import campus_summary

NOON_BANGKOK = 1_735_664_400 + 12 * 3600  # 2025-01-01 12:00 +07:00
INTERVAL_S = 900


def _latest(campus, meters, start_s: int = NOON_BANGKOK, seed: int = 3) -> pa.Table:
    model = MeterModel(meters, campus, seed=seed, interval_s=INTERVAL_S)
    state = model.initial_state(start_s - 4 * INTERVAL_S)
    state = model.step(state, 4).state  # batteries away from their initial level
    return pa.Table.from_batches([model.step(state, 1).batch])


def test_agrees_with_the_summary_and_closes_the_balance(campus, campus_meters):
    latest = _latest(campus, campus_meters)
    now = campus_now("UTCC", building_types(campus_meters), latest)
    summary = campus_summary("UTCC", campus_meters, latest)

    totals = now["totals"]
    assert now["timestamp"] == summary["timestamp"]
    assert totals["meters"] == latest.num_rows
    assert totals["consumption_kw"] == pytest.approx(summary["total_consumption"], rel=1e-12)
    assert totals["generation_kw"] == pytest.approx(summary["total_generation"], rel=1e-12)
    assert totals["export_kw"] == pytest.approx(summary["total_grid_feed_in"], rel=1e-12)
    assert totals["battery_level_pct"] == pytest.approx(summary["average_battery_level"])
    hours = INTERVAL_S / 3600
    assert totals["import_kw"] * hours == pytest.approx(summary["total_import_kwh"], rel=1e-9)
    assert totals["net_grid_kw"] == pytest.approx(totals["import_kw"] - totals["export_kw"])

    by_name = {b["building"]: b for b in summary["buildings"]}
    assert [b["building"] for b in now["buildings"]] == sorted(by_name)
    assert now["buildings_order"] == "building" and now["buildings_total"] == len(by_name)
    readings = {r["meter_id"]: r for r in latest.to_pylist()}
    for building in now["buildings"]:
        expected = by_name[building["building"]]
        assert building["meters"] == expected["meters"] == len(building["meter_rows"])
        assert building["consumption_kw"] == pytest.approx(expected["consumption"], rel=1e-12)
        assert building["generation_kw"] == pytest.approx(expected["generation"], rel=1e-12)
        assert building["export_kw"] == pytest.approx(expected["grid_feed_in"], abs=1e-9)
        ids = [m["meter_id"] for m in building["meter_rows"]]
        assert ids == sorted(ids)
        for meter in building["meter_rows"]:
            reading = readings[meter["meter_id"]]
            assert meter["consumption_kw"] == reading["energy_consumed"]
            assert meter["battery_level_pct"] == reading["battery_level"]
            assert meter["battery_kw"] == reading["battery_power"]
            assert meter["import_kw"] * hours == pytest.approx(
                reading["energy_import_kwh"], abs=1e-9
            )
            assert meter["export_kw"] * hours == pytest.approx(
                reading["energy_export_kwh"], abs=1e-9
            )
    assert now["meter_rows_shown"] == now["meter_rows_total"] == latest.num_rows

    for field in ("consumption_kw", "generation_kw", "battery_kw", "import_kw", "export_kw"):
        assert sum(t[field] for t in now["building_types"]) == pytest.approx(totals[field])
    assert sum(t["buildings"] for t in now["building_types"]) == totals["buildings"]
    with_battery = [t for t in now["building_types"] if t["battery_level_pct"] is not None]
    assert with_battery and len(with_battery) < len(now["building_types"])


def test_a_big_fleet_is_bounded_and_shows_its_largest_consumers(campus, monkeypatch):
    meters = generate_fleet(campus, 3_000, seed=11)
    latest = _latest(campus, meters)
    monkeypatch.setattr(module, "MAX_METER_ROWS", 40)
    now = campus_now("sim", building_types(meters), latest)

    assert now["buildings_total"] > module.MAX_BUILDINGS
    assert len(now["buildings"]) == module.MAX_BUILDINGS
    assert now["buildings_order"] == "consumption"
    shown = [b["consumption_kw"] for b in now["buildings"]]
    assert shown == sorted(shown, reverse=True)
    consumption = latest.column("energy_consumed").to_numpy()
    per_building: dict[str, float] = {}
    for name, kw in zip(latest.column("building").to_pylist(), consumption, strict=True):
        per_building[name] = per_building.get(name, 0.0) + kw
    assert shown[-1] >= sorted(per_building.values(), reverse=True)[module.MAX_BUILDINGS - 1]

    rows = [m for b in now["buildings"] if b["meter_rows"] for m in b["meter_rows"]]
    assert len(rows) == now["meter_rows_shown"] <= 40
    assert any(b["meter_rows"] is None for b in now["buildings"])
    assert now["totals"]["meters"] == now["meter_rows_total"] == 3_000
    assert now["totals"]["consumption_kw"] == pytest.approx(float(np.sum(consumption)))
    assert sum(t["meters"] for t in now["building_types"]) == 3_000
