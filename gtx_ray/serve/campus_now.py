"""The campus right now, for the dashboard: totals, per building type and per building (with its
meters) over the latest reading of every meter. Pure: an Arrow table in, a JSON-ready dict out.

Powers are kW averages over the reading's interval. Battery power is + charging / − discharging;
battery level (state of charge) is % and averaged over the meters that have a battery (None when
none has). Grid export is ``grid_feed_in``; grid import follows from the energy balance that
every reading satisfies (``readings.py``): import − export = consumption − generation + battery,
so import = consumption − generation + battery + export, and net grid = import − export.

The answer is bounded whatever the fleet's size: every building while there are at most
``MAX_BUILDINGS`` (by name), otherwise the ``MAX_BUILDINGS`` largest consumers (largest first),
and meter rows for the shown buildings, in that order, up to ``MAX_METER_ROWS`` in all. Grouping
is vectorised (Arrow dictionary encoding + ``np.bincount``): ~0.15 s for 100,000 meters here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gtx_ray.fleet import MeterArrays
from gtx_ray.model.der_dispatch import MODE_BITS
from gtx_ray.model.load import BUILDING_TYPES
from gtx_ray.serve.views import der_control_text, rfc3339

MAX_BUILDINGS = 100
MAX_METER_ROWS = 500
POWER_FIELDS = (
    "consumption_kw",
    "generation_kw",
    "battery_kw",
    "import_kw",
    "export_kw",
    "net_grid_kw",
    "curtailed_kw",
)


def building_types(meters: MeterArrays) -> dict[str, str]:
    """Building name → building type name, from the fleet (computed once per API)."""
    names = [BUILDING_TYPES[t] for t in meters.building_type]
    return dict(zip(meters.building, names, strict=True))


def _floats(latest: pa.Table, name: str, null: float) -> np.ndarray:
    column = latest.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
    return np.where(np.isnan(column), null, column)


def _powers(latest: pa.Table) -> dict[str, np.ndarray]:
    """Per-meter powers (kW) and battery level (%, NaN without a battery), one array each."""
    consumption = _floats(latest, "energy_consumed", 0.0)
    generation = _floats(latest, "energy_generated", 0.0)
    battery = _floats(latest, "battery_power", 0.0)
    export = _floats(latest, "grid_feed_in", 0.0)
    # max(…, 0) only removes rounding noise: import and export are never both > 0
    imported = np.maximum(consumption - generation + battery + export, 0.0)
    return {
        "consumption_kw": consumption,
        "generation_kw": generation,
        "battery_kw": battery,
        "import_kw": imported,
        "export_kw": export,
        "net_grid_kw": imported - export,
        "curtailed_kw": _floats(latest, "curtailed_kw", 0.0),
        "battery_level_pct": _floats(latest, "battery_level", np.nan),
    }


def _bits(latest: pa.Table) -> np.ndarray:
    """Each meter's ``der_mode`` bits (0 without PV or a battery)."""
    return _floats(latest, "der_mode", 0.0).astype(np.int64)


