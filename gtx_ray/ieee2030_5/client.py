"""IEEE 2030.5 client of one meter: discovery, registration and the Metering Mirror.

A ``MeterClient`` is what one simulated meter does against any conforming 2030.5 server, over
its own mutual-TLS connection (TLS 1.2, ECDHE-ECDSA-AES128-CCM8, the meter's certificate and key,
the server verified against the configured trust anchor):

1. ``GET /dcap`` — the only fixed path; every other resource is reached through the links of
   the documents (``TimeLink``, ``EndDeviceListLink``, ``MirrorUsagePointListLink``,
   ``RegistrationLink`` …), relative or absolute hrefs alike. DeviceCapability's ``pollRate``
   is kept.
2. ``Time``: the offset between the server's clock and ours (server − local, seconds, measured at
   the midpoint of the request) is kept, reported in status and used for the times the client
   writes (``changedTime``, ``lastUpdateTime``, ``nextUpdateTime``). Reading timestamps are the
   simulation's data and are never shifted.
3. EndDevice: found by LFDI in the EndDeviceList (paged, bounded), else registered by POSTing an
   EndDevice with the LFDI and SFDI of the meter's own certificate: ``201`` + Location, or ``409``
   with Location ("already registered"). If a PIN is configured, the Registration's ``pIN`` must
   equal it; otherwise the client stops with a clear error and tries again only after
   ``max(refused_retry_s, pollRate)`` (no retry storm).
4. MirrorUsagePoint: POSTed with an mRID derived from the meter id (``mirror_mrid``), the LFDI,
   ``roleFlags`` (isMirror | isSubmeter by default), ``serviceCategoryKind`` 0 (electricity),
   ``status`` 1 and one MirrorMeterReading per quantity in ``QUANTITIES`` with its ReadingType.
   ``201``/``204`` + Location (or a look-up in the list by mRID). Its ``postRate`` (else the
   EndDevice's, else 900 s) sets how often readings are posted. POSTing it again is idempotent.
5. Readings are posted to the MirrorUsagePoint every postRate seconds (the first post at a random
   phase inside one postRate, so meters spread out): one ``MirrorMeterReadingList`` holding, per
   quantity, a single ``Reading`` when one interval is due or a ``MirrorReadingSet`` (timePeriod =
   first start .. last end, one Reading per interval) when several are. A backlog larger than one
   post (``max_readings_per_post`` intervals) is drained in consecutive posts; a ``413`` halves
   the intervals per post (the server's body limit) instead of losing readings.
6. Every pollRate seconds: DeviceCapability, Time, the EndDevice and the MirrorUsagePoint are read
   again (rates may change; a 404 means the server forgot the meter).
7. Failures: transport errors and timeouts → back off (exponential, equal jitter, capped), then
   check the meter's MirrorUsagePoint with one GET: still there → carry on (a slow server or a
   front restarted over the same registry costs no re-discovery); 404/403 for the meter's
   resources → re-discover from ``/dcap`` (re-register, re-create the mirror); 429/5xx → back
   off and retry the same readings (``Retry-After`` honoured, capped); a 400 for readings →
   re-create the mirror once, then drop those readings as ``readings_rejected``. Readings are
   only removed from the queue when the server accepted them (2xx); a reading set's mRID is
   derived from its quantity and time period, so a repeated POST replaces, never duplicates.

Values on the wire (``wire_values``): every ReadingType has ``powerOfTenMultiplier`` -3, so a
Reading's integer ``value`` is the SI quantity in thousandths, rounded half to even:
``value = rint(x_SI × 1000)`` and ``x_SI = value × 10^-3`` to within 0.0005 (0.5 mW, 0.5 mV,
0.5 mA, 0.0005 of cos θ, 0.5 mWh) — 6 decimals of the Arrow schema's kW and kWh, 3 of its V, A
and power factor. Int48 bounds the values to ±1.4×10^11 units (140 GW, 140 GWh); rows outside or
not finite are rejected (counted), never posted.

``MeterClient`` holds the queue and counters and is thread-safe for ``enqueue``/``status`` (one
lock); its ``run`` coroutine runs on one event loop. ``gtx_ray.ieee2030_5.fleet_client`` runs many
of them on one loop thread for a meter actor. Building documents and converting readings are pure
functions (``end_device_document``, ``mirror_usage_point_document``, ``readings_document``,
``wire_values``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree
from yarl import URL

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.codec import (
    INT48_MAX,
    MEDIA_TYPE,
    XmlError,
    child,
    children,
    expect_root,
    hex_text,
    leaf,
    node,
    parse_document,
    read_hex,
    read_int,
    read_uint,
    root,
    serialize,
)
from gtx_ray.ieee2030_5.elements import fill_reading, fill_reading_type, render_time_period
from gtx_ray.ieee2030_5.identity import DeviceIdentity, is_valid_pin, normalise_lfdi
from gtx_ray.ieee2030_5.models import Reading, ReadingType
from gtx_ray.ieee2030_5.pki import DeviceCredentials, identity_of, load_first_certificate
from gtx_ray.ieee2030_5.tls import client_context

log = logging.getLogger(__name__)


class _RateLimitedLog:
    """At most ``burst`` lines per ``window_s`` seconds; the rest are counted and summarised in
    one line when the next window opens (thousands of meters losing a server at once must not
    flood the log)."""

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


_WARNINGS = _RateLimitedLog(log)

# --- quantities and their wire form ----------------------------------------------------------

POWER_OF_TEN = -3
"""powerOfTenMultiplier of every ReadingType: values are thousandths of the SI unit."""

# ReadingType codes (IEEE 2030.5-2018 schema, from IEC 61968-9).
ACC_SUMMATION = 9
"""accumulationBehaviour 9 Summation: a register that accumulates over time (our Wh registers).
(3 "Cumulative" is the demand-reset accumulation of the schema's text, not an energy register.)"""
ACC_INSTANTANEOUS = 12
"""accumulationBehaviour 12 Instantaneous: a value at a point; with dataQualifier 2 (Average) and
intervalLength it is the interval average the model produces (the convention of CSIP/CSIP-AUS
site mirrors)."""
COMMODITY_ELECTRICITY_SECONDARY = 1
QUALIFIER_AVERAGE = 2
FLOW_NOT_APPLICABLE, FLOW_FORWARD, FLOW_REVERSE = 0, 1, 19
KIND_NOT_APPLICABLE, KIND_ENERGY, KIND_POWER = 0, 12, 37
UOM_A, UOM_V, UOM_W, UOM_COS_THETA, UOM_WH = 5, 29, 38, 65, 72

ROLE_IS_MIRROR = 0x0001
ROLE_IS_SUBMETER = 0x0040
SERVICE_ELECTRICITY = 0
MIRROR_STATUS_ON = 1


@dataclass(frozen=True)
class Quantity:
    """One mirrored quantity: ``key`` (used in mRIDs and tests), a description (≤ 32 chars) and
    its ReadingType (intervalLength is filled in per client with the simulation interval)."""

    key: str
    description: str
    reading_type: ReadingType


def _rt(acc: int, uom: int, kind: int, flow: int, qualifier: int | None) -> ReadingType:
    return ReadingType(
        accumulation_behaviour=acc,
        commodity=COMMODITY_ELECTRICITY_SECONDARY,
        data_qualifier=qualifier,
        flow_direction=flow,
        kind=kind,
        power_of_ten_multiplier=POWER_OF_TEN,
        uom=uom,
    )


QUANTITIES: tuple[Quantity, ...] = (
    # Grid real power: energy_consumed − energy_generated + battery_power (kW → W), + import,
    # − export ("forward" with a sign, as site mirrors do).
    Quantity(
        "power",
        "Grid real power W avg",
        _rt(ACC_INSTANTANEOUS, UOM_W, KIND_POWER, FLOW_FORWARD, QUALIFIER_AVERAGE),
    ),
    Quantity(
        "voltage",
        "Voltage V avg",
        _rt(ACC_INSTANTANEOUS, UOM_V, KIND_NOT_APPLICABLE, FLOW_NOT_APPLICABLE, QUALIFIER_AVERAGE),
    ),
    Quantity(
        "current",
        "Current A avg",
        _rt(ACC_INSTANTANEOUS, UOM_A, KIND_NOT_APPLICABLE, FLOW_NOT_APPLICABLE, QUALIFIER_AVERAGE),
    ),
    Quantity(
        "power_factor",
        "Power factor cos theta avg",
        _rt(
            ACC_INSTANTANEOUS,
            UOM_COS_THETA,
            KIND_NOT_APPLICABLE,
            FLOW_NOT_APPLICABLE,
            QUALIFIER_AVERAGE,
        ),
    ),
    # Registers: value at the end of the Reading's timePeriod (the Arrow row's interval).
    Quantity(
        "import_wh",
        "Energy import register Wh",
        _rt(ACC_SUMMATION, UOM_WH, KIND_ENERGY, FLOW_FORWARD, None),
    ),
    Quantity(
        "export_wh",
        "Energy export register Wh",
        _rt(ACC_SUMMATION, UOM_WH, KIND_ENERGY, FLOW_REVERSE, None),
    ),
)
QUANTITY_KEYS = tuple(q.key for q in QUANTITIES)


def si_values(batch: pa.RecordBatch) -> np.ndarray:
    """The quantities of ``QUANTITIES`` in SI units (W, V, A, cos θ, Wh, Wh), shape (rows, 6).

    Power is grid power = energy_consumed − energy_generated + battery_power (null → 0) in
    kW × 1000; registers are kWh × 1000.
    """

    def col(name: str) -> np.ndarray:
        column = batch.column(name)
        if column.null_count:
            column = pc.fill_null(column, 0.0)
        return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)

    grid_kw = col("energy_consumed") - col("energy_generated") + col("battery_power")
    return np.column_stack(
        [
            grid_kw * 1000.0,
            col("voltage"),
            col("current"),
            col("power_factor"),
            col("import_register_kwh") * 1000.0,
            col("export_register_kwh") * 1000.0,
        ]
    )


