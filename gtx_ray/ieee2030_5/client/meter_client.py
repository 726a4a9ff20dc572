"""IEEE 2030.5 client of one meter: the loop that discovers, mirrors, polls and recovers.

A ``MeterClient`` is what one simulated meter does against any conforming 2030.5 server, over
its own mutual-TLS connection (TLS 1.2, ECDHE-ECDSA-AES128-CCM8, the meter's certificate and key,
the server verified against the configured trust anchor). It owns one part per job and decides
only when each runs:

1. Discovery (``discovery``): DeviceCapability, Time, the meter's EndDevice (found or
   registered), the PIN. A refusal (PIN mismatch, registration refused, mRID owned by another
   device, unusable credentials) stops the client with a clear error until
   ``max(refused_retry_s, pollRate)`` has passed (no retry storm).
2. The mirror (``mirror``): the MirrorUsagePoint is created; its ``postRate`` (else the
   EndDevice's, else ``default_post_rate_s``) sets how often readings are posted.
3. Readings (queued in ``pending``) are posted every postRate seconds, the first post at a random
   phase inside one postRate so meters spread out; a backlog larger than one post is drained in
   consecutive posts.
4. Every pollRate seconds: DeviceCapability, Time, the EndDevice and the MirrorUsagePoint are
   read again (rates may change; a 404 means the server forgot the meter).
5. Function sets the meter polls (``pollers``: ``FunctionSetPoller``s such as demand response or
   pricing): each is called after discovery and then at its own pace with the meter's session
   and the links it discovered (``discovery.links``; the EndDevice's FunctionSetAssignments are
   read, at discovery and every pollRate, only for a meter that carries pollers). A poller's
   failure backs off that poller only: mirroring carries on.
6. Failures: transport errors and timeouts → back off (``backoff``: exponential, equal jitter,
   capped), then check the meter's MirrorUsagePoint with one GET: still there → carry on (a slow
   server or a front restarted over the same registry costs no re-discovery); 404/403 for the
   meter's resources → re-discover from ``/dcap`` (re-register, re-create the mirror); 429/5xx →
   back off and retry the same readings (``Retry-After`` honoured, capped).

``enqueue``, ``reject`` and ``status`` may be called from any thread (one lock); ``run`` runs on
one event loop. ``gtx_ray.ieee2030_5.client.fleet`` runs many meters on one loop thread for a
meter actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree
from yarl import URL

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.client.backoff import Backoff, RateLimitedLog
from gtx_ray.ieee2030_5.client.discovery import Discovery
from gtx_ray.ieee2030_5.client.errors import (
    Busy,
    ClientError,
    Gone,
    ProtocolError,
    Refused,
    TransportError,
)
from gtx_ray.ieee2030_5.client.mirror import Mirror
from gtx_ray.ieee2030_5.client.pending import PendingQueue
from gtx_ray.ieee2030_5.client.pollers import (
    FIRST_REPOLL_SHARE,
    FunctionSetPoller,
    PollerSchedule,
)
from gtx_ray.ieee2030_5.client.quantities import PendingReading
from gtx_ray.ieee2030_5.client.session import Session, rate, text
from gtx_ray.ieee2030_5.client.settings import ClientSettings, dcap_url, meter_credentials
from gtx_ray.ieee2030_5.identity import is_valid_pin
from gtx_ray.ieee2030_5.pki import DeviceCredentials, identity_of, load_first_certificate

log = logging.getLogger(__name__)
_WARNINGS = RateLimitedLog(log)  # one for every meter of the process

STATE_NEW = "new"
STATE_DISCOVERING = "discovering"
STATE_READY = "ready"
STATE_BACKOFF = "backoff"
STATE_REFUSED = "refused"
STATE_STOPPED = "stopped"


@dataclass(eq=False)
class MeterClient:
    """One meter's 2030.5 client; see the module docstring.

    server: the server's base URL (or its ``/dcap``). interval_s: the simulation interval (s).
    pin: the Registration PIN the server must report (None: not checked). post_enabled: False
    registers and polls but creates no mirror and posts nothing. queue_limit: most intervals
    kept waiting; when full the oldest are dropped and counted. gap_merge_s: drops closer than
    this (s) to the previous gap extend it (status readability). lock: guards the queue and
    counters (shared by the meters of an actor). pollers: the function sets this meter polls
    (``pollers.FunctionSetPoller``; names unique).
    """

    meter_id: str
    credentials: DeviceCredentials
    server: URL
    interval_s: int
    pin: int | None = None
    post_enabled: bool = True
    queue_limit: int = 256
    settings: ClientSettings = field(default_factory=ClientSettings)
    gap_merge_s: int | None = None
    lock: Any = field(default_factory=threading.Lock)
    pollers: Sequence[FunctionSetPoller] = ()

    def __post_init__(self) -> None:
        self.server = dcap_url(self.server)
        if self.pin is not None and not is_valid_pin(self.pin):
            raise ConfigError(f"ieee2030_5 pin {self.pin!r} is not a valid registration PIN")
        if self.queue_limit < 1:
            raise ConfigError("ieee2030_5 queue_limit must be at least 1")
        try:
            cert = load_first_certificate(self.credentials.cert_chain.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.credentials.cert_chain}: cannot read ({exc})") from None
        self.identity = identity_of(cert)
        s = self.settings
        self.session = Session(self.server, self.credentials, self.identity, s)
        self.queue = PendingQueue(self.queue_limit, self.interval_s, self.gap_merge_s, self.lock)
        self.discovery = Discovery(self.session, self.identity, self.pin, s)
        self.mirror = Mirror(
            self.session,
            self.queue,
            self.meter_id,
            self.identity.lfdi,
            self.interval_s,
            s,
            self.discovery.server_now,
        )
        self.backoff = Backoff(s.backoff_base_s, s.backoff_cap_s)
        self.poller_schedule = PollerSchedule(self.pollers, s, self.meter_id, _WARNINGS)
        self._slots: asyncio.Semaphore | None = None
        self._wake: asyncio.Event | None = None
        self.state = STATE_NEW
        self.post_rate_s = s.default_post_rate_s
        # schedule (monotonic s)
        self._next_attempt = 0.0
        self._next_post = 0.0
        self._next_poll = 0.0
        self._resume = False  # after a transport failure: check the mirror, skip re-discovery
        self._stopping = False
        self._flush = False
        # counters
        self.registrations = 0
        self.polls = 0
        self.last_error: str | None = None

    # --- queue (any thread) ------------------------------------------------------------------
    def enqueue(self, readings: Sequence[PendingReading]) -> None:
        """Queue intervals (time order); past ``queue_limit`` the oldest are dropped, counted."""
        self.queue.extend(readings)

    def reject(self, starts: Sequence[int], why: str) -> None:
        """Count rows that cannot be posted (values not finite or outside Int48)."""
        if starts:
            self.queue.count_rejected(len(starts))
            self.last_error = f"{len(starts)} readings rejected: {why}"

    @property
    def queued(self) -> int:
        """Intervals waiting or in flight."""
        return self.queue.queued

    # --- status (any thread) -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """One meter's state for ``/api/ieee2030_5/clients`` (times epoch s, rates s); with
        pollers also ``function_sets`` (per poller: polls, errors, last_error)."""
        queued, gaps = self.queue.snapshot()
        out: dict[str, Any] = {
            "meter_id": self.meter_id,
            "lfdi": self.identity.lfdi,
            "sfdi": self.identity.sfdi,
            "end_device_href": self.discovery.end_device_href,
            "mirror_usage_point_href": self.mirror.href,
            "registered": self.state == STATE_READY,
            "state": self.state,
            "last_post_time": self.mirror.last_post_time,
            "posts_ok": self.mirror.posts_ok,
            "posts_failed": self.mirror.posts_failed,
            "readings_posted": self.queue.posted,
            "readings_queued": queued,
            "readings_dropped": self.queue.dropped,
            "readings_rejected": self.queue.rejected,
            "gaps": gaps,
            "registrations": self.registrations,
            "polls": self.polls,
            "requests": self.session.requests,
            "post_rate_s": self.post_rate_s,
            "poll_rate_s": self.discovery.poll_rate_s,
            "clock_offset_s": self.discovery.clock_offset_s,
            "last_error": self.last_error,
        }
        if self.poller_schedule:
            out["function_sets"] = self.poller_schedule.status()
        return out

    # --- control (loop thread) ---------------------------------------------------------------
    def request_stop(self) -> None:
        """Post what is queued now (if possible), then end ``run``."""
        self._stopping = True
        self._poke()

    def request_flush(self) -> None:
        """Post what is queued now, ignoring postRate."""
        self._flush = True
        self._poke()

    def wake(self) -> None:
        """Look at the pollers now (one has something to push between polls)."""
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self, http: aiohttp.ClientSession, slots: asyncio.Semaphore | None = None):
        """The client's life: discover, post at postRate, poll at pollRate, recover; until
        ``request_stop`` (then one last attempt to post what is queued) or cancellation.
        http: the shared connection pool; slots: bounds discoveries running at once."""
        self._slots = slots
        self._wake = asyncio.Event()
        try:
            self.session.open(http)
            await self._loop()
        except Refused as exc:  # unusable credentials: nothing to retry
            self._refused(exc)
        finally:
            if self.state != STATE_REFUSED:
                self.state = STATE_STOPPED

    async def _loop(self) -> None:
        while True:
            now = time.monotonic()
            if self.state in (STATE_NEW, STATE_BACKOFF, STATE_REFUSED):
                if self._stopping and (self.state == STATE_REFUSED or not self.queued):
                    return
                if now < self._next_attempt and not self._stopping:
                    await self._sleep(self._next_attempt - now)
                    continue
                if self._resume and self.state == STATE_BACKOFF:
                    await self._guarded(self._resume_session())
                else:
                    await self._guarded(self._discover())
                if self._stopping and self.state != STATE_READY:
                    return
                continue
            # ready
            if self._stopping or self._flush:
                self._flush = False
                await self._guarded(self._post_all())
                if self._stopping:  # one attempt only: stop() has a deadline
                    return
                continue
            if now >= self._next_poll:
                await self._guarded(self._poll())
                continue
            if self.post_enabled and now >= self._next_post:
                if await self._guarded(self._post()):
                    backlog = self.queued >= self.mirror.post_limit
                    if backlog and self.settings.drain_backlog:
                        self._next_post = now
                    else:
                        self._next_post = max(self._next_post + self.post_rate_s, now + 0.001)
                        if self._next_post <= now:
                            self._next_post = now + self.post_rate_s
                continue
            due = self.poller_schedule.due(now)
            if due is not None:
                d = self.discovery
                await self.poller_schedule.run(due, self.session, d.links, d.server_now())
                continue
            push = self.poller_schedule.push_due(now)
            if push is not None:
                await self.poller_schedule.run_push(push, self.session)
                continue
            until = self._next_poll
            if self.post_enabled:
                until = min(until, self._next_post)
            pollers_at = self.poller_schedule.next_at()
            if pollers_at is not None:
                until = min(until, pollers_at)
            await self._sleep(until - now)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # --- failures ----------------------------------------------------------------------------
    async def _guarded(self, work: Awaitable[None]) -> bool:
        """Run one step; turn its failure into the next state. True when it succeeded."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Refused as exc:
            self._refused(exc)
        except Busy as exc:
            delay = self.backoff.failed()
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, self.settings.backoff_cap_s))
            self.last_error = str(exc)
            if self.state == STATE_READY:
                self._next_post = time.monotonic() + delay
            else:
                self._lost(exc, delay)
        except Gone as exc:  # the first time re-discover at once, then back off
            delay = self.backoff.failed()
            self._lost(exc, 0.0 if self.backoff.failures == 1 else delay)
        except TransportError as exc:  # no answer: retry later, re-discover only if forgotten
            self._lost(exc, self.backoff.failed(), resume=True)
        except ProtocolError as exc:
            self._lost(exc, self.backoff.failed())
        except Exception as exc:  # a bug: never let it kill the meter's task
            log.exception("meter %s: unexpected error", self.meter_id)
            self._lost(exc, self.backoff.failed())
        else:
            self.backoff.succeeded()
            return True
        return False

    def _lost(self, exc: BaseException, delay: float, resume: bool = False) -> None:
        was_ready = self.state == STATE_READY
        self.last_error = f"{type(exc).__name__}: {exc}"
        # A meter that was discovered keeps its hrefs through a transport failure and checks its
        # mirror first when it retries (one request instead of a whole discovery: no
        # amplification when the server is merely slow or restarting with its registry).
        discovered = self.discovery.end_device_url is not None
        self._resume = resume and (self._resume or was_ready) and discovered
        self.state = STATE_BACKOFF
        self._next_attempt = time.monotonic() + delay
        if was_ready:
            _WARNINGS.warning(
                "meter %s: %s; retrying in %.1f s", self.meter_id, self.last_error, delay
            )
        else:
            log.debug("meter %s: %s; retrying in %.1f s", self.meter_id, self.last_error, delay)

    def _refused(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        self.state = STATE_REFUSED
        wait = max(self.settings.refused_retry_s, self.discovery.poll_rate_s)
        self._next_attempt = time.monotonic() + wait
        log.error("meter %s: %s (next attempt in %.0f s)", self.meter_id, exc, wait)

    # --- steps -------------------------------------------------------------------------------
    async def _discover(self) -> None:
        if self._slots is not None:
            async with self._slots:
                await self._discover_steps()
        else:
            await self._discover_steps()

    async def _discover_steps(self) -> None:
        self.state = STATE_DISCOVERING
        dcap = await self.discovery.read_server()
        edev_list = self.session.href(dcap, "EndDeviceListLink")
        assert edev_list is not None
        mup_list = None  # post mode "off": no mirror either, nothing is posted but the EndDevice
        if self.post_enabled:
            mup_list = self.session.href(dcap, "MirrorUsagePointListLink")

        edev = await self.discovery.end_device(edev_list)
        post_rate = rate(text(edev, "postRate"), self.settings.default_post_rate_s)
        if mup_list is not None:
            mup = await self.mirror.create(mup_list)
            post_rate = rate(text(mup, "postRate"), post_rate)
        self.post_rate_s = post_rate
        await self._read_function_sets(edev)

        now = time.monotonic()
        self.state = STATE_READY
        self.registrations += 1
        self._resume = False
        # a random phase within the pollRate: a fleet registered at once does not poll in a herd
        self._next_poll = now + self.discovery.poll_rate_s * random.uniform(FIRST_REPOLL_SHARE, 1)
        backlog = self.queued >= self.mirror.post_limit
        self._next_post = now if backlog else now + random.uniform(0, self.post_rate_s)
        self.poller_schedule.start(now)
        log.info(
            "meter %s registered as %s, mirror %s, postRate %d s, pollRate %d s",
            self.meter_id,
            self.discovery.end_device_href,
            self.mirror.href,
            self.post_rate_s,
            self.discovery.poll_rate_s,
        )

    async def _resume_session(self) -> None:
        """After a transport failure: is the server still holding our mirror (or EndDevice)?
        200 → carry on; 404/403 → Gone → a full discovery (re-registration) follows."""
        url = self.mirror.url or self.discovery.end_device_url
        assert url is not None
        doc = await self.session.get(url, "MirrorUsagePoint" if self.mirror.url else "EndDevice")
        self.post_rate_s = rate(text(doc, "postRate"), self.post_rate_s)
        self._resume = False
        now = time.monotonic()
        self.state = STATE_READY
        self._next_post = min(self._next_post, now) if self.queued else self._next_post
        self._next_poll = max(self._next_poll, now)

    async def _poll(self) -> None:
        """Re-read DeviceCapability, Time, the EndDevice and the mirror (rates, liveness)."""
        d = self.discovery
        self._next_poll = time.monotonic() + d.poll_rate_s
        self.polls += 1
        await d.read_device_capability()
        self._next_poll = time.monotonic() + d.poll_rate_s
        await d.read_time()
        edev = None
        if d.end_device_url is not None:
            edev = await d.read_end_device()
            self.post_rate_s = rate(text(edev, "postRate"), self.post_rate_s)
        if self.mirror.url is not None:
            mup = await self.session.get(self.mirror.url, "MirrorUsagePoint")
            self.post_rate_s = rate(text(mup, "postRate"), self.post_rate_s)
        if edev is not None:
            await self._read_function_sets(edev)

    async def _read_function_sets(self, edev: etree._Element) -> None:
        """The FunctionSetAssignments' links, for a meter that carries pollers. Not reading them
        only leaves the pollers with the links they had: mirroring goes on."""
        if not self.poller_schedule:
            return
        try:
            await self.discovery.read_function_sets(edev)
        except ClientError as exc:
            _WARNINGS.warning("meter %s: FunctionSetAssignments not read: %s", self.meter_id, exc)

    async def _post(self) -> None:
        problem = await self.mirror.post_once(self.post_rate_s)
        if problem is not None:
            self.last_error = problem
            log.warning("meter %s: %s", self.meter_id, problem)

    async def _post_all(self) -> None:
        while self.post_enabled and self.mirror.url is not None and self.queue.waiting:
            await self._post()


def load_meter_client(
    certs_dir: str | Path,
    meter_id: str,
    server_url: str,
    interval_s: int,
    ca_file: str | Path | None = None,
    **kwargs: Any,
) -> MeterClient:
    """A MeterClient from a certificates directory (``pki`` layout); ``ca_file`` replaces the
    directory's SERCA as the trust anchor for the server (an external server's chain)."""
    creds = meter_credentials(certs_dir, meter_id, ca_file)
    return MeterClient(meter_id, creds, URL(server_url), interval_s, **kwargs)
