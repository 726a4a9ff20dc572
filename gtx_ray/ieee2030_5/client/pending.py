"""A meter's readings waiting to be posted: a bounded queue that drops the oldest, never silently.

Past ``limit`` intervals the oldest are dropped and counted (``dropped``), and the dropped runs
are kept as gaps (first start, last start, count; the most recent ``MAX_GAPS``) for status.
Readings leave the queue for good only when the server accepted them (``settle``) or rejected
them for good (``discard``); a failed POST puts them back at the front.

Thread-safe through ``lock`` (shared by all meters of an actor): the actor's thread enqueues,
the event loop thread takes and settles.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gtx_ray.ieee2030_5.client.quantities import PendingReading

MAX_GAPS = 32
"""Most recent gaps (runs of dropped readings) kept per meter for status."""


@dataclass
class Gap:
    """A run of dropped intervals: first and last start (epoch s) and how many."""

    first_start_s: int
    last_start_s: int
    readings: int


class PendingQueue:
    """Intervals waiting (and in flight) for one meter; see the module docstring.

    limit: most intervals kept. interval_s: the simulation interval (s). gap_merge_s: drops
    closer than this (s; default ``interval_s``) to the previous gap extend it. Counters:
    ``posted`` (accepted by the server), ``dropped`` (queue full), ``rejected`` (not
    representable, or refused by the server for good).
    """

    def __init__(self, limit: int, interval_s: int, gap_merge_s: int | None, lock: Any) -> None:
        self.limit = limit
        self.interval_s = interval_s
        self.gap_merge_s = gap_merge_s
        self.lock = lock
        self._items: deque[PendingReading] = deque()
        self._in_flight = 0
        self._gaps: deque[Gap] = deque(maxlen=MAX_GAPS)
        self.posted = 0
        self.dropped = 0
        self.rejected = 0

    def extend(self, readings: Sequence[PendingReading]) -> None:
        """Queue intervals (time order); past ``limit`` the oldest are dropped, counted."""
        if not readings:
            return
        with self.lock:
            self._items.extend(readings)
            self._trim()

    def count_rejected(self, n: int) -> None:
        """Count ``n`` rows that were never queued (values that cannot be posted)."""
        with self.lock:
            self.rejected += n

    def _trim(self) -> None:  # lock held
        excess = len(self._items) - self.limit
        if excess <= 0:
            return
        dropped = [self._items.popleft() for _ in range(excess)]
        self.dropped += excess
        first, last = min(r[0] for r in dropped), max(r[0] for r in dropped)
        merge = self.gap_merge_s if self.gap_merge_s is not None else self.interval_s
        if self._gaps and 0 <= first - self._gaps[-1].last_start_s <= merge:
            gap = self._gaps[-1]
            gap.last_start_s = max(gap.last_start_s, last)
            gap.readings += excess
        else:
            self._gaps.append(Gap(first, last, excess))

    def take(self, n: int) -> list[PendingReading]:
        """Up to ``n`` of the oldest intervals, now in flight until ``settle``/``discard``."""
        with self.lock:
            items = [self._items.popleft() for _ in range(min(n, len(self._items)))]
            self._in_flight = len(items)
            return items

    def settle(self, items: list[PendingReading], accepted: bool) -> None:
        """After a POST: count accepted readings, or put them back at the front of the queue."""
        with self.lock:
            self._in_flight = 0
            if accepted:
                self.posted += len(items)
                return
            self._items.extendleft(reversed(items))
            self._trim()

    def discard(self, items: list[PendingReading]) -> None:
        """The server refused these readings for good: count them as rejected."""
        self.settle([], accepted=True)
        with self.lock:
            self.rejected += len(items)

    @property
    def waiting(self) -> int:
        """Intervals waiting, not counting those in flight."""
        return len(self._items)

    @property
    def queued(self) -> int:
        """Intervals waiting or in flight."""
        return len(self._items) + self._in_flight

    def snapshot(self) -> tuple[int, list[list[int]]]:
        """(queued, gaps as [first start, last start, count]) read together under the lock."""
        with self.lock:
            queued = len(self._items) + self._in_flight
            gaps = [[g.first_start_s, g.last_start_s, g.readings] for g in self._gaps]
        return queued, gaps