def to_wire(si: np.ndarray, power_of_ten: int = POWER_OF_TEN) -> tuple[np.ndarray, np.ndarray]:
    """Integer wire values ``rint(si / 10^power_of_ten)`` (round half to even) and a mask of the
    rows whose every value is finite and fits the schema's Int48."""
    scaled = np.rint(np.asarray(si, np.float64) * 10.0 ** (-power_of_ten))
    ok = np.isfinite(scaled) & (np.abs(scaled) < INT48_MAX)
    if scaled.ndim == 2:
        ok = ok.all(axis=1)
    out = np.where(np.isfinite(scaled), scaled, 0.0)
    return out.astype(np.int64), ok


def wire_values(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 6) int64 values as posted for each row of a reading batch, and the valid-row mask."""
    return to_wire(si_values(batch))


def from_wire(value: int, power_of_ten: int = POWER_OF_TEN) -> float:
    """The SI value of a wire value."""
    return value * 10.0**power_of_ten


# --- identifiers -----------------------------------------------------------------------------


def derived_mrid(*parts: object, pen: int = 0) -> int:
    """A 128-bit mRID: 96 bits of SHA-256 over ``parts`` followed by the 32-bit IANA PEN (the
    schema puts the PEN in the least significant 32 bits). Deterministic: the same meter gets the
    same mRIDs on every run and every server."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return (int.from_bytes(digest[:12], "big") << 32) | (pen & 0xFFFFFFFF)


