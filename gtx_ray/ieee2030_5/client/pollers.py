"""The seam for function sets a meter polls (demand response, pricing, messaging, …).

A function set lives in its own module of this package (e.g. ``client/drlc.py``) and provides a
``FunctionSetPoller``; a ``MeterClient`` carries a list of them (``MeterClient(pollers=...)``,
or ``MeterClients(pollers=factory)`` for an actor's meters). ``PollerSchedule`` runs them:

- when: only while the meter is registered (READY). After every successful discovery each
  poller is due at once; afterwards it is due again when the seconds its ``poll`` returned have
  passed, except after that first poll: then a random share (``FIRST_REPOLL_SHARE``..1) of
  them, so that a fleet registered at once does not poll in a herd at the same moment of every
  pollRate (never later than one pollRate). The meter's loop runs one due poller at a time,
  after its pollRate poll and its due post (one request at a time per meter, as for everything
  else it does).
- with what: the meter's ``Session`` (its requests, error classes, identity), the ``Links`` it
  discovered (DeviceCapability, EndDevice and FunctionSetAssignments links) and the server's
  time as the meter knows it (epoch s).
- between polls: a poller that has something to send before its next poll (a DER whose
  operating state changed) says when in ``push_at`` and sends it in ``push``; the meter's loop
  runs a due push like a due poll (woken by ``MeterClients.wake``). A failed push backs off
  like a failed poll.
- failures stay the poller's own: a ``ClientError`` (no answer, 404, 429/5xx with Retry-After,
  an unusable answer) or a bug in the poller backs that poller off (exponential, equal jitter,
  capped, as the mirror does; ``Retry-After`` honoured), is counted in its status and logged
  (rate-limited); the meter's state, its mirror and its other pollers carry on. A poll taking
  longer than ``poller_timeout_s`` is cancelled and counted as a failure.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.client.backoff import Backoff, RateLimitedLog
from gtx_ray.ieee2030_5.client.discovery import Links
from gtx_ray.ieee2030_5.client.errors import Busy, ClientError
from gtx_ray.ieee2030_5.client.session import Session
from gtx_ray.ieee2030_5.client.settings import ClientSettings

log = logging.getLogger(__name__)


class FunctionSetPoller(Protocol):
    """One function set a meter polls. ``name`` (unique per meter) keys it in status."""

    name: str

    async def poll(self, session: Session, links: Links, now: int) -> float:
        """Read (and answer) this function set once: ``session`` for requests, ``links`` to find
        its resources, ``now`` the server's time (epoch s). Returns the seconds until its next
        poll (finite, > 0). Raise a ``ClientError`` (``session`` does) when the server failed
        it."""
        ...


FIRST_REPOLL_SHARE = 0.1
"""The earliest share of its pollRate a poller polls again after its first poll."""


class PushingPoller(FunctionSetPoller, Protocol):
    """A poller that may also send between its polls (optional: ``push_at`` and ``push``)."""

    def push_at(self) -> float | None:
        """When (monotonic s) it has something to send before its next poll; None: nothing."""
        ...

    async def push(self, session: Session) -> None:
        """Send it (raise a ``ClientError`` when the server failed it)."""
        ...


class _Scheduled:
    """A poller and its schedule: next_at (monotonic s), back-off and counters."""

    def __init__(self, poller: FunctionSetPoller, settings: ClientSettings) -> None:
        self.poller = poller
        self.next_at = 0.0
        self.backoff = Backoff(settings.backoff_base_s, settings.backoff_cap_s)
        self.polls = 0
        self.pushes = 0
        self.errors = 0
        self.last_error: str | None = None
        self.push_after = 0.0  # no push before this (monotonic s): after a failed one
        self.first = True  # the first poll since discovery: its next one is spread

    def push_due_at(self) -> float | None:
        """When its push is due (monotonic s), None when it has nothing to push."""
        push_at = getattr(self.poller, "push_at", None)
        at = push_at() if push_at is not None else None
        return None if at is None else max(at, self.push_after)


class PollerSchedule:
    """The function-set pollers of one meter and when each is due; see the module docstring."""

    def __init__(
        self,
        pollers: Sequence[FunctionSetPoller],
        settings: ClientSettings,
        meter_id: str,
        warnings: RateLimitedLog,
    ) -> None:
        names = [p.name for p in pollers]
        if len(set(names)) != len(names):
            raise ConfigError(f"ieee2030_5 function-set poller names must be unique: {names}")
        self.settings = settings
        self.meter_id = meter_id
        self._warnings = warnings
        self._scheduled = [_Scheduled(p, settings) for p in pollers]

    def __bool__(self) -> bool:
        return bool(self._scheduled)

    def start(self, now: float) -> None:
        """After a discovery: every poller is due at ``now`` (monotonic s), failures forgotten."""
        for s in self._scheduled:
            s.next_at = now
            s.first = True
            s.backoff.succeeded()

    def due(self, now: float) -> _Scheduled | None:
        """The poller due longest at ``now`` (monotonic s), or None."""
        ready = [s for s in self._scheduled if s.next_at <= now]
        return min(ready, key=lambda s: s.next_at) if ready else None

    def next_at(self) -> float | None:
        """When the next poller (poll or push) is due (monotonic s); None without pollers."""
        pushes = (at for s in self._scheduled if (at := s.push_due_at()) is not None)
        return min((*(s.next_at for s in self._scheduled), *pushes), default=None)

    def push_due(self, now: float) -> _Scheduled | None:
        """A poller with a push due at ``now`` (monotonic s), or None."""
        for s in self._scheduled:
            at = s.push_due_at()
            if at is not None and at <= now:
                return s
        return None

    async def run_push(self, s: _Scheduled, session: Session) -> None:
        """Send ``s``'s push once; a failure backs its pushes off. Never raises but
        CancelledError."""
        try:
            async with asyncio.timeout(self.settings.poller_timeout_s):
                await s.poller.push(session)  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ClientError, timeout, or a bug: the meter carries on
            if not isinstance(exc, ClientError | TimeoutError):
                log.exception("meter %s: function set %s push failed", self.meter_id, s.poller.name)
            s.errors += 1
            s.last_error = f"push: {type(exc).__name__}: {exc}"
            wait = s.backoff.failed()
            s.push_after = time.monotonic() + wait
            self._warnings.warning(
                "meter %s: function set %s: %s; pushing again in %.1f s",
                self.meter_id,
                s.poller.name,
                s.last_error,
                wait,
            )
        else:
            s.pushes += 1
            s.push_after = 0.0

    async def run(self, s: _Scheduled, session: Session, links: Links, server_now: int) -> None:
        """Poll ``s`` once and schedule it again; never raises but CancelledError."""
        name = s.poller.name
        try:
            async with asyncio.timeout(self.settings.poller_timeout_s):
                delay = float(await s.poller.poll(session, links, server_now))
            if not math.isfinite(delay) or delay <= 0:
                raise ValueError(f"poll returned {delay!r}, not seconds > 0")
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            limit = self.settings.poller_timeout_s
            self._failed(s, f"poll took longer than {limit:g} s", s.backoff.failed())
        except ClientError as exc:
            wait = s.backoff.failed()
            if isinstance(exc, Busy) and exc.retry_after is not None:
                wait = max(wait, min(exc.retry_after, self.settings.backoff_cap_s))
            self._failed(s, f"{type(exc).__name__}: {exc}", wait)
        except Exception as exc:  # a bug in the poller: never let it stop the meter
            log.exception("meter %s: function set %s failed", self.meter_id, name)
            self._failed(s, f"{type(exc).__name__}: {exc}", s.backoff.failed())
        else:
            s.backoff.succeeded()
            s.polls += 1
            if s.first:  # spread the fleet's phases over the period (module docstring)
                delay *= random.uniform(FIRST_REPOLL_SHARE, 1.0)
                s.first = False
            s.next_at = time.monotonic() + delay

    def _failed(self, s: _Scheduled, error: str, wait: float) -> None:
        s.errors += 1
        s.last_error = error
        s.next_at = time.monotonic() + wait
        self._warnings.warning(
            "meter %s: function set %s: %s; polling again in %.1f s",
            self.meter_id,
            s.poller.name,
            error,
            wait,
        )

    def status(self) -> dict[str, dict[str, Any]]:
        """Per poller name: polls and pushes (succeeded), errors (failed), last_error, and what
        the poller itself reports (its ``detail()``, when it has one)."""
        out = {}
        for s in self._scheduled:
            row: dict[str, Any] = {
                "polls": s.polls,
                "pushes": s.pushes,
                "errors": s.errors,
                "last_error": s.last_error,
            }
            detail = getattr(s.poller, "detail", None)
            if callable(detail):
                row.update(detail())
            out[s.poller.name] = row
        return out