def _grouped(powers: dict[str, np.ndarray], groups: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Sums of every power per group, meter counts, and the mean battery level (NaN if none)."""
    out = {name: np.bincount(groups, powers[name], minlength=n) for name in POWER_FIELDS}
    out["meters"] = np.bincount(groups, minlength=n)
    level = powers["battery_level_pct"]
    has = ~np.isnan(level)
    batteries = np.bincount(groups[has], minlength=n)
    level_sum = np.bincount(groups[has], level[has], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["battery_level_pct"] = level_sum / batteries
    return out


def _entry(grouped: dict[str, np.ndarray], i: int) -> dict:
    level = float(grouped["battery_level_pct"][i])
    return {
        "meters": int(grouped["meters"][i]),
        **{name: float(grouped[name][i]) for name in POWER_FIELDS},
        "battery_level_pct": None if np.isnan(level) else level,
    }


def _add_meter_rows(
    latest: pa.Table,
    powers: dict[str, np.ndarray],
    buildings: list[dict],
    picked: list[np.ndarray | None],
) -> None:
    """Set each building's ``meter_rows`` (by meter id) from its picked rows of ``latest``, or
    None when it has none picked. Only the picked rows' tags leave Arrow."""
    rows = np.concatenate([r for r in picked if r is not None] or [np.zeros(0, np.intp)])
    tags = latest.select(["meter_id", "floor", "meter_type"]).take(rows).to_pylist()
    modes = latest.column("der_mode").take(pa.array(rows)).to_pylist()
    by_row = dict(zip(rows.tolist(), tags, strict=True))
    der_of_row = dict(zip(rows.tolist(), modes, strict=True))
    for entry, mine in zip(buildings, picked, strict=True):
        if mine is None:
            entry["meter_rows"] = None
            continue
        meter_rows = []
        for i in mine.tolist():
            level = float(powers["battery_level_pct"][i])
            has_battery = not np.isnan(level)
            meter_rows.append(
                {
                    **by_row[i],
                    **{name: float(powers[name][i]) for name in POWER_FIELDS},
                    "battery_kw": float(powers["battery_kw"][i]) if has_battery else None,
                    "battery_level_pct": level if has_battery else None,
                    "der_control": der_control_text(der_of_row[i]),
                }
            )
        entry["meter_rows"] = sorted(meter_rows, key=lambda m: m["meter_id"])


def campus_now(campus_name: str, types: dict[str, str], latest: pa.Table) -> dict:
    """``GET /api/campus/now`` from the latest reading of every meter (at least one row);
    ``types`` maps building → building type (``building_types``). Besides the powers: the
    import price in force (THB/kWh), the demand load-control events cut (kW, meters) and the
    PV output DER controls curtailed (kW; also per building, type and meter) and the meters a
    DERControl holds (``meters_der_event``; each meter row says which modes hold it,
    ``der_control``)."""
    powers = _powers(latest)
    encoded = pc.dictionary_encode(latest.column("building").combine_chunks())
    building_of_row = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp)
    names = encoded.dictionary.to_pylist()
    per_building = _grouped(powers, building_of_row, len(names))

    type_names = [types.get(name, "unknown") for name in names]
    type_list = sorted(set(type_names))
    type_index = {t: k for k, t in enumerate(type_list)}
    type_of_building = np.array([type_index[t] for t in type_names], dtype=np.intp)
    per_type = _grouped(powers, type_of_building[building_of_row], len(type_list))
    buildings_per_type = np.bincount(type_of_building, minlength=len(type_list))
    totals = _grouped(powers, np.zeros(latest.num_rows, dtype=np.intp), 1)

    if len(names) <= MAX_BUILDINGS:
        shown = sorted(range(len(names)), key=names.__getitem__)
        order = "building"
    else:  # the largest consumers, largest first (ties by name, so the order is stable)
        consumption = per_building["consumption_kw"]
        shown = np.lexsort((np.array(names, dtype=object), -consumption))[:MAX_BUILDINGS]
        order = "consumption"

    rows_of_building = np.argsort(building_of_row, kind="stable")
    starts = np.r_[0, np.cumsum(per_building["meters"])]
    budget = MAX_METER_ROWS
    buildings, picked = [], []
    for b in shown:
        buildings.append(
            {"building": names[b], "building_type": type_names[b], **_entry(per_building, b)}
        )
        rows = rows_of_building[starts[b] : starts[b + 1]]
        fits = len(rows) <= budget
        picked.append(rows if fits else None)  # over the bound: the building's totals only
        budget -= len(rows) if fits else 0
    _add_meter_rows(latest, powers, buildings, picked)

    timestamps = latest.column("timestamp").cast(pa.int64()).to_numpy()
    shed = np.nan_to_num(latest.column("shed_kw").to_numpy(zero_copy_only=False))
    price = latest.column("price_thb_per_kwh").to_numpy(zero_copy_only=False)
    return {
        "timestamp": rfc3339(int(timestamps.max())),
        "campus": campus_name,
        "price_thb_per_kwh": float(np.nanmax(price)),
        "shed_kw": float(shed.sum()),
        "meters_shedding": int(np.count_nonzero(shed > 0)),
        "curtailed_kw": float(powers["curtailed_kw"].sum()),
        "meters_der_event": int(np.count_nonzero(_bits(latest) & MODE_BITS["event"])),
        "totals": {"buildings": len(names), **_entry(totals, 0)},
        "building_types": [
            {"building_type": t, "buildings": int(buildings_per_type[k]), **_entry(per_type, k)}
            for k, t in enumerate(type_list)
        ],
        "buildings_total": len(names),
        "buildings_order": order,
        "meter_rows_total": latest.num_rows,
        "meter_rows_shown": MAX_METER_ROWS - budget,
        "buildings": buildings,
    }
