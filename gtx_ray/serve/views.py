"""Pure translations from the simulator's Arrow data to the REST API's JSON shapes.

Shapes keep the seed's names (consumers already know them); powers are kW, energies kWh,
voltage V, current A, temperature °C, humidity and battery level %.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from gtx_ray.fleet import METER_TYPES, MeterArrays
from gtx_ray.model.der_dispatch import MODE_BITS
from gtx_ray.model.load import BUILDING_TYPES
from gtx_ray.readings import FIELD_COLUMNS

PHASE_TYPE = {1: "single_phase", 3: "three_phase"}
# a reading's JSON keys (and CSV columns), in order
READING_KEYS = (
    "meter_id",
    "timestamp",
    "building",
    "floor",
    "meter_type",
    "phase_type",
    *FIELD_COLUMNS,
    "shedding",
    "der_control",
)


def rfc3339(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def meter_list(meters: MeterArrays, latest_levels: dict[str, float | None]) -> list[dict]:
    """``GET /api/meters``: static facts per meter plus its latest battery level (%)."""
    rows = []
    for i, meter_id in enumerate(meters.meter_id):
        rows.append(
            {
                "meter_id": meter_id,
                "building": meters.building[i],
                "floor": int(meters.floor[i]),
                "type": METER_TYPES[meters.meter_type[i]],
                "building_type": BUILDING_TYPES[meters.building_type[i]],
                "phase_type": PHASE_TYPE[int(meters.phases[i])],
                "capacity_kw": float(meters.capacity_kw[i]),
                "has_solar": bool(meters.pv_kwp[i] > 0),
                "has_battery": bool(meters.battery_kwh[i] > 0),
                "pv_kwp": float(meters.pv_kwp[i]) if meters.pv_kwp[i] > 0 else None,
                "battery_kwh": float(meters.battery_kwh[i]) if meters.battery_kwh[i] > 0 else None,
                "battery_kw": float(meters.battery_kw[i]) if meters.battery_kwh[i] > 0 else None,
                "battery_level": latest_levels.get(meter_id),
            }
        )
    return rows


def reading_dicts(table: pa.Table, phases_by_meter: dict[str, int]) -> list[dict]:
    """Readings as the seed's JSON objects (timestamps RFC 3339, nulls as null)."""
    timestamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    missing = [None] * table.num_rows  # a field stored before it existed (older runs)
    columns = {
        name: table.column(name).to_pylist() if name in table.column_names else missing
        for name in ("meter_id", "building", "floor", "meter_type", *FIELD_COLUMNS)
    }
    out = []
    for i, ts in enumerate(timestamps):
        meter_id = columns["meter_id"][i]
        row = {
            "meter_id": meter_id,
            "timestamp": rfc3339(int(ts)),
            "building": columns["building"][i],
            "floor": columns["floor"][i],
            "meter_type": columns["meter_type"][i],
            "phase_type": PHASE_TYPE.get(phases_by_meter.get(meter_id, 0)),
        }
        for name in FIELD_COLUMNS:
            row[name] = _clean(columns[name][i])
        row["shedding"] = bool(row["shed_kw"]) and row["shed_kw"] > 0  # a load-control event
        row["der_control"] = der_control_text(row["der_mode"])
        out.append(row)
    return out


def der_control_text(der_mode: float | None) -> str | None:
    """A reading's ``der_mode`` bits in words: "none" (unconstrained), "default: max_lim_w",
    "event: export_limit+fixed_w", …; None for a meter without PV or a battery."""
    if der_mode is None or der_mode != der_mode:  # null or NaN
        return None
    bits = int(der_mode)
    if not bits:
        return "none"
    names = [n for n, b in MODE_BITS.items() if n != "event" and bits & b]
    source = "event" if bits & MODE_BITS["event"] else "default"
    return f"{source}: {'+'.join(names) or 'no mode'}"


def readings_csv(readings: list[dict]) -> str:
    """The same readings as CSV: the header row (also when there are no readings), then one
    reading per line."""
    return rows_csv(readings, READING_KEYS)


