"""How the TLS front reaches the registry: in-process, or through a batching remote call.

``LocalBackend`` runs operations directly on a Registry in the front's own process (tests,
benchmarks, a single-process server). ``BatchingBackend`` sends operations to a remote registry
(the Ray actor) with at most one call in flight: operations that arrive while a call is under
way wait and go together in the next call (up to ``batch_max``), in arrival order. One client
pays one round trip; many concurrent clients share round trips. Each request is answered only
after the registry has applied it, so a restart of the front loses nothing acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from gtx_ray.ieee2030_5.server.dispatch import Op, execute
from gtx_ray.ieee2030_5.server.errors import Unavailable
from gtx_ray.ieee2030_5.server.registry import Registry

log = logging.getLogger(__name__)


class Backend(Protocol):
    async def execute(self, op: Op) -> Any:
        """The outcome of one operation: a value, or a ResourceError instance."""


class LocalBackend:
    """Operations run directly on ``registry`` (same process, same event loop)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def execute(self, op: Op) -> Any:
        return execute(self.registry, [op])[0]


class BatchingBackend:
    """Operations go to ``call`` (a remote ``execute``) in batches, one call in flight.

    call: an async function taking a list of Ops and returning one outcome each.
    batch_max: most operations per call. max_waiting: bound on queued operations; past it a
    request is answered 503 (retry later) instead of queueing without limit.
    """

    def __init__(
        self,
        call: Callable[[list[Op]], Awaitable[Sequence[Any]]],
        batch_max: int = 256,
        max_waiting: int = 10_000,
    ) -> None:
        self._call = call
        self._batch_max = batch_max
        self._max_waiting = max_waiting
        self._queue: deque[tuple[Op, asyncio.Future]] = deque()
        self._pump: asyncio.Task | None = None
        self.calls = 0
        self.ops = 0

    async def execute(self, op: Op) -> Any:
        if len(self._queue) >= self._max_waiting:
            return Unavailable("the registry is busy; retry later")
        future = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._queue:
            n = min(len(self._queue), self._batch_max)
            batch = [self._queue.popleft() for _ in range(n)]
            try:
                outcomes = await self._call([op for op, _ in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"registry answered {len(outcomes)} of {len(batch)} ops")
            except Exception as exc:
                log.warning("registry call failed for %d operations: %s", len(batch), exc)
                outcomes = [Unavailable("the registry is not reachable; retry later")] * n
            self.calls += 1
            self.ops += n
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
