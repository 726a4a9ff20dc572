"""Where readings go: the sinks the aggregator hands batches to.

Every sink implements ``ReadingSink``. ``write`` blocks until the batch is safe (acknowledged by the
database, or on local disk) and raises only when it cannot keep the data at all; the aggregator
calls sinks from a worker thread, so a slow sink applies backpressure instead of growing memory.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa


class ReadingSink(Protocol):
    name: str

    def write(self, batch: pa.RecordBatch) -> None:
        """Store a batch of readings (READING_SCHEMA); return once it is safe."""

    def flush(self) -> None:
        """Make everything written so far durable."""

    def close(self) -> None:
        """Flush and release resources; the sink is not used afterwards."""

    def status(self) -> dict[str, Any]:
        """Counters and health for the status line and the REST API (JSON-serialisable)."""