def mirror_mrid(meter_id: str, pen: int = 0) -> int:
    """The MirrorUsagePoint mRID of a meter."""
    return derived_mrid("gtx_ray", "mup", meter_id, pen=pen)


def meter_reading_mrid(meter_id: str, quantity: str, pen: int = 0) -> int:
    """The MirrorMeterReading mRID of one quantity of a meter."""
    return derived_mrid("gtx_ray", "mmr", meter_id, quantity, pen=pen)


def reading_set_mrid(meter_id: str, quantity: str, start: int, duration: int, pen: int = 0) -> int:
    """The MirrorReadingSet mRID of a time period: a repeated POST replaces the same set."""
    return derived_mrid("gtx_ray", "mrs", meter_id, quantity, start, duration, pen=pen)


# --- documents the client posts (pure) -------------------------------------------------------


def end_device_document(identity: DeviceIdentity, changed_time: int) -> bytes:
    """The EndDevice a meter POSTs to register itself (lFDI, sFDI, changedTime)."""
    doc = root("EndDevice")
    leaf(doc, "lFDI", identity.lfdi)
    leaf(doc, "sFDI", identity.sfdi)
    leaf(doc, "changedTime", changed_time)
    return serialize(doc)


def mirror_usage_point_document(
    meter_id: str,
    lfdi: str,
    interval_s: int,
    role_flags: int = ROLE_IS_MIRROR | ROLE_IS_SUBMETER,
    pen: int = 0,
    quantities: Sequence[Quantity] = QUANTITIES,
) -> bytes:
    """The MirrorUsagePoint of a meter with one MirrorMeterReading (and ReadingType) per
    quantity. No postRate: the server's is used."""
    doc = root("MirrorUsagePoint")
    leaf(doc, "mRID", hex_text(mirror_mrid(meter_id, pen), 16))
    leaf(doc, "description", meter_id[:32])
    leaf(doc, "roleFlags", hex_text(role_flags, 2))
    leaf(doc, "serviceCategoryKind", SERVICE_ELECTRICITY)
    leaf(doc, "status", MIRROR_STATUS_ON)
    leaf(doc, "deviceLFDI", lfdi)
    for q in quantities:
        mmr = node(doc, "MirrorMeterReading")
        leaf(mmr, "mRID", hex_text(meter_reading_mrid(meter_id, q.key, pen), 16))
        leaf(mmr, "description", q.description[:32])
        fill_reading_type(
            node(mmr, "ReadingType"), replace(q.reading_type, interval_length=interval_s)
        )
    return serialize(doc)


PendingReading = tuple[int, tuple[int, ...]]
"""A queued interval: (start, epoch s; wire values in ``QUANTITIES`` order)."""


def readings_document(
    meter_id: str,
    readings: Sequence[PendingReading],
    interval_s: int,
    last_update: int | None = None,
    next_update: int | None = None,
    pen: int = 0,
    quantities: Sequence[Quantity] = QUANTITIES,
) -> bytes:
    """A MirrorMeterReadingList with one MirrorMeterReading per quantity: a single Reading for
    one interval, a MirrorReadingSet for several. Each Reading's timePeriod is its interval."""
    if not readings:
        raise ValueError("no readings to post")
    ordered = sorted(readings, key=lambda r: r[0])
    doc = root("MirrorMeterReadingList", all=len(quantities), results=len(quantities))
    first = ordered[0][0]
    span = ordered[-1][0] + interval_s - first
    for i, q in enumerate(quantities):
        mmr = node(doc, "MirrorMeterReading")
        leaf(mmr, "mRID", hex_text(meter_reading_mrid(meter_id, q.key, pen), 16))
        leaf(mmr, "lastUpdateTime", last_update)
        if len(ordered) > 1:
            rs = node(mmr, "MirrorReadingSet")
            leaf(rs, "mRID", hex_text(reading_set_mrid(meter_id, q.key, first, span, pen), 16))
            render_time_period(rs, first, span)
            for start, values in ordered:
                fill_reading(node(rs, "Reading"), Reading(values[i], start, interval_s))
        leaf(mmr, "nextUpdateTime", next_update)
        if len(ordered) == 1:
            start, values = ordered[0]
            fill_reading(node(mmr, "Reading"), Reading(values[i], start, interval_s))
    return serialize(doc)


