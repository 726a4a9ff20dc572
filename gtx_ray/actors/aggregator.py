"""AggregatorActor: takes each window's batches, keeps the latest reading per meter for the REST
API and hands the batches to the storage sinks, in window order, through a bounded queue.

``ingest`` returns once the window is queued for storage; when the queue is full it waits, and so
does the clock that awaits it (backpressure). A window that arrives twice (a retried call) is
ignored; a window that arrives early waits for its predecessors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from ray.util import metrics

from gtx_ray.readings import READING_SCHEMA
from gtx_ray.storage import ReadingSink
from gtx_ray.storage.parquet import ParquetSink

log = logging.getLogger(__name__)


def make_sink(data_dir: str, influx: Any, parquet_rows_per_file: int) -> ReadingSink:
    """InfluxDB (spooling to ``DATA_DIR/spool`` while it cannot write) when configured, else
    Parquet parts under ``DATA_DIR/readings``."""
    if influx is None:
        return ParquetSink(Path(data_dir), rows_per_file=parquet_rows_per_file)
    from dataclasses import replace

    from gtx_ray.storage.influx import InfluxSink

    return InfluxSink(replace(influx, spool_dir=Path(data_dir) / "spool"))


@ray.remote(num_cpus=0)
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
    ):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        self._sinks: list[ReadingSink] = [make_sink(data_dir, influx, parquet_rows_per_file)]
        self._interval_s = interval_s
        self._expected_start = start_s
        self._window_ready = asyncio.Condition()
        self._queue: asyncio.Queue[tuple[int, list[pa.RecordBatch]] | None] = asyncio.Queue(
            maxsize=queue_windows
        )
        self._latest: dict[int, pa.RecordBatch] = {}  # group → its meters' last interval
        self._latest_start_s: int | None = None
        self.rows_received = 0
        self.rows_stored = 0
        self.windows_stored = 0
        self.stored_until_s = start_s
        self.duplicates_ignored = 0
        self.last_error: str | None = None
        self._closed = False
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

    def _ensure_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def ingest(self, window_start_s: int, n_intervals: int, *batches: pa.RecordBatch) -> int:
        """Queue one window (one batch per meter group, in group order) for storage."""
        if self._closed:
            raise RuntimeError("the aggregator is closed")
        if self._failed is not None:
            raise RuntimeError(self.last_error)
        self._ensure_writer()
        async with self._window_ready:
            await self._window_ready.wait_for(lambda: window_start_s <= self._expected_start)
            if window_start_s < self._expected_start:
                self.duplicates_ignored += 1
                log.warning("window at %d arrived twice; ignored", window_start_s)
                return 0
            rows = sum(b.num_rows for b in batches)
            for group, batch in enumerate(batches):
                per_interval = batch.num_rows // n_intervals
                self._latest[group] = batch.slice(batch.num_rows - per_interval)
            self._latest_start_s = window_start_s + (n_intervals - 1) * self._interval_s
            self.rows_received += rows
            await self._put((window_start_s + n_intervals * self._interval_s, list(batches)))
            self._queue_metric.set(self._queue.qsize())
            self._expected_start = window_start_s + n_intervals * self._interval_s
            self._window_ready.notify_all()
        return rows

    async def _put(self, item: tuple[int, list[pa.RecordBatch]]) -> None:
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
            item = await self._queue.get()
            try:
                if item is None:
                    return
                end_s, batches = item
                if self._failed is not None:
                    continue  # storage is broken: the run is stopping, keep the queue moving
                try:
                    await asyncio.to_thread(self._write_all, batches)
                except Exception as exc:  # a sink that cannot keep data at all: stop loudly
                    self._failed = exc
                    self.last_error = f"storage failed: {type(exc).__name__}: {exc}"
                    log.exception("storage failed")
                    continue
                rows = sum(b.num_rows for b in batches)
                self.rows_stored += rows
                self.windows_stored += 1
                self.stored_until_s = end_s
                self._batches_metric.inc(len(batches))
                self._rows_metric.inc(rows)
                self._queue_metric.set(self._queue.qsize())
            finally:
                self._queue.task_done()

    def _write_all(self, batches: list[pa.RecordBatch]) -> None:
        for sink in self._sinks:
            for batch in batches:
                sink.write(batch)
            sink.flush()

    async def latest(self) -> pa.Table:
        """The newest reading of every meter (one row per meter)."""
        if not self._latest:
            return READING_SCHEMA.empty_table()
        return pa.Table.from_batches(
            [self._latest[g] for g in sorted(self._latest)], schema=READING_SCHEMA
        )

    async def snapshot(
        self, known_interval_s: int | None = None
    ) -> tuple[pa.Table | None, dict[str, Any]]:
        """The latest reading of every meter and the storage status, in one call (REST API).
        The table is None when the caller already holds the readings of ``known_interval_s``
        (the ``latest_interval_s`` of an earlier status), so polling costs no table transfer."""
        unchanged = known_interval_s is not None and known_interval_s == self._latest_start_s
        return (None if unchanged else await self.latest()), await self.status()

    async def status(self) -> dict[str, Any]:
        return {
            "rows_received": self.rows_received,
            "rows_stored": self.rows_stored,
            "windows_stored": self.windows_stored,
            "stored_until_s": self.stored_until_s,
            "latest_interval_s": self._latest_start_s,
            "queue_depth": self._queue.qsize(),
            "duplicates_ignored": self.duplicates_ignored,
            "last_error": self.last_error,
            "sinks": [sink.status() for sink in self._sinks],
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
        return waiting

    async def close(self) -> dict[str, Any]:
        """Store everything queued, close the sinks and report the final counts."""
        if not self._closed:
            self._closed = True
            if self._writer is not None:
                await self._queue.put(None)
                await self._writer
            for sink in self._sinks:
                await asyncio.to_thread(sink.close)
        return await self.status()
