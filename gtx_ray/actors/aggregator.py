"""AggregatorActor: takes each window's batches, keeps the latest reading per meter for the REST
API and hands the batches to the storage sinks, in window order, through a bounded queue.

``ingest`` returns once the window is stored (written and flushed by every sink); while the queue
is full it waits, and so does the clock that awaits it (backpressure). A window that arrives twice
(a retried call) is ignored, one that overlaps what is stored (a clock resuming from a checkpoint)
is trimmed to the new intervals, and one that arrives early waits for its predecessors.

Several aggregators can share a fleet, each storing the windows of its own meter groups (its
own Parquet parts and checkpoint): the clock sends each its groups' batches. The first one, named
``aggregator``, leads: its ``status``, ``latest``, ``snapshot``, ``drain`` and ``close`` cover
every aggregator (``merge_status``), so the REST API and the driver see one fleet.

The actor survives its own death: Ray restarts it (same arguments) and retries the calls in
flight. It finds where the run's storage stands from the run's checkpoint and, for Parquet, from
the run's own parts (the truth), so every (meter, interval) is stored exactly once. InfluxDB
writes are idempotent (same series and timestamp overwrite), so a window re-sent after a crash
stores nothing twice there either.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.util import metrics

from gtx_ray.actors.day_tally import DayTally
from gtx_ray.readings import READING_SCHEMA
from gtx_ray.storage import ReadingSink
from gtx_ray.storage.checkpoint import CHECKPOINT_EVERY_S, Checkpoint, CheckpointStore
from gtx_ray.storage.parquet import ParquetSink, journal_name, new_run_id

log = logging.getLogger(__name__)


def make_sink(
    data_dir: str,
    influx: Any,
    parquet_rows_per_file: int,
    run_id: str | None = None,
    index: int = 0,
) -> ReadingSink:
    """InfluxDB (spooling to ``DATA_DIR/spool`` while it cannot write) when configured, else
    Parquet parts under ``DATA_DIR/readings``. ``index``: which of several aggregators this
    sink serves (its own journal, and its own ``spool-<index>``)."""
    if influx is None:
        return ParquetSink(
            Path(data_dir),
            rows_per_file=parquet_rows_per_file,
            run_id=run_id,
            journal=journal_name(index),
        )
    from dataclasses import replace

    from gtx_ray.storage.influx import InfluxSink

    spool = "spool" if index == 0 else f"spool-{index}"
    return InfluxSink(replace(influx, spool_dir=Path(data_dir) / spool))


@dataclass
class _Window:
    """One window on its way to storage: its batches (one per meter group) and, for the
    checkpoint, the meter states at its end (unresolved object references) and the clock's
    settings."""

    end_s: int
    batches: list[pa.RecordBatch]
    rows: int
    states: list | None
    clock: dict | None
    stored: asyncio.Future


def write_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` whole or keeps what it held (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


SUMMED = (
    "rows_received",
    "rows_stored",
    "rows_spooled",
    "rows_delivered",
    "queue_depth",
    "duplicates_ignored",
    "rows_trimmed",
)


def merge_status(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """The storage status of several aggregators as one fleet's: counts summed, progress the
    slowest one's (every meter is stored up to ``stored_until_s``), today's totals of the
    earliest day any of them is on, every sink listed."""
    if len(statuses) == 1:
        return statuses[0]
    merged = dict(statuses[0])
    for key in SUMMED:
        merged[key] = sum(status[key] for status in statuses)
    for key in ("windows_stored", "stored_until_s"):
        merged[key] = min(status[key] for status in statuses)
    latest = [status["latest_interval_s"] for status in statuses]
    merged["latest_interval_s"] = None if None in latest else min(latest)
    firsts = [status["first_stored_at"] for status in statuses]  # the whole fleet's first
    merged["first_stored_at"] = None if None in firsts else max(firsts)
    merged["today"] = merge_days([status["today"] for status in statuses])
    merged["recovered"] = any(status["recovered"] for status in statuses)
    merged["last_error"] = next((s["last_error"] for s in statuses if s["last_error"]), None)
    merged["sinks"] = [sink for status in statuses for sink in status["sinks"]]
    merged["time"] = max(status["time"] for status in statuses)
    merged["aggregators"] = len(statuses)
    return merged


def merge_days(days: list[dict | None]) -> dict | None:
    """``DayTally.to_dict`` of several aggregators: the totals of the earliest date (one that is
    a window ahead has started the next day; it adds to that day once the others get there)."""
    known = [day for day in days if day is not None]
    if not known:
        return None
    date = min(day["date"] for day in known)
    same = [day for day in known if day["date"] == date]
    total = {key: round(sum(day[key] for day in same), 3) for key in same[0] if key != "date"}
    return {"date": date, **total}


async def _resolved(states: list) -> list:
    """The meter groups' states, each a value or an object reference (fetched here)."""
    refs = [state for state in states if isinstance(state, ray.ObjectRef)]
    fetched = iter(await asyncio.gather(*refs))
    return [next(fetched) if isinstance(state, ray.ObjectRef) else state for state in states]


