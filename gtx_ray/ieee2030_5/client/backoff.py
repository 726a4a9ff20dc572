"""Pacing failures: how long a meter waits after consecutive failures, and how loudly it says so.

Thousands of meters lose a server at once; ``Backoff`` spreads their retries (exponential, equal
jitter, capped) and ``RateLimitedLog`` keeps their warnings from flooding the log.
"""

from __future__ import annotations

import logging
import random
import threading
import time


class Backoff:
    """Consecutive failures and the wait after the latest one (s): after the n-th failure
    ``d/2 + uniform(0, d/2)`` with ``d = min(cap_s, base_s × 2^(n-1))``."""

    def __init__(self, base_s: float, cap_s: float) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0

    def failed(self) -> float:
        """Count one more failure; the wait before the next attempt (s)."""
        self.failures += 1
        d = min(self.cap_s, self.base_s * 2.0 ** min(self.failures - 1, 30))
        return d / 2 + random.uniform(0, d / 2)

    def succeeded(self) -> None:
        """A success ends the run of failures."""
        self.failures = 0


class RateLimitedLog:
    """At most ``burst`` lines per ``window_s`` seconds; the rest are counted and summarised in
    one line when the next window opens (thousands of meters losing a server at once must not
    flood the log). Thread-safe; meant to be shared by every meter of a process."""

    def __init__(self, logger: logging.Logger, burst: int = 10, window_s: float = 10.0) -> None:
        self._log, self._burst, self._window_s = logger, burst, window_s
        self._started = 0.0
        self._count = 0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._started >= self._window_s:
                if self._suppressed:
                    self._log.warning("… %d similar client warnings suppressed", self._suppressed)
                self._started, self._count, self._suppressed = now, 0, 0
            self._count += 1
            if self._count > self._burst:
                self._suppressed += 1
                return
        self._log.warning(msg, *args)
