"""Readings as Parquet files under a data directory, crash-safe.

Batches are appended to an Arrow IPC stream journal (``readings/_journal.arrows``) and rolled into
an immutable Parquet part (``readings/part-<run>-<seq>.parquet``, written to a temp name and
renamed) every ``rows_per_file`` rows, every ``max_age_s`` wall seconds, and on close. A journal
left by a crash is rolled into a part on the next start, up to its last complete batch, so an
acknowledged batch is never lost and never written twice: the journal names the part it becomes
(schema metadata ``part``), so a crash between writing the part and removing the journal is
recognised on recovery instead of storing the rows twice. A sink created again with the same
``run_id`` (a restarted aggregator) continues that run's part numbering and can say how far the
run's stored readings reach (``stored_extent``).
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

JOURNAL_NAME = "_journal.arrows"  # the sink's own; the k-th of several: _journal-k.arrows


def journal_name(index: int = 0) -> str:
    """The journal of the ``index``-th sink writing one readings directory (one per aggregator)."""
    return JOURNAL_NAME if index == 0 else f"_journal-{index}.arrows"


def journals_in(directory: Path) -> list[Path]:
    """Every sink's journal in a readings directory."""
    return sorted(directory.glob("_journal*.arrows")) if directory.is_dir() else []


_PART_KEY = b"part"  # journal schema metadata: the part file the journal is rolled into
_WINDOW_END_KEY = b"window_end"  # batch metadata: the last batch of a window
_WINDOW_END = {_WINDOW_END_KEY: b"1"}


def new_run_id() -> str:
    """A run's identity in part names: UTC start time plus a random suffix."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def _journal_part_name(path: Path) -> str | None:
    """The part a journal is destined to become (None for journals of older versions)."""
    try:
        with pa.OSFile(str(path), "rb") as source, pa.ipc.open_stream(source) as reader:
            metadata = reader.schema.metadata or {}
    except (pa.ArrowInvalid, OSError):
        return None
    name = metadata.get(_PART_KEY)
    return name.decode() if name else None


def readings_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "readings"


def read_journal(path: Path) -> list[pa.RecordBatch]:
    """Every complete batch of a journal; a torn tail (crash mid-write) is ignored. Journals that
    name their part also mark the last batch of each window: batches after the last mark (a
    window cut short by a crash) are ignored too, so a window is stored whole or not at all."""
    batches: list[pa.RecordBatch] = []
    committed = 0
    marked = False
    try:
        with pa.OSFile(str(path), "rb") as source, pa.ipc.open_stream(source) as reader:
            marked = _PART_KEY in (reader.schema.metadata or {})
            while True:
                try:
                    batch, metadata = reader.read_next_batch_with_custom_metadata()
                except StopIteration:
                    break
                batches.append(batch)
                if metadata is not None and _WINDOW_END_KEY in metadata:
                    committed = len(batches)
    except (pa.ArrowInvalid, OSError) as exc:
        log.warning(
            "journal %s ends in an incomplete batch (%s); keeping %d batches",
            path,
            exc,
            committed if marked else len(batches),
        )
    if marked and committed < len(batches):
        log.warning(
            "journal %s: ignoring %d batches of an unfinished window",
            path,
            len(batches) - committed,
        )
        return batches[:committed]
    return batches


def read_readings(data_dir: str | Path) -> pa.Table:
    """All readings stored under ``data_dir`` (Parquet parts plus any journal), in file order."""
    directory = readings_dir(data_dir)
    parts = sorted(directory.glob("part-*.parquet"))
    tables = [pq.read_table(p, schema=READING_SCHEMA) for p in parts]
    for journal in journals_in(directory):
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
        self,
        data_dir: str | Path,
        rows_per_file: int = 1_000_000,
        max_age_s: float = 3600.0,
        run_id: str | None = None,
        journal: str = JOURNAL_NAME,
    ):
        self.directory = readings_dir(data_dir)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rows_per_file = rows_per_file
        self.max_age_s = max_age_s
        self._run = run_id or new_run_id()
        self._journal_path = self.directory / journal
        self._journal: pa.ipc.RecordBatchStreamWriter | None = None
        self._journal_file: Any = None
        self._journal_part = ""  # the part the open journal becomes
        self._journal_rows = 0
        self._journal_opened = 0.0
        self.rows_written = 0
        self.files_written = 0
        self._seq = self._last_seq()
        self._recover()
        self._seq = self._last_seq()

    def _run_parts(self) -> list[Path]:
        return sorted(self.directory.glob(f"part-{self._run}-*.parquet"))

    def _last_seq(self) -> int:
        seqs = [int(p.stem.rsplit("-", 1)[1]) for p in self._run_parts()]
        return max(seqs, default=0)

    def _next_part_name(self) -> str:
        return f"part-{self._run}-{self._seq + 1:06d}.parquet"

    def _recover(self) -> None:
        if not self._journal_path.exists():
            return
        destined = _journal_part_name(self._journal_path)
        if destined is not None and (self.directory / destined).exists():
            self._journal_path.unlink()  # rolled already; the crash came before the unlink
            log.info("removed a journal already stored as %s", destined)
            return
        batches = read_journal(self._journal_path)
        rows = sum(b.num_rows for b in batches)
        if batches:
            name = destined or self._next_part_name()  # journals of older versions name none
            self._write_part(pa.Table.from_batches(batches, schema=READING_SCHEMA), name)
        self._journal_path.unlink()
        log.info("recovered %d readings from an unfinished journal in %s", rows, self.directory)

    def stored_extent(self) -> tuple[int, int | None]:
        """This run's stored readings: (rows, newest reading's timestamp in UTC epoch s or None),
        from the Parquet footers (no data is read)."""
        rows, newest = 0, None
        for part in self._run_parts():
            metadata = pq.ParquetFile(part).metadata
            rows += metadata.num_rows
            column = metadata.schema.names.index("timestamp")
            for g in range(metadata.num_row_groups):
                stats = metadata.row_group(g).column(column).statistics
                if stats is not None and stats.has_min_max:
                    top = int(stats.max.timestamp())
                    newest = top if newest is None else max(newest, top)
        return rows, newest

    def _write_part(self, table: pa.Table, name: str) -> Path:
        final = self.directory / name
        temp = final.with_suffix(".parquet.tmp")
        pq.write_table(table, temp, compression="zstd")
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        self.files_written += 1
        return final

    def write(self, batch: pa.RecordBatch, last_of_window: bool = True) -> None:
        """Append ``batch`` to the journal. Batches of one window (``last_of_window`` False on all
        but its last) are recovered all or none after a crash, and never split over parts."""
        if batch.num_rows == 0:
            if last_of_window and self._journal is not None:
                self._journal.write_batch(batch, custom_metadata=_WINDOW_END)
            return
        if self._journal is None:
            self._journal_file = pa.OSFile(str(self._journal_path), "wb")
            self._journal_part = self._next_part_name()
            destined = READING_SCHEMA.with_metadata({_PART_KEY: self._journal_part})
            self._journal = pa.ipc.new_stream(self._journal_file, destined)
            self._journal_opened = time.monotonic()
        self._journal.write_batch(batch, custom_metadata=_WINDOW_END if last_of_window else None)
        self._journal_rows += batch.num_rows
        self.rows_written += batch.num_rows
        if last_of_window and (
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
                self._write_part(
                    pa.Table.from_batches(batches, schema=READING_SCHEMA), self._journal_part
                )
                self._seq += 1
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