# --- settings, errors ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSettings:
    """How a client behaves on the network; seconds unless named otherwise.

    connect_timeout_s / request_timeout_s: TCP+TLS connect, and a whole request.
    backoff_base_s / backoff_cap_s: after the n-th consecutive failure wait
    ``d/2 + uniform(0, d/2)`` with ``d = min(cap, base × 2^(n-1))``.
    refused_retry_s: after a refusal (PIN mismatch, registration 403, mRID owned by another
    device, unusable credentials) try again only after max(this, pollRate).
    max_readings_per_post: intervals per POST (≤ 255, the schema's maxNumberOfIntervals).
    max_response_bytes: bound on a response body read. keepalive_s: idle kept-alive connection.
    default_post_rate_s / default_poll_rate_s: when the server advertises none.
    role_flags: MirrorUsagePoint roleFlags. pen: IANA PEN in the low 32 bits of every mRID.
    check_hostname: verify the server certificate's name against the URL's host.
    drain_backlog: post again at once while more than one post's worth is queued.
    max_list_pages / list_page_size: bound on reading the EndDeviceList/MirrorUsagePointList.
    observe: called as ``observe(method, url, body)`` before every request with a body (tests
    capture what the client posts); must be quick and must not raise.
    """

    connect_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    refused_retry_s: float = 900.0
    max_readings_per_post: int = 96
    max_response_bytes: int = 1 << 20
    keepalive_s: float = 60.0
    default_post_rate_s: int = 900
    default_poll_rate_s: int = 900
    role_flags: int = ROLE_IS_MIRROR | ROLE_IS_SUBMETER
    pen: int = 0
    check_hostname: bool = True
    drain_backlog: bool = True
    max_list_pages: int = 10
    list_page_size: int = 100
    observe: Callable[[str, str, bytes], None] | None = None

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout_s",
            "request_timeout_s",
            "backoff_base_s",
            "backoff_cap_s",
            "refused_retry_s",
            "keepalive_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"ieee2030_5 client {name} must be > 0 s")
        if not 1 <= self.max_readings_per_post <= 255:
            raise ConfigError("ieee2030_5 client max_readings_per_post must be 1..255")
        if not 0 <= self.role_flags <= 0xFFFF or not 0 <= self.pen <= 0xFFFFFFFF:
            raise ConfigError("ieee2030_5 client role_flags is 16 bits and pen 32 bits")


class ClientError(Exception):
    """Base of what a request can end in besides success."""


class TransportError(ClientError):
    """No answer: connection refused or reset, TLS failure, timeout."""


class Gone(ClientError):
    """The server does not know the meter's resources (404/403/410): re-discover."""


