"""Reading history from the Parquet data directory or InfluxDB 1.x: one meter's readings, or the
per-interval totals of a building or the whole campus.

Reads only the row groups it needs (pyarrow dataset with a filter), plus the journal of batches
not yet rolled into a part, so the newest readings are included.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from gtx_ray.readings import READING_SCHEMA
from gtx_ray.storage.parquet import journals_in, read_journal, readings_dir

TOTAL_FIELDS: tuple[tuple[str, str], ...] = (
    ("energy_consumed", "consumption_kw"),
    ("energy_generated", "generation_kw"),
    ("grid_feed_in", "grid_export_kw"),
    ("battery_power", "battery_kw"),
    ("energy_import_kwh", "import_kwh"),
    ("energy_export_kwh", "export_kwh"),
)
"""Reading field → its total's name: powers are kW averages over the interval summed over the
meters (battery + charging / − discharging), energies kWh in the interval."""
TOTALS_SCHEMA = pa.schema(
    [pa.field("timestamp", pa.timestamp("s", tz="UTC")), pa.field("meters", pa.int64())]
    + [pa.field(total, pa.float64()) for _, total in TOTAL_FIELDS]
    + [pa.field("net_grid_kw", pa.float64())]
)


def stored_readings(
    data_dir: str | Path, start_s: int, end_s: int, meter_ids: list[str] | None = None
) -> pa.Table:
    """Readings with start_s <= timestamp < end_s (UTC epoch s) of ``meter_ids`` (None: every
    meter), oldest first."""
    directory = readings_dir(data_dir)
    start = pa.scalar(start_s, pa.timestamp("s", tz="UTC"))
    end = pa.scalar(end_s, pa.timestamp("s", tz="UTC"))
    condition = (ds.field("timestamp") >= start) & (ds.field("timestamp") < end)
    if meter_ids is not None:
        condition &= ds.field("meter_id").isin(meter_ids)
    tables = []
    parts = sorted(directory.glob("part-*.parquet")) if directory.exists() else []
    if parts:
        dataset = ds.dataset([str(p) for p in parts], schema=READING_SCHEMA, format="parquet")
        tables.append(dataset.to_table(filter=condition))
    for journal in journals_in(directory):
        batches = read_journal(journal)
        if batches:
            recent = pa.Table.from_batches(batches, schema=READING_SCHEMA)
            tables.append(recent.filter(condition))
    if not tables:
        return READING_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by("timestamp")


def meter_history(
    data_dir: str | Path, meter_id: str, start_s: int, end_s: int, limit: int
) -> pa.Table:
    """Readings of ``meter_id`` with start_s <= timestamp < end_s (UTC epoch s), oldest first,
    at most ``limit`` rows."""
    return stored_readings(data_dir, start_s, end_s, [meter_id]).slice(0, limit)


def interval_totals(readings: pa.Table) -> pa.Table:
    """One row per interval of ``readings``: the meters that reported and the sums of
    ``TOTAL_FIELDS`` (a meter without a battery adds 0 kW), plus the net grid power
    (import − export, kW), oldest first."""
    sums = [(field, "sum", pc.ScalarAggregateOptions(min_count=0)) for field, _ in TOTAL_FIELDS]
    grouped = readings.group_by("timestamp").aggregate([("meter_id", "count"), *sums])
    columns = {
        "timestamp": grouped.column("timestamp"),
        "meters": grouped.column("meter_id_count"),
    }
    for field, total in TOTAL_FIELDS:
        columns[total] = pc.fill_null(grouped.column(f"{field}_sum"), 0.0)
    columns["net_grid_kw"] = pc.add(
        pc.subtract(columns["consumption_kw"], columns["generation_kw"]), columns["battery_kw"]
    )
    return pa.table(columns, schema=TOTALS_SCHEMA).sort_by("timestamp")


def totals_history(
    data_dir: str | Path,
    meter_ids: list[str] | None,
    start_s: int,
    end_s: int,
    limit: int,
) -> pa.Table:
    """Per-interval totals of ``meter_ids`` (None: the campus) in [start_s, end_s), at most
    ``limit`` intervals, from the data dir."""
    return interval_totals(stored_readings(data_dir, start_s, end_s, meter_ids)).slice(0, limit)


def influx_totals(
    config, building: str | None, start_s: int, end_s: int, interval_s: int, limit: int
) -> pa.Table:
    """The same totals from InfluxDB 1.x (InfluxQL ``GROUP BY time``); ``building`` None: the
    campus. Raises InfluxError when the query fails."""
    from gtx_ray.storage.influx import influxql

    sums = ", ".join(f"sum({field}) AS {field}" for field, _ in TOTAL_FIELDS)
    where = f"building = '{_quote(building)}' AND " if building is not None else ""
    query = (
        f"SELECT count(energy_consumed) AS meters, {sums} FROM meter_readings WHERE {where}"
        f"time >= {start_s}s AND time < {end_s}s GROUP BY time({int(interval_s)}s) fill(none) "
        f"LIMIT {int(limit)}"
    )
    records = [
        {
            "timestamp": datetime.fromtimestamp(int(row["time"]), UTC),
            **{field: row.get(field) for field, _ in TOTAL_FIELDS},
            "meters": int(row.get("meters") or 0),
        }
        for row in influxql(config, query)
    ]
    if not records:
        return TOTALS_SCHEMA.empty_table()
    grouped = pa.Table.from_pylist(records)
    columns = {"timestamp": grouped.column("timestamp"), "meters": grouped.column("meters")}
    for field, total in TOTAL_FIELDS:
        columns[total] = pc.fill_null(grouped.column(field).cast(pa.float64()), 0.0)
    columns["net_grid_kw"] = pc.add(
        pc.subtract(columns["consumption_kw"], columns["generation_kw"]), columns["battery_kw"]
    )
    return pa.table(columns, schema=TOTALS_SCHEMA)


def _quote(value: str) -> str:
    """An InfluxQL string literal's content."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def influx_history(config, meter_id: str, start_s: int, end_s: int, limit: int) -> pa.Table:
    """The same readings from InfluxDB 1.x via InfluxQL (``config``: an InfluxConfig), as a table
    with the reading schema; fields InfluxDB does not hold (nulls) come back null. Raises
    InfluxError when the query fails. ``meter_id`` must be a known meter id (no quoting needed:
    ids match ``[A-Za-z0-9_.-]+``)."""
    from gtx_ray.readings import FIELD_COLUMNS
    from gtx_ray.storage.influx import influxql

    query = (
        f"SELECT * FROM meter_readings WHERE meter_id = '{meter_id}' AND time >= {start_s}s "
        f"AND time < {end_s}s ORDER BY time LIMIT {int(limit)}"
    )
    rows = influxql(config, query)
    records = [
        {
            "timestamp": datetime.fromtimestamp(int(row["time"]), UTC),
            "meter_id": row["meter_id"],
            "building": row["building"],
            "floor": int(row["floor"]),
            "meter_type": row["meter_type"],
            **{name: row.get(name) for name in FIELD_COLUMNS},
        }
        for row in rows
    ]
    return pa.Table.from_pylist(records, schema=READING_SCHEMA)