def rows_csv(rows: list[dict], keys) -> str:
    """Rows as CSV with ``keys`` as the header row (written also when there are no rows)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(keys), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def totals_dicts(totals: pa.Table) -> list[dict]:
    """Per-interval totals (``history.TOTALS_SCHEMA``) as JSON objects: RFC 3339 timestamps,
    powers and energies rounded to the watt and watt-hour."""
    timestamps = totals.column("timestamp").cast(pa.int64()).to_pylist()
    columns = {name: totals.column(name).to_pylist() for name in totals.column_names[1:]}
    return [
        {
            "timestamp": rfc3339(ts),
            **{
                name: (values[i] if name == "meters" else round(values[i], 3))
                for name, values in columns.items()
            },
        }
        for i, ts in enumerate(timestamps)
    ]


def campus_summary(
    campus_name: str, meters: MeterArrays, latest: pa.Table, today: dict | None = None
) -> dict:
    """``GET /api/campus/summary``: totals over the latest reading of every meter, kW, with
    per-building totals; the import price in force (THB/kWh), the demand cut by load-control
    events (kW) and the meters cutting it, the PV output DER controls curtailed (kW, meters);
    ``today``: the local day's energy and cost so far (THB; see ``actors.day_tally``). Counts
    describe the fleet."""
    consumption = np.nan_to_num(latest.column("energy_consumed").to_numpy(zero_copy_only=False))
    generation = np.nan_to_num(latest.column("energy_generated").to_numpy(zero_copy_only=False))
    feed_in = np.nan_to_num(latest.column("grid_feed_in").to_numpy(zero_copy_only=False))
    imported = latest.column("energy_import_kwh").to_numpy(zero_copy_only=False)
    exported = latest.column("energy_export_kwh").to_numpy(zero_copy_only=False)
    levels = latest.column("battery_level").to_numpy(zero_copy_only=False).astype(np.float64)
    timestamps = latest.column("timestamp").cast(pa.int64()).to_numpy()
    buildings = latest.column("building").to_pylist()
    per_building: dict[str, dict] = {}
    for i, name in enumerate(buildings):
        entry = per_building.setdefault(
            name,
            {
                "building": name,
                "meters": 0,
                "consumption": 0.0,
                "generation": 0.0,
                "grid_feed_in": 0.0,
            },
        )
        entry["meters"] += 1
        entry["consumption"] += float(consumption[i])
        entry["generation"] += float(generation[i])
        entry["grid_feed_in"] += float(feed_in[i])
    types = meters.meter_type
    battery_levels = levels[~np.isnan(levels)]
    shed = np.nan_to_num(latest.column("shed_kw").to_numpy(zero_copy_only=False))
    curtailed = np.nan_to_num(latest.column("curtailed_kw").to_numpy(zero_copy_only=False))
    price = latest.column("price_thb_per_kwh").to_numpy(zero_copy_only=False)
    return {
        "timestamp": rfc3339(int(timestamps.max())) if len(timestamps) else None,
        "campus": campus_name,
        "total_meters": len(meters),
        "meters_reporting": int(latest.num_rows),
        "total_consumption": float(consumption.sum()),
        "total_generation": float(generation.sum()),
        "total_grid_feed_in": float(feed_in.sum()),
        "total_import_kwh": float(np.sum(imported)),
        "total_export_kwh": float(np.sum(exported)),
        "prosumer_count": int(np.sum(types != 0)),
        "consumer_count": int(np.sum(types == 0)),
        "hybrid_prosumer_count": int(np.sum(types == 2)),
        "three_phase_count": int(np.sum(meters.phases == 3)),
        "single_phase_count": int(np.sum(meters.phases == 1)),
        "meters_with_solar": int(np.sum(meters.pv_kwp > 0)),
        "meters_with_battery": int(np.sum(meters.battery_kwh > 0)),
        "average_battery_level": float(battery_levels.mean()) if len(battery_levels) else None,
        "price_thb_per_kwh": float(np.nanmax(price)) if len(price) else None,
        "shed_kw": float(shed.sum()),
        "meters_shedding": int(np.sum(shed > 0)),
        "curtailed_kw": float(curtailed.sum()),
        "meters_curtailed": int(np.sum(curtailed > 0)),
        "today": today,
        "buildings": sorted(per_building.values(), key=lambda b: b["building"]),
    }