class Busy(ClientError):
    """429 or 5xx: retry the same thing later (``retry_after`` s, if the server said)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(ClientError):
    """The client must not go on with this server (PIN mismatch, registration refused, …)."""


class ProtocolError(ClientError):
    """An answer the client cannot use (unexpected status, missing link, invalid document)."""


def dcap_url(server_url: str | URL) -> URL:
    """The DeviceCapability URL of a server base URL (``https://host:port[/prefix]``); a URL that
    already ends in ``/dcap`` is kept. Raises ConfigError for anything but https with a host."""
    url = URL(str(server_url))
    if url.scheme != "https" or not url.host:
        raise ConfigError(
            f"IEEE 2030.5 server URL {server_url!r} must be https://HOST[:PORT][/PREFIX]"
        )
    if url.path.rstrip("/").endswith("/dcap"):
        return url.with_query(None).with_fragment(None)
    return url.with_path(url.path.rstrip("/") + "/dcap").with_query(None).with_fragment(None)


# --- one meter -------------------------------------------------------------------------------

STATE_NEW = "new"
STATE_DISCOVERING = "discovering"
STATE_READY = "ready"
STATE_BACKOFF = "backoff"
STATE_REFUSED = "refused"
STATE_STOPPED = "stopped"

MAX_GAPS = 32
"""Most recent gaps (runs of dropped readings) kept per meter for status."""


@dataclass
class _Reply:
    status: int
    location: str | None
    retry_after: str | None
    body: bytes


@dataclass
class _Gap:
    first_start_s: int
    last_start_s: int
    readings: int


@dataclass(eq=False)
class MeterClient:
    """One meter's 2030.5 client; see the module docstring.

    ``enqueue`` and ``status`` may be called from any thread; ``run`` runs on one event loop.
    queue_limit: most intervals kept waiting; when full the oldest are dropped and counted.
    gap_merge_s: drops closer than this to the previous gap extend it (status readability).
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
        self._ssl: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._wake: asyncio.Event | None = None
        self._queue: deque[PendingReading] = deque()
        self._in_flight = 0
        self._gaps: deque[_Gap] = deque(maxlen=MAX_GAPS)
        # sock_connect bounds TCP connect + TLS handshake; waiting for a pool slot is bounded by
        # the whole request only (a busy pool is not a dead server).
        self._timeout = aiohttp.ClientTimeout(
            total=self.settings.request_timeout_s,
            connect=None,
            sock_connect=self.settings.connect_timeout_s,
        )
        # discovered
        self.state = STATE_NEW
        self.end_device_href: str | None = None
        self.mirror_usage_point_href: str | None = None
        self._mup_url: URL | None = None
        self._edev_url: URL | None = None
        self._time_url: URL | None = None
        self.poll_rate_s = self.settings.default_poll_rate_s
        self.post_rate_s = self.settings.default_post_rate_s
        self.clock_offset_s: float | None = None
        # schedule (monotonic s)
        self._next_attempt = 0.0
        self._next_post = 0.0
        self._next_poll = 0.0
        self._failures = 0
        self._resume = False  # after a transport failure: check the mirror, skip re-discovery
        self._bad_once = False
        self._post_limit = self.settings.max_readings_per_post
        self._stopping = False
        self._flush = False
        # counters
        self.registrations = 0
        self.polls = 0
        self.requests = 0
        self.posts_ok = 0
        self.posts_failed = 0
        self.readings_posted = 0
        self.readings_dropped = 0
        self.readings_rejected = 0
        self.last_post_time: float | None = None
        self.last_error: str | None = None

    # --- queue (any thread) ------------------------------------------------------------------
    def enqueue(self, readings: Sequence[PendingReading]) -> None:
        """Queue intervals (time order); past ``queue_limit`` the oldest are dropped, counted."""
        if not readings:
            return
        with self.lock:
            self._queue.extend(readings)
            self._trim()

    def reject(self, starts: Sequence[int], why: str) -> None:
        """Count rows that cannot be posted (values not finite or outside Int48)."""
        if starts:
            with self.lock:
                self.readings_rejected += len(starts)
                self.last_error = f"{len(starts)} readings rejected: {why}"

    def _trim(self) -> None:  # lock held
        excess = len(self._queue) - self.queue_limit
        if excess <= 0:
            return
        dropped = [self._queue.popleft() for _ in range(excess)]
        self.readings_dropped += excess
        first, last = min(r[0] for r in dropped), max(r[0] for r in dropped)
        merge = self.gap_merge_s if self.gap_merge_s is not None else self.interval_s
        if self._gaps and 0 <= first - self._gaps[-1].last_start_s <= merge:
            gap = self._gaps[-1]
            gap.last_start_s = max(gap.last_start_s, last)
            gap.readings += excess
        else:
            self._gaps.append(_Gap(first, last, excess))

    def _take(self, n: int) -> list[PendingReading]:
        with self.lock:
            items = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
            self._in_flight = len(items)
            return items

    def _settle(self, items: list[PendingReading], accepted: bool) -> None:
        """After a POST: count accepted readings, or put them back at the front of the queue."""
        with self.lock:
            self._in_flight = 0
            if accepted:
                self.readings_posted += len(items)
                return
            self._queue.extendleft(reversed(items))
            self._trim()

    @property
    def queued(self) -> int:
        return len(self._queue) + self._in_flight

    # --- status (any thread) -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """One meter's state for ``/api/ieee2030_5/clients``."""
        with self.lock:
            queued = len(self._queue) + self._in_flight
            gaps = [[g.first_start_s, g.last_start_s, g.readings] for g in self._gaps]
        return {
            "meter_id": self.meter_id,
            "lfdi": self.identity.lfdi,
            "sfdi": self.identity.sfdi,
            "end_device_href": self.end_device_href,
            "mirror_usage_point_href": self.mirror_usage_point_href,
            "registered": self.state == STATE_READY,
            "state": self.state,
            "last_post_time": self.last_post_time,
            "posts_ok": self.posts_ok,
            "posts_failed": self.posts_failed,
            "readings_posted": self.readings_posted,
            "readings_queued": queued,
            "readings_dropped": self.readings_dropped,
            "readings_rejected": self.readings_rejected,
            "gaps": gaps,
            "registrations": self.registrations,
            "polls": self.polls,
            "requests": self.requests,
            "post_rate_s": self.post_rate_s,
            "poll_rate_s": self.poll_rate_s,
            "clock_offset_s": self.clock_offset_s,
            "last_error": self.last_error,
        }

    # --- control (loop thread) ---------------------------------------------------------------
    def request_stop(self) -> None:
        """Post what is queued now (if possible), then end ``run``."""
        self._stopping = True
        self._poke()

    def request_flush(self) -> None:
        """Post what is queued now, ignoring postRate."""
        self._flush = True
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self, session: aiohttp.ClientSession, slots: asyncio.Semaphore | None = None):
        """The client's life: discover, post at postRate, poll at pollRate, recover; until
        ``request_stop`` (then one last attempt to post what is queued) or cancellation."""
        self._session, self._slots = session, slots
        self._wake = asyncio.Event()
        try:
            if self._ssl is None:
                self._ssl = self._make_ssl()
            await self._loop()
        except Refused as exc:  # unusable credentials: nothing to retry
            self._refused(exc)
        finally:
            if self.state != STATE_REFUSED:
                self.state = STATE_STOPPED

    def _make_ssl(self) -> ssl.SSLContext:
        c = self.credentials
        try:
            return client_context(
                c.ca, c.cert_chain, c.key, check_hostname=self.settings.check_hostname
            )
        except ConfigError as exc:
            raise Refused(str(exc)) from None

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
                if await self._guarded(self._post_once()):
                    backlog = self.queued >= self._post_limit
                    if backlog and self.settings.drain_backlog:
                        self._next_post = now
                    else:
                        self._next_post = max(self._next_post + self.post_rate_s, now + 0.001)
                        if self._next_post <= now:
                            self._next_post = now + self.post_rate_s
                continue
            until = self._next_poll
            if self.post_enabled:
                until = min(until, self._next_post)
            await self._sleep(until - now)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _guarded(self, work) -> bool:
        """Run one step; turn its failure into the next state. True when it succeeded."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Refused as exc:
            self._refused(exc)
        except Busy as exc:
            delay = self._backoff()
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, self.settings.backoff_cap_s))
            self.last_error = str(exc)
            if self.state == STATE_READY:
                self._next_post = time.monotonic() + delay
            else:
                self._lost(exc, delay)
        except Gone as exc:  # the first time re-discover at once, then back off
            delay = self._backoff()
            self._lost(exc, 0.0 if self._failures == 1 else delay)
        except TransportError as exc:  # no answer: retry later, re-discover only if forgotten
            self._lost(exc, self._backoff(), resume=True)
        except ProtocolError as exc:
            self._lost(exc, self._backoff())
        except Exception as exc:  # a bug: never let it kill the meter's task
            log.exception("meter %s: unexpected error", self.meter_id)
            self._lost(exc, self._backoff())
        else:
            self._failures = 0
            return True
        return False

    def _backoff(self) -> float:
        self._failures += 1
        s = self.settings
        d = min(s.backoff_cap_s, s.backoff_base_s * 2.0 ** min(self._failures - 1, 30))
        return d / 2 + random.uniform(0, d / 2)

    def _lost(self, exc: BaseException, delay: float, resume: bool = False) -> None:
        was_ready = self.state == STATE_READY
        self.last_error = f"{type(exc).__name__}: {exc}"
        # A meter that was discovered keeps its hrefs through a transport failure and checks its
        # mirror first when it retries (one request instead of a whole discovery: no
        # amplification when the server is merely slow or restarting with its registry).
        self._resume = resume and (self._resume or was_ready) and self._edev_url is not None
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
        wait = max(self.settings.refused_retry_s, self.poll_rate_s)
        self._next_attempt = time.monotonic() + wait
        log.error("meter %s: %s (next attempt in %.0f s)", self.meter_id, exc, wait)

    # --- HTTP --------------------------------------------------------------------------------
    async def _request(self, method: str, url: URL, body: bytes | None = None) -> _Reply:
        assert self._session is not None
        headers = {"Accept": MEDIA_TYPE}
        if body is not None:
            headers["Content-Type"] = MEDIA_TYPE
            if self.settings.observe is not None:
                self.settings.observe(method, str(url), body)
        self.requests += 1
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                ssl=self._ssl,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                data = await self._read_body(resp)
                return _Reply(
                    resp.status, resp.headers.get("Location"), resp.headers.get("Retry-After"), data
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            what = type(exc).__name__
            raise TransportError(f"{method} {url.path}: {what}: {exc}".rstrip(": ")) from None

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.max_response_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise ProtocolError(f"{resp.url.path}: {resp.content_length} byte body over {limit}")
        parts: list[bytes] = []
        size = 0
        while chunk := await resp.content.read(65536):
            size += len(chunk)
            if size > limit:
                raise ProtocolError(f"{resp.url.path}: body over {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def _raise_for(self, reply: _Reply, what: str) -> None:
        """Raise the error class of a non-success answer."""
        s = reply.status
        detail = f"{what} → HTTP {s}"
        if s in (403, 404, 410):
            raise Gone(detail)
        if s == 429 or s >= 500:
            raise Busy(detail, _retry_after(reply.retry_after))
        raise ProtocolError(detail)

    async def _get(self, url: URL, *names: str) -> etree._Element:
        reply = await self._request("GET", url)
        if reply.status != 200:
            self._raise_for(reply, f"GET {url.path}")
        try:
            doc = parse_document(reply.body, self.settings.max_response_bytes, 32)
            expect_root(doc, *names)
        except XmlError as exc:
            raise ProtocolError(f"GET {url.path}: {exc}") from None
        return doc

    def _href(self, doc: etree._Element, link: str, required: bool = True) -> URL | None:
        el = child(doc, link)
        href = el.get("href") if el is not None else None
        if not href:
            if required:
                raise ProtocolError(f"{etree.QName(doc).localname} has no {link}")
            return None
        return self.server.join(URL(href))

    def _local(self, url: URL) -> str:
        """An href as the status shows it: the path when on the server's origin."""
        if url.origin() == self.server.origin():
            return url.raw_path_qs
        return str(url)

    # --- discovery ---------------------------------------------------------------------------
    async def _resume_session(self) -> None:
        """After a transport failure: is the server still holding our mirror (or EndDevice)?
        200 → carry on; 404/403 → Gone → a full discovery (re-registration) follows."""
        url = self._mup_url or self._edev_url
        assert url is not None
        doc = await self._get(url, "MirrorUsagePoint" if self._mup_url else "EndDevice")
        self.post_rate_s = _rate(_text(doc, "postRate"), self.post_rate_s)
        self._resume = False
        now = time.monotonic()
        self.state = STATE_READY
        self._next_post = min(self._next_post, now) if self.queued else self._next_post
        self._next_poll = max(self._next_poll, now)

    async def _discover(self) -> None:
        if self._slots is not None:
            async with self._slots:
                await self._discover_steps()
        else:
            await self._discover_steps()

    async def _discover_steps(self) -> None:
        self.state = STATE_DISCOVERING
        dcap = await self._get(self.server, "DeviceCapability")
        self.poll_rate_s = _rate(dcap.get("pollRate"), self.settings.default_poll_rate_s)
        self._time_url = self._href(dcap, "TimeLink", required=False)
        if self._time_url is not None:
            await self._read_time()
        edev_list = self._href(dcap, "EndDeviceListLink")
        assert edev_list is not None
        mup_list = None  # post mode "off": no mirror either, nothing is posted but the EndDevice
        if self.post_enabled:
            mup_list = self._href(dcap, "MirrorUsagePointListLink")

        edev_url = await self._find_end_device(edev_list) or await self._register(edev_list)
        self._edev_url = edev_url
        self.end_device_href = self._local(edev_url)
        edev = await self._get(edev_url, "EndDevice")
        lfdi = child(edev, "lFDI")
        if lfdi is not None and lfdi.text and normalise_lfdi(lfdi.text) != self.identity.lfdi:
            raise ProtocolError(f"{self.end_device_href} has the lFDI {lfdi.text}, not ours")
        await self._check_pin(edev)
        post_rate = _rate(_text(edev, "postRate"), self.settings.default_post_rate_s)

        if mup_list is not None:
            self._mup_url = await self._create_mirror(mup_list)
            self.mirror_usage_point_href = self._local(self._mup_url)
            mup = await self._get(self._mup_url, "MirrorUsagePoint")
            post_rate = _rate(_text(mup, "postRate"), post_rate)
        self.post_rate_s = post_rate

        now = time.monotonic()
        self.state = STATE_READY
        self.registrations += 1
        self._resume = False
        self._bad_once = False
        self._next_poll = now + self.poll_rate_s
        backlog = self.queued >= self._post_limit
        self._next_post = now if backlog else now + random.uniform(0, self.post_rate_s)
        log.info(
            "meter %s registered as %s, mirror %s, postRate %d s, pollRate %d s",
            self.meter_id,
            self.end_device_href,
            self.mirror_usage_point_href,
            self.post_rate_s,
            self.poll_rate_s,
        )

    async def _read_time(self) -> None:
        assert self._time_url is not None
        sent = time.time()
        doc = await self._get(self._time_url, "Time")
        received = time.time()
        try:
            server_now = read_int(doc, "currentTime", -(2**63), 2**63 - 1, required=True)
        except XmlError as exc:
            raise ProtocolError(f"Time: {exc}") from None
        assert server_now is not None
        self.clock_offset_s = round(server_now - (sent + received) / 2, 3)

    def server_now(self) -> int:
        """The server's clock as far as we know it (epoch s)."""
        return int(time.time() + (self.clock_offset_s or 0.0))

    async def _find_end_device(self, list_url: URL) -> URL | None:
        size = self.settings.list_page_size
        for page in range(self.settings.max_list_pages):
            doc = await self._get(list_url.update_query(s=page * size, l=size), "EndDeviceList")
            items = children(doc, "EndDevice")
            for item in items:
                text = _text(item, "lFDI")
                if text and item.get("href") and _same_lfdi(text, self.identity.lfdi):
                    return self.server.join(URL(item.get("href")))
            total = _attr_int(doc, "all")
            if not items or total is None or (page + 1) * size >= total:
                return None
        return None

    async def _register(self, list_url: URL) -> URL:
        body = end_device_document(self.identity, self.server_now())
        reply = await self._request("POST", list_url, body)
        if reply.status in (200, 201, 204, 409) and reply.location:
            return self.server.join(URL(reply.location))
        if reply.status in (201, 409):  # no Location: look it up
            found = await self._find_end_device(list_url)
            if found is not None:
                return found
            raise ProtocolError(f"POST {list_url.path} → {reply.status} without a Location")
        if reply.status == 403:
            raise Refused(
                f"the server refused to register LFDI {self.identity.lfdi} (HTTP 403): it is not "
                "on the server's allow-list or the certificate is not accepted"
            )
        self._raise_for(reply, f"POST {list_url.path}")
        raise AssertionError("unreachable")

    async def _check_pin(self, edev: etree._Element) -> None:
        if self.pin is None:
            return
        rg_url = self._href(edev, "RegistrationLink", required=False)
        if rg_url is None:
            raise Refused(
                "the server's EndDevice has no RegistrationLink, so its PIN cannot be checked; "
                "configure no PIN to accept this server"
            )
        rg = await self._get(rg_url, "Registration")
        try:
            pin = read_uint(rg, "pIN", 32, required=True)
        except XmlError as exc:
            raise ProtocolError(f"Registration: {exc}") from None
        if pin != self.pin:
            raise Refused(
                f"Registration PIN mismatch: the server at {self.server.origin()} says {pin}, "
                f"this meter is configured with {self.pin}; not mirroring to it (check the "
                "configured PIN or the server URL)"
            )

    async def _create_mirror(self, list_url: URL) -> URL:
        s = self.settings
        mrid = mirror_mrid(self.meter_id, s.pen)
        body = mirror_usage_point_document(
            self.meter_id, self.identity.lfdi, self.interval_s, s.role_flags, s.pen
        )
        reply = await self._request("POST", list_url, body)
        if reply.status in (200, 201, 204) and reply.location:
            return self.server.join(URL(reply.location))
        if reply.status in (200, 201, 204):
            found = await self._find_mirror(list_url, mrid)
            if found is not None:
                return found
            raise ProtocolError(f"POST {list_url.path} → {reply.status}; mirror not in the list")
        if reply.status == 409:
            raise Refused(
                f"MirrorUsagePoint mRID {mrid:032X} of meter {self.meter_id} is mirrored by "
                "another device on this server (HTTP 409)"
            )
        if reply.status == 400:
            raise ProtocolError(f"POST {list_url.path} → 400 (MirrorUsagePoint refused)")
        self._raise_for(reply, f"POST {list_url.path}")
        raise AssertionError("unreachable")

    async def _find_mirror(self, list_url: URL, mrid: int) -> URL | None:
        size = self.settings.list_page_size
        for page in range(self.settings.max_list_pages):
            doc = await self._get(
                list_url.update_query(s=page * size, l=size), "MirrorUsagePointList"
            )
            items = children(doc, "MirrorUsagePoint")
            for item in items:
                try:
                    if read_hex(item, "mRID", 16) == mrid and item.get("href"):
                        return self.server.join(URL(item.get("href")))
                except XmlError:
                    continue
            total = _attr_int(doc, "all")
            if not items or total is None or (page + 1) * size >= total:
                return None
        return None

    # --- steady state ------------------------------------------------------------------------
    async def _poll(self) -> None:
        """Re-read DeviceCapability, Time, the EndDevice and the mirror (rates, liveness)."""
        self._next_poll = time.monotonic() + self.poll_rate_s
        self.polls += 1
        dcap = await self._get(self.server, "DeviceCapability")
        self.poll_rate_s = _rate(dcap.get("pollRate"), self.settings.default_poll_rate_s)
        self._next_poll = time.monotonic() + self.poll_rate_s
        if self._time_url is not None:
            await self._read_time()
        if self._edev_url is not None:
            edev = await self._get(self._edev_url, "EndDevice")
            self.post_rate_s = _rate(_text(edev, "postRate"), self.post_rate_s)
        if self._mup_url is not None:
            mup = await self._get(self._mup_url, "MirrorUsagePoint")
            self.post_rate_s = _rate(_text(mup, "postRate"), self.post_rate_s)

    async def _post_all(self) -> None:
        while self.post_enabled and self._mup_url is not None and self._queue:
            await self._post_once()

    async def _post_once(self) -> None:
        if self._mup_url is None:
            return
        items = self._take(self._post_limit)
        if not items:
            return
        try:
            server_now = self.server_now()
            body = readings_document(
                self.meter_id,
                items,
                self.interval_s,
                server_now,
                server_now + self.post_rate_s,
                self.settings.pen,
            )
            reply = await self._request("POST", self._mup_url, body)
        except BaseException as exc:
            self._settle(items, accepted=False)
            if isinstance(exc, Exception):
                self.posts_failed += 1
            raise
        if 200 <= reply.status < 300:
            self._settle(items, accepted=True)
            self.posts_ok += 1
            self.last_post_time = round(time.time(), 3)
            self._bad_once = False
            return
        self.posts_failed += 1
        what = f"POST {self._mup_url.path} ({len(items)} intervals)"
        if reply.status == 413 and len(items) > 1:  # too large for this server: smaller posts
            self._post_limit = max(1, len(items) // 2)
            self._settle(items, accepted=False)
            raise Busy(f"{what} → HTTP 413; posting at most {self._post_limit} intervals")
        if reply.status in (400, 413, 415, 422):
            if not self._bad_once:  # maybe the server lost the mirror's ReadingTypes: re-create
                self._bad_once = True
                self._settle(items, accepted=False)
                raise Gone(f"{what} → HTTP {reply.status}; re-creating the mirror")
            self._bad_once = False
            self._settle([], accepted=True)
            with self.lock:
                self.readings_rejected += len(items)
            self.last_error = f"{what} → HTTP {reply.status}: readings rejected by the server"
            log.warning("meter %s: %s", self.meter_id, self.last_error)
            return
        self._settle(items, accepted=False)
        self._raise_for(reply, what)


def _text(el: etree._Element, name: str) -> str | None:
    c = child(el, name)
    return c.text.strip() if c is not None and c.text else None


def _attr_int(el: etree._Element, name: str) -> int | None:
    value = el.get(name)
    return int(value) if value is not None and value.isdigit() else None


def _rate(value: str | None, default: int) -> int:
    """A pollRate/postRate (s) from the wire; the default when absent, 0 or not a number."""
    if value is None or not value.strip().isdigit() or int(value) == 0:
        return default
    return int(value)


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value)


def _same_lfdi(text: str, lfdi: str) -> bool:
    try:
        return normalise_lfdi(text) == lfdi
    except ValueError:
        return False


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
    from gtx_ray.ieee2030_5.pki import device_credentials

    creds = device_credentials(certs_dir, meter_id)
    if ca_file is not None:
        if not Path(ca_file).is_file():
            raise ConfigError(f"{ca_file}: IEEE 2030.5 server CA file not found")
        creds = replace(creds, ca=Path(ca_file))
    return MeterClient(meter_id, creds, URL(server_url), interval_s, **kwargs)
