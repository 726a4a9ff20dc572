"""Reading history for one meter from the Parquet data directory (InfluxDB when that sink lands).

Reads only the columns and row groups it needs (pyarrow dataset with a filter), plus the journal of
batches not yet rolled into a part, so the newest readings are included.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from gtx_ray.readings import READING_SCHEMA
from gtx_ray.storage.parquet import JOURNAL_NAME, read_journal, readings_dir


def meter_history(
    data_dir: str | Path, meter_id: str, start_s: int, end_s: int, limit: int
) -> pa.Table:
    """Readings of ``meter_id`` with start_s <= timestamp < end_s (UTC epoch s), oldest first,
    at most ``limit`` rows."""
    directory = readings_dir(data_dir)
    start = pa.scalar(start_s, pa.timestamp("s", tz="UTC"))
    end = pa.scalar(end_s, pa.timestamp("s", tz="UTC"))
    condition = (
        (ds.field("meter_id") == meter_id)
        & (ds.field("timestamp") >= start)
        & (ds.field("timestamp") < end)
    )
    tables = []
    parts = sorted(directory.glob("part-*.parquet")) if directory.exists() else []
    if parts:
        dataset = ds.dataset([str(p) for p in parts], schema=READING_SCHEMA, format="parquet")
        tables.append(dataset.to_table(filter=condition))
    journal = directory / JOURNAL_NAME
    if journal.exists():
        batches = read_journal(journal)
        if batches:
            recent = pa.Table.from_batches(batches, schema=READING_SCHEMA)
            mask = pc.and_(
                pc.equal(recent["meter_id"], meter_id),
                pc.and_(
                    pc.greater_equal(recent["timestamp"], start), pc.less(recent["timestamp"], end)
                ),
            )
            tables.append(recent.filter(mask))
    if not tables:
        return READING_SCHEMA.empty_table()
    table = pa.concat_tables(tables).sort_by("timestamp")
    return table.slice(0, limit)


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
