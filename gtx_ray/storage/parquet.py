"""Readings as Parquet files under a data directory, crash-safe.

Batches are appended to an Arrow IPC stream journal (``readings/_journal.arrows``) and rolled into
an immutable Parquet part (``readings/part-<run>-<seq>.parquet``, written to a temp name and
renamed) every ``rows_per_file`` rows, every ``max_age_s`` wall seconds, and on close. A journal
left by a crash is rolled into a part on the next start, up to its last complete batch, so an
acknowledged batch is never lost and never written twice.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gtx_ray.readings import READING_SCHEMA

log = logging.getLogger(__name__)

JOURNAL_NAME = "_journal.arrows"


def readings_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "readings"


def read_journal(path: Path) -> list[pa.RecordBatch]:
    """Every complete batch of a journal; a torn tail (crash mid-write) is ignored."""
    batches: list[pa.RecordBatch] = []
    try:
        with pa.OSFile(str(path), "rb") as source, pa.ipc.open_stream(source) as reader:
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
    except (pa.ArrowInvalid, OSError) as exc:
        log.warning(
            "journal %s ends in an incomplete batch (%s); keeping %d batches",
            path,
            exc,
            len(batches),
        )
    return batches


def read_readings(data_dir: str | Path) -> pa.Table:
    """All readings stored under ``data_dir`` (Parquet parts plus any journal), in file order."""
    directory = readings_dir(data_dir)
    parts = sorted(directory.glob("part-*.parquet"))
    tables = [pq.read_table(p, schema=READING_SCHEMA) for p in parts]
    journal = directory / JOURNAL_NAME
    if journal.exists():
        batches = read_journal(journal)
        if batches:
            tables.append(pa.Table.from_batches(batches, schema=READING_SCHEMA))
    if not tables:
        return READING_SCHEMA.empty_table()
    return pa.concat_tables(tables)


class ParquetSink:
    """Writes readings to Parquet parts under ``data_dir``; see the module docstring."""

    name = "parquet"

    def __init__(
        self, data_dir: str | Path, rows_per_file: int = 1_000_000, max_age_s: float = 3600.0
    ):
        self.directory = readings_dir(data_dir)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rows_per_file = rows_per_file
        self.max_age_s = max_age_s
        self._run = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        self._seq = 0
        self._journal_path = self.directory / JOURNAL_NAME
        self._journal: pa.ipc.RecordBatchStreamWriter | None = None
        self._journal_file: Any = None
        self._journal_rows = 0
        self._journal_opened = 0.0
        self.rows_written = 0
        self.files_written = 0
        self._recover()

    def _recover(self) -> None:
        if not self._journal_path.exists():
            return
        batches = read_journal(self._journal_path)
        rows = sum(b.num_rows for b in batches)
        if batches:
            self._write_part(pa.Table.from_batches(batches, schema=READING_SCHEMA))
        self._journal_path.unlink()
        log.info("recovered %d readings from an unfinished journal in %s", rows, self.directory)

    def _write_part(self, table: pa.Table) -> Path:
        self._seq += 1
        final = self.directory / f"part-{self._run}-{self._seq:06d}.parquet"
        temp = final.with_suffix(".parquet.tmp")
        pq.write_table(table, temp, compression="zstd")
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        self.files_written += 1
        return final

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._journal is None:
            self._journal_file = pa.OSFile(str(self._journal_path), "wb")
            self._journal = pa.ipc.new_stream(self._journal_file, READING_SCHEMA)
            self._journal_opened = time.monotonic()
        self._journal.write_batch(batch)
        self._journal_rows += batch.num_rows
        self.rows_written += batch.num_rows
        if (
            self._journal_rows >= self.rows_per_file
            or time.monotonic() - self._journal_opened >= self.max_age_s
        ):
            self._roll()

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal_file.close()
            self._journal = None
            self._journal_file = None

    def _roll(self) -> None:
        """Turn the journal into a Parquet part and start a new journal."""
        self._close_journal()
        if self._journal_path.exists():
            batches = read_journal(self._journal_path)
            if batches:
                self._write_part(pa.Table.from_batches(batches, schema=READING_SCHEMA))
            self._journal_path.unlink()
        self._journal_rows = 0

    def flush(self) -> None:
        """Make the journal durable (fsync); the Parquet roll happens on size, age or close."""
        if self._journal_file is not None:
            self._journal_file.flush()
            os.fsync(self._journal_file.fileno())

    def close(self) -> None:
        self._roll()

    def status(self) -> dict[str, Any]:
        return {
            "sink": self.name,
            "directory": str(self.directory),
            "rows_written": self.rows_written,
            "files_written": self.files_written,
            "healthy": True,
        }