def trim_before(batch: pa.RecordBatch, start_s: int) -> pa.RecordBatch:
    """The rows of ``batch`` at or after ``start_s`` (UTC epoch s)."""
    cutoff = pa.scalar(start_s, pa.timestamp("s", tz="UTC"))
    return batch.filter(pc.greater_equal(batch.column("timestamp"), cutoff))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class AggregatorActor:
    """See the module docstring. Sinks are built inside the actor from plain settings."""

    def __init__(
        self,
        data_dir: str,
        start_s: int,
        interval_s: int,
        queue_windows: int = 4,
        parquet_rows_per_file: int = 1_000_000,
        influx: Any = None,
        run_id: str | None = None,
        utc_offset_s: int = 0,
        peers: tuple[str, ...] = (),
        namespace: str | None = None,
        index: int = 0,
    ):
        """``index``: this aggregator's place among several (0 leads, with ``peers`` the names
        of the others)."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        run_id = run_id or new_run_id()
        sink = make_sink(data_dir, influx, parquet_rows_per_file, run_id, index)
        self._sinks: list[ReadingSink] = [sink]
        self._interval_s = interval_s
        self._checkpoints = CheckpointStore(data_dir, run_id)
        self._checkpoint = self._recover(sink, start_s)
        self._expected_start = self._checkpoint.stored_until_s
        self._last_checkpoint_at = time.monotonic()
        self._window_ready = asyncio.Condition()
        self._queue: asyncio.Queue[_Window | None] = asyncio.Queue(maxsize=queue_windows)
        self._latest: dict[int, pa.RecordBatch] = {}  # group → its meters' last interval
        self._latest_start_s: int | None = None
        self._today = DayTally(utc_offset_s, interval_s)  # the campus's local day, for the API
        self.rows_received = 0
        self.rows_stored = self._checkpoint.rows_stored
        self.windows_stored = 0
        self.stored_until_s = self._checkpoint.stored_until_s
        self.first_stored_at: float | None = None  # wall time of the first window stored
        self.duplicates_ignored = 0
        self.rows_trimmed = 0
        self.recovered = self.stored_until_s > start_s
        self.last_error: str | None = None
        self._closed = False
        self._peer_names = tuple(peers)  # the other aggregators, when this one leads
        self._namespace = namespace
        self._peers: list | None = None
        self._failed: BaseException | None = None
        self._writer: asyncio.Task | None = None
        self._batches_metric = metrics.Counter(
            "gtx_batches_stored", description="Reading batches handed to storage."
        )
        self._rows_metric = metrics.Counter(
            "gtx_rows_stored", description="Readings stored by every sink."
        )
        self._queue_metric = metrics.Gauge(
            "gtx_storage_queue_depth", description="Windows waiting for storage."
        )

    def _recover(self, sink: ReadingSink, start_s: int) -> Checkpoint:
        """Where this run's storage stands: the checkpoint, corrected by what the Parquet parts
        hold (a window may have been stored after the last checkpoint)."""
        checkpoint = self._checkpoints.load() or Checkpoint(self._checkpoints.run_id, start_s, 0)
        if isinstance(sink, ParquetSink):
            rows, newest_s = sink.stored_extent()
            if newest_s is not None:
                until = max(checkpoint.stored_until_s, newest_s + self._interval_s)
                checkpoint = replace(checkpoint, stored_until_s=until, rows_stored=rows)
        if checkpoint.stored_until_s > start_s:
            log.warning(
                "aggregator restarted: run %s is stored up to %d (%d readings); resuming there",
                checkpoint.run_id,
                checkpoint.stored_until_s,
                checkpoint.rows_stored,
            )
        return checkpoint

    def _ensure_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def ingest(
        self,
        window_start_s: int,
        n_intervals: int,
        *batches: pa.RecordBatch,
        states: list | None = None,
        clock: dict | None = None,
        not_before_s: float | None = None,
    ) -> int:
        """Store one window (one batch per meter group, in group order); returns the rows newly
        stored. ``states``: a one-element list holding the groups' states at the window's end
        (references, nested so Ray does not fetch them here; or values: a group the clock
        stood in for), kept for the checkpoint;
        ``clock``: the clock's settings to checkpoint with them; ``not_before_s``: a window the
        clock stepped ahead of its time (UTC epoch s when it has ended), held until then."""
        if not_before_s is not None:  # one wake-up here then, not a call from the clock
            await asyncio.sleep(max(0.0, not_before_s - time.time()))
        if self._closed:
            raise RuntimeError("the aggregator is closed")
        if self._failed is not None:
            raise RuntimeError(self.last_error)
        self._ensure_writer()
        end_s = window_start_s + n_intervals * self._interval_s
        async with self._window_ready:
            await self._window_ready.wait_for(lambda: window_start_s <= self._expected_start)
            if end_s <= self._expected_start:
                self.duplicates_ignored += 1
                log.warning("window %d..%d is stored already; ignored", window_start_s, end_s)
                return 0
            parts = list(batches)
            if window_start_s < self._expected_start:  # a clock resumed from a checkpoint
                parts = [trim_before(b, self._expected_start) for b in parts]
                self.rows_trimmed += sum(b.num_rows for b in batches) - sum(
                    b.num_rows for b in parts
                )
            rows = sum(b.num_rows for b in parts)
            intervals = (end_s - max(window_start_s, self._expected_start)) // self._interval_s
            for group, batch in enumerate(parts):
                per_interval = batch.num_rows // intervals
                self._latest[group] = batch.slice(batch.num_rows - per_interval)
                self._today.add(batch)
            self._latest_start_s = end_s - self._interval_s
            self.rows_received += rows
            stored = asyncio.get_running_loop().create_future()
            window = _Window(end_s, parts, rows, states[0] if states else None, clock, stored)
            await self._put(window)
            self._queue_metric.set(self._queue.qsize())
            self._expected_start = end_s
            self._window_ready.notify_all()
        await stored  # raises when storage failed
        return rows

    async def _put(self, item: _Window) -> None:
        """Queue for storage, waiting while the queue is full; fail if storage has failed."""
        while True:
            if self._failed is not None:
                raise RuntimeError(self.last_error)
            try:
                await asyncio.wait_for(self._queue.put(item), timeout=1.0)
                return
            except TimeoutError:
                continue

    async def _write_loop(self) -> None:
        while True:
            window = await self._queue.get()
            try:
                if window is None:
                    return
                if self._failed is not None:  # storage is broken: the run is stopping
                    window.stored.set_exception(RuntimeError(self.last_error))
                    continue
                try:
                    await asyncio.to_thread(self._write_all, window.batches)
                except Exception as exc:  # a sink that cannot keep data at all: stop loudly
                    self._failed = exc
                    self.last_error = f"storage failed: {type(exc).__name__}: {exc}"
                    log.exception("storage failed")
                    window.stored.set_exception(RuntimeError(self.last_error))
                    continue
                self.rows_stored += window.rows
                self.windows_stored += 1
                self.stored_until_s = window.end_s
                if self.first_stored_at is None:
                    self.first_stored_at = time.time()
                self._checkpoint = self._checkpoint.advanced(window.end_s, window.rows)
                await self._maybe_checkpoint(window)
                self._batches_metric.inc(len(window.batches))
                self._rows_metric.inc(window.rows)
                self._queue_metric.set(self._queue.qsize())
                window.stored.set_result(window.rows)
            finally:
                self._queue.task_done()

    async def _maybe_checkpoint(self, window: _Window, force: bool = False) -> None:
        """Record the meters' states at this stored window's end, every CHECKPOINT_EVERY_S."""
        due = time.monotonic() - self._last_checkpoint_at >= CHECKPOINT_EVERY_S
        if window.states is None or not (due or force):
            return
        try:
            states = await _resolved(window.states)
        except ray.exceptions.RayError as exc:  # the clock that owned them died: skip this one
            log.warning("no checkpoint at %d: meter states unavailable (%s)", window.end_s, exc)
            return
        self._checkpoint = replace(
            self._checkpoint,
            state_s=window.end_s,
            states=list(states),
            clock=window.clock or self._checkpoint.clock,
        )
        await asyncio.to_thread(self._checkpoints.save, self._checkpoint)
        self._last_checkpoint_at = time.monotonic()

    def _write_all(self, batches: list[pa.RecordBatch]) -> None:
        for sink in self._sinks:
            last = len(batches) - 1
            for i, batch in enumerate(batches):
                if isinstance(sink, ParquetSink):  # a window is recovered whole or not at all
                    sink.write(batch, last_of_window=i == last)
                else:
                    sink.write(batch)
            sink.flush()

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (hex id)."""
        return ray.get_runtime_context().get_node_id()

    async def record_learned(self, directory: str, name: str, text: str) -> None:
        """Write ``text`` (what a meter group learned from its 2030.5 server, a scenario file)
        to ``directory``/``name`` on this (the home) node, atomically: meter actors on other
        nodes hand it here instead of writing a disk the home node may not share."""
        await asyncio.to_thread(write_atomically, Path(directory) / name, text)

    async def resume_point(self) -> Checkpoint:
        """Where a (re)started clock begins: the last checkpoint (states None: from the start)."""
        return self._checkpoint

    async def remember_clock(self, clock: dict) -> None:
        """Checkpoint the clock's settings now (a pause or a new speed survives a clock restart)."""
        self._checkpoint = replace(self._checkpoint, clock=clock)
        await asyncio.to_thread(self._checkpoints.save, self._checkpoint)

    def _peer_handles(self) -> list:
        if self._peers is None:
            self._peers = [
                ray.get_actor(name, namespace=self._namespace) for name in self._peer_names
            ]
        return self._peers

    async def _from_peers(self, method: str, *args: Any) -> list:
        """``method`` of every other aggregator (none unless this one leads)."""
        calls = [getattr(peer, method).remote(*args) for peer in self._peer_handles()]
        return list(await asyncio.gather(*calls))

    async def latest(self, own_only: bool = False) -> pa.Table:
        """The newest reading of every meter (one row per meter); ``own_only``: of this
        aggregator's meter groups only."""
        own = (
            pa.Table.from_batches(
                [self._latest[g] for g in sorted(self._latest)], schema=READING_SCHEMA
            )
            if self._latest
            else READING_SCHEMA.empty_table()
        )
        if own_only or not self._peer_names:
            return own
        return pa.concat_tables([own, *await self._from_peers("latest", True)])

    async def snapshot(
        self, known_interval_s: int | None = None
    ) -> tuple[pa.Table | None, dict[str, Any]]:
        """The latest reading of every meter and the storage status, in one call (REST API).
        The table is None when the caller already holds the readings of ``known_interval_s``
        (the ``latest_interval_s`` of an earlier status), so polling costs no table transfer."""
        status = await self.status()
        unchanged = known_interval_s is not None and known_interval_s == status["latest_interval_s"]
        return (None if unchanged else await self.latest()), status

    async def status(self, own_only: bool = False) -> dict[str, Any]:
        """Counts in readings: ``rows_stored`` are kept safely (in the database, Parquet or the
        spool); of those, ``rows_spooled`` wait in the spool for the database and
        ``rows_delivered`` are in the database or Parquet. Every aggregator's, merged, unless
        ``own_only``."""
        own = self._own_status()
        if own_only or not self._peer_names:
            return own
        return merge_status([own, *await self._from_peers("status", True)])

    def _own_status(self) -> dict[str, Any]:
        sinks = [sink.status() for sink in self._sinks]
        spooled = sum(sink.get("rows_pending", 0) for sink in sinks)
        return {
            "rows_received": self.rows_received,
            "rows_stored": self.rows_stored,
            "rows_spooled": spooled,
            # low while a spool an earlier run left is replayed: never claims too many
            "rows_delivered": max(0, self.rows_stored - spooled),
            "windows_stored": self.windows_stored,
            "stored_until_s": self.stored_until_s,
            "first_stored_at": self.first_stored_at,  # UTC epoch s; None: nothing stored yet
            "latest_interval_s": self._latest_start_s,
            "today": self._today.to_dict(),
            "queue_depth": self._queue.qsize(),
            "duplicates_ignored": self.duplicates_ignored,
            "rows_trimmed": self.rows_trimmed,
            "recovered": self.recovered,
            "last_error": self.last_error,
            "sinks": sinks,
            "time": time.time(),
        }

    async def drain(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for spooled readings to reach the database; return how many
        still wait (0 for sinks without a spool)."""
        await self._queue.join()  # every queued window handed to the sinks first
        waiting = 0
        for sink in self._sinks:
            if hasattr(sink, "drain"):
                waiting += await asyncio.to_thread(sink.drain, timeout_s)
        return waiting + sum(await self._from_peers("drain", timeout_s))

    async def close(self) -> dict[str, Any]:
        """Store everything queued, close the sinks and report the final counts (every
        aggregator's, when this one leads)."""
        await self._from_peers("close")
        if not self._closed:
            self._closed = True
            if self._writer is not None:
                await self._queue.put(None)
                await self._writer
            for sink in self._sinks:
                await asyncio.to_thread(sink.close)
            if self._failed is None:  # everything is stored: nothing left to resume
                self._checkpoints.remove()
        return await self.status()
