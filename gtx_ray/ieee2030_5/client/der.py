"""Distributed energy resources, the meter's side: a meter with PV and/or a battery reports its
DER and follows the DERControls and the DefaultDERControl it is assigned.

- Each poll: read every DERProgramList linked (DeviceCapability, FunctionSetAssignments); keep
  the DefaultDERControl of the program with the lowest primacy that has one and every
  DERControl whose ``deviceCategory`` shares a bit with the meter's, each with its program's
  primacy; post DERControlResponses to the control's ``replyTo`` as ``responseRequired`` asks
  (received when first seen; started, completed, cancelled or superseded as simulated time,
  ``advance``, and the control's status say; each once per control).
- Then, once after registration (again if the meter's EndDevice changes): follow the
  EndDevice's DERListLink to its DER and PUT a DERCapability and DERSettings made from the
  meter's own ratings (``DerRatings``: inverter kW, battery kWh and kW). A server that refuses
  them fails the poll (it backs off and tries again) but the controls were learned first.
- Last, PUT DERStatus and DERAvailability from the meter's latest state (``observe``), when it
  has a newer one than it sent; ``connected`` there means no control the meter follows
  disconnects or de-energises it at that time.
- Between polls, when the operating state changes (connected or not, the inverter's status,
  generating or not, charging / discharging / holding: everything DERStatus says but the state
  of charge), the new DERStatus and DERAvailability are pushed at once (``push_at``, ``push``;
  the actor wakes the meter), so the server's DERStatus reflects every change of state. At most
  one push per ``MIN_PUSH_INTERVAL_S`` per meter: in a run faster than real time, changes
  closer together than that are reported as the state at the push (``state_changes`` counts
  them all, ``status_pushes`` the pushes).

What the meter does with the controls is the model's business (``controls()`` and ``default()``
hand them to ``MeterFunctionSets``). Thread-safety: the actor's thread calls ``controls``,
``default``, ``advance`` and ``observe``; the client's event loop calls ``poll``. Shared state is
replaced whole under a lock.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace

from yarl import URL

from gtx_ray.ieee2030_5.client.discovery import Links
from gtx_ray.ieee2030_5.client.errors import Gone
from gtx_ray.ieee2030_5.client.event_documents import Respondable
from gtx_ray.ieee2030_5.client.responses import answer_events, retire
from gtx_ray.ieee2030_5.client.session import Session, rate
from gtx_ray.ieee2030_5.codec import children, read_uint
from gtx_ray.ieee2030_5.der import (
    DER_TYPE_OTHER_STORAGE,
    DER_TYPE_PV,
    DER_TYPE_PV_AND_STORAGE,
    DOE_EXP_LIM_W,
    DOE_GEN_LIM_W,
    DOE_IMP_LIM_W,
    DOE_LOAD_LIM_W,
    MODE_CHARGE,
    MODE_CONNECT,
    MODE_DISCHARGE,
    MODE_ENERGIZE,
    MODE_FIXED_W,
    MODE_MAX_LIM_W,
    DefaultDerControl,
    DerAvailability,
    DerCapability,
    DerControl,
    DerSettings,
    DerStatus,
)
from gtx_ray.ieee2030_5.der_documents import (
    parse_default_der_control,
    parse_der_control,
    render_availability,
    render_capability,
    render_settings,
    render_status,
)

DEFAULT_POLL_RATE_S = 900
MIN_PUSH_INTERVAL_S = 5.0
"""Wall seconds between two pushes of a changed DERStatus of one meter (bounds the load a fleet
in an accelerated run puts on the server)."""
KEEP_AFTER_END_S = 86_400
"""A control no longer listed is forgotten this long after its end (s)."""
MAX_CONTROLS = 1_000
DEFAULT_SET_GRAD_W_PCT_PER_S = 0.28
"""setGradW the meters report: AS/NZS 4777.2:2020's default ramp rate, 16.67 % of rated power
per minute (the CSIP-AUS reference), ≈ 0.28 %/s."""
DOE_ALL = DOE_EXP_LIM_W | DOE_IMP_LIM_W | DOE_GEN_LIM_W | DOE_LOAD_LIM_W

# ConnectStatusType bits
CONNECTED, AVAILABLE, OPERATING = 1 << 0, 1 << 1, 1 << 2
# InverterStatusType
INVERTER_OFF, INVERTER_SLEEPING, INVERTER_MPPT, INVERTER_THROTTLED = 1, 2, 4, 5
# OperationalModeStatusType
MODE_STATUS_OFF, MODE_STATUS_OPERATIONAL = 1, 2
# StorageModeStatusType
STORAGE_CHARGING, STORAGE_DISCHARGING, STORAGE_HOLDING = 0, 1, 2


@dataclass(frozen=True, slots=True)
class DerRatings:
    """A meter's DER: PV inverter kW (0 without PV), battery kWh and kW (0 without one)."""

    inverter_kw: float
    battery_kwh: float = 0.0
    battery_kw: float = 0.0

    @property
    def has_pv(self) -> bool:
        return self.inverter_kw > 0

    @property
    def has_battery(self) -> bool:
        return self.battery_kwh > 0 and self.battery_kw > 0


@dataclass(frozen=True, slots=True)
class DerReading:
    """The meter's latest state (one interval's reading): time (epoch s, the interval's start),
    PV output kW, battery level % (None without a battery), PV curtailed kW, battery power kW
    (+ charging, − discharging; 0 without a battery)."""

    time_s: int
    pv_kw: float
    battery_level_pct: float | None
    curtailed_kw: float
    battery_kw: float


def capability_of(r: DerRatings) -> DerCapability:
    """What the meter can do, from its ratings: connect and energize always; opModMaxLimW with
    PV; opModFixedW (and charge / discharge) with a battery; the four CSIP-AUS limits."""
    modes = MODE_CONNECT | MODE_ENERGIZE
    if r.has_pv:
        modes |= MODE_MAX_LIM_W
    if r.has_battery:
        modes |= MODE_FIXED_W | MODE_CHARGE | MODE_DISCHARGE
    if r.has_pv:
        der_type = DER_TYPE_PV_AND_STORAGE if r.has_battery else DER_TYPE_PV
    else:
        der_type = DER_TYPE_OTHER_STORAGE
    battery_kw = r.battery_kw if r.has_battery else None
    return DerCapability(
        modes_supported=modes,
        der_type=der_type,
        rated_w_kw=r.inverter_kw if r.has_pv else r.battery_kw,
        rated_wh_kwh=r.battery_kwh if r.has_battery else None,
        max_charge_rate_kw=battery_kw,
        max_discharge_rate_kw=battery_kw,
        doe_modes_supported=DOE_ALL,
    )


def settings_of(
    r: DerRatings, now: int, set_grad_w_pct_per_s: float = DEFAULT_SET_GRAD_W_PCT_PER_S
) -> DerSettings:
    """How the meter's DER is set up: everything it supports enabled, at its ratings."""
    cap = capability_of(r)
    return DerSettings(
        updated_time=now,
        set_max_w_kw=cap.rated_w_kw,
        set_grad_w_pct_per_s=set_grad_w_pct_per_s,
        modes_enabled=cap.modes_supported,
        set_max_wh_kwh=cap.rated_wh_kwh,
        set_max_charge_rate_kw=cap.max_charge_rate_kw,
        set_max_discharge_rate_kw=cap.max_discharge_rate_kw,
        doe_modes_enabled=DOE_ALL,
    )


def status_of(r: DerRatings, reading: DerReading, connected: bool) -> DerStatus:
    """DERStatus of a reading: connect statuses (PV: genConnectStatus, battery:
    storConnectStatus), inverter status (off, sleeping, MPPT, throttled when curtailed), the
    operational mode (off when disconnected), state of charge and storage mode."""
    gen = stor = inverter = soc = storage = None
    if r.has_pv:
        gen = AVAILABLE | (CONNECTED | (OPERATING if reading.pv_kw > 0 else 0) if connected else 0)
        if not connected:
            inverter = INVERTER_OFF
        elif reading.curtailed_kw > 0:
            inverter = INVERTER_THROTTLED
        else:
            inverter = INVERTER_MPPT if reading.pv_kw > 0 else INVERTER_SLEEPING
    if r.has_battery:
        moving = abs(reading.battery_kw) > 1e-9
        stor = AVAILABLE | (CONNECTED | (OPERATING if moving else 0) if connected else 0)
        if reading.battery_level_pct is not None and math.isfinite(reading.battery_level_pct):
            soc = min(max(reading.battery_level_pct, 0.0), 100.0)
        if not moving:
            storage = STORAGE_HOLDING
        else:
            storage = STORAGE_CHARGING if reading.battery_kw > 0 else STORAGE_DISCHARGING
    return DerStatus(
        reading_time=reading.time_s,
        gen_connect_status=gen,
        inverter_status=inverter,
        operational_mode_status=MODE_STATUS_OPERATIONAL if connected else MODE_STATUS_OFF,
        state_of_charge_pct=soc,
        storage_mode_status=storage,
        stor_connect_status=stor,
    )


def availability_of(r: DerRatings, reading: DerReading, connected: bool) -> DerAvailability:
    """DERAvailability of a reading: the active power it could deliver now (PV output with what
    is curtailed, plus the battery's rating while it holds energy; 0 disconnected) and, with a
    battery, how long it could discharge at its rating (s)."""
    stored_kwh = None
    level = reading.battery_level_pct
    if r.has_battery and level is not None and math.isfinite(level):
        stored_kwh = max(level, 0.0) / 100.0 * r.battery_kwh
    available_kw = 0.0
    if connected:
        available_kw = max(reading.pv_kw, 0.0) + max(reading.curtailed_kw, 0.0)
        if stored_kwh:
            available_kw += r.battery_kw
    return DerAvailability(
        reading_time=reading.time_s,
        availability_duration_s=(
            None if stored_kwh is None else round(stored_kwh / r.battery_kw * 3600.0)
        ),
        stat_w_avail_kw=round(available_kw, 3),
    )


@dataclass
class _Known:
    control: DerControl
    respond: Respondable
    primacy: int
    posted: set[int] = field(default_factory=set)


def _disconnected(control: DerControl, t: int) -> bool:
    """The control takes the DER off the grid at ``t`` (scheduled window, cancellation cut)."""
    b = control.base
    if b.connect is not False and b.energize is not False:
        return False
    stops = [s for s in (control.cancelled_s, control.superseded_s, control.end) if s is not None]
    return control.start <= t < min(stops)


class DerPoller:
    """One meter's DER function set. ``device_category``: the meter's DeviceCategoryType bits (a
    control applies when it shares one); ``ratings``: its DER."""

    name = "der"

    def __init__(self, device_category: int, ratings: DerRatings) -> None:
        self.device_category = device_category
        self.ratings = ratings
        self._lock = threading.Lock()
        self._known: dict[int, _Known] = {}
        self._default: tuple[DefaultDerControl, int] | None = None
        self._sim_now: int | None = None
        self._reading: DerReading | None = None
        self._reported_for: str | None = None  # the EndDevice whose DER got the capability
        self._der_hrefs: dict[str, URL | None] = {}
        self._status_sent_for: int | None = None
        self._state_sent: DerStatus | None = None  # the operating state the server holds
        self._state_seen: DerStatus | None = None  # that of the latest reading observed
        self._next_push_at = 0.0  # monotonic s
        self.state_changes = 0
        self.status_pushes = 0
        self.responses_posted = 0
        self.responses_failed = 0
        self.records_put = 0

    # --- the actor's side ----------------------------------------------------------------
    def controls(self) -> list[tuple[DerControl, int]]:
        """The controls this meter follows with their program's primacy (cancelled and
        superseded ones included: they say when a control stops)."""
        with self._lock:
            return [(k.control, k.primacy) for k in self._known.values()]

    def default(self) -> DefaultDerControl | None:
        """The DefaultDERControl of the meter's program with the lowest primacy (None: none)."""
        with self._lock:
            return None if self._default is None else self._default[0]

    def advance(self, sim_now_s: int) -> None:
        """Simulated time reached ``sim_now_s`` (epoch s): started/completed become due."""
        with self._lock:
            self._sim_now = sim_now_s if self._sim_now is None else max(self._sim_now, sim_now_s)

    def observe(self, reading: DerReading) -> bool:
        """The meter's latest state (after a step); sent as DERStatus / DERAvailability. True
        when its operating state differs from the one the server holds (a push is wanted)."""
        state = self.state_of(reading)
        with self._lock:
            if self._reading is not None and reading.time_s < self._reading.time_s:
                return False
            self._reading = reading
            if self._state_seen is not None and state != self._state_seen:
                self.state_changes += 1
            self._state_seen = state
            return bool(self._der_hrefs) and state != self._state_sent

    def state_of(self, reading: DerReading) -> DerStatus:
        """The operating state of a reading: its DERStatus without the time and the state of
        charge (those change every interval)."""
        status = status_of(self.ratings, reading, self.connected_at(reading.time_s))
        return replace(status, reading_time=0, state_of_charge_pct=None)

    def push_at(self) -> float | None:
        """When to push the latest state (monotonic s): None while the server holds it."""
        with self._lock:
            changed = self._state_seen is not None and self._state_seen != self._state_sent
            if not changed or not self._der_hrefs:
                return None
            return self._next_push_at

    async def push(self, session: Session) -> None:
        """PUT the DERStatus and DERAvailability of the latest reading (its state changed)."""
        if await self._send_state(session):
            self.status_pushes += 1

    def connected_at(self, t: int) -> bool:
        """False while a control the meter follows disconnects or de-energises its DER."""
        with self._lock:
            known = list(self._known.values())
        return not any(_disconnected(k.control, t) for k in known)

    def detail(self) -> dict[str, object]:
        with self._lock:
            known = len(self._known)
            has_default = self._default is not None
        return {
            "controls": known,
            "default": has_default,
            "reported": self._reported_for is not None,
            "records_put": self.records_put,
            "state_changes": self.state_changes,
            "status_pushes": self.status_pushes,
            "responses_posted": self.responses_posted,
            "responses_failed": self.responses_failed,
        }

    # --- the client's side ---------------------------------------------------------------
    async def poll(self, session: Session, links: Links, now: int) -> float:
        poll_rate = None
        seen: dict[int, tuple[DerControl, Respondable, int]] = {}
        default: tuple[DefaultDerControl, int] | None = None
        for list_url in links.all("DERProgramListLink"):
            size = session.settings.list_page_size
            doc = await session.get(list_url.update_query(s=0, l=size), "DERProgramList")
            rate_s = rate(doc.get("pollRate"), DEFAULT_POLL_RATE_S)
            poll_rate = rate_s if poll_rate is None else min(poll_rate, rate_s)
            for program in children(doc, "DERProgram"):
                primacy = read_uint(program, "primacy", 8) or 0
                dderc_url = session.href(program, "DefaultDERControlLink", required=False)
                if dderc_url is not None and (default is None or primacy < default[1]):
                    try:
                        doc_default = await session.get(dderc_url, "DefaultDERControl")
                    except Gone:  # linked but not set (yet)
                        doc_default = None
                    if doc_default is not None:
                        default = (parse_default_der_control(doc_default), primacy)
                derc_url = session.href(program, "DERControlListLink", required=False)
                if derc_url is None:
                    continue
                items = await session.read_list(derc_url, "DERControlList", "DERControl")
                for item in items:
                    control, respond = parse_der_control(item)
                    if not control.device_category & self.device_category:
                        continue
                    old = seen.get(control.mrid)
                    if old is None or primacy < old[2]:
                        seen[control.mrid] = (control, respond, primacy)
        self._merge(seen, default, now)  # first: a server refusing the records below
        await self._respond(session, now)  # does not keep the meter from its controls
        await self._report(session, links, now)
        await self._send_state(session)
        return float(poll_rate or DEFAULT_POLL_RATE_S)

    async def _put(self, session: Session, url: URL, body: bytes, what: str) -> None:
        reply = await session.request("PUT", url, body)
        if reply.status not in (200, 201, 204):
            session.raise_for(reply, f"PUT {what}")
        self.records_put += 1

    async def _report(self, session: Session, links: Links, now: int) -> None:
        """PUT DERCapability and DERSettings once per EndDevice (its DER found by links)."""
        end_device = links.end_device.href
        der_list_url = links.end_device.link("DERListLink")
        if end_device is None or der_list_url is None:
            return
        if self._reported_for == str(end_device):
            return
        ders = await session.read_list(der_list_url, "DERList", "DER")
        der = next((d for d in ders if d.get("href")), None)
        if der is None:
            return
        hrefs = {
            part: session.href(der, f"DER{part}Link", required=False)
            for part in ("Capability", "Settings", "Status", "Availability")
        }
        if hrefs["Capability"] is not None:
            body = render_capability(
                session.local(hrefs["Capability"]), capability_of(self.ratings)
            )
            await self._put(session, hrefs["Capability"], body, "DERCapability")
        if hrefs["Settings"] is not None:
            settings = settings_of(self.ratings, now)
            body = render_settings(session.local(hrefs["Settings"]), settings)
            await self._put(session, hrefs["Settings"], body, "DERSettings")
        self._der_hrefs = hrefs
        self._reported_for = str(end_device)
        self._status_sent_for = None
        self._state_sent = None

    async def _send_state(self, session: Session) -> bool:
        """PUT DERStatus and DERAvailability of the latest reading, when not sent yet. True
        when sent."""
        with self._lock:
            reading = self._reading
        if reading is None or reading.time_s == self._status_sent_for or not self._der_hrefs:
            return False
        connected = self.connected_at(reading.time_s)
        state = self.state_of(reading)
        status_url = self._der_hrefs.get("Status")
        if status_url is not None:
            body = render_status(
                session.local(status_url), status_of(self.ratings, reading, connected)
            )
            await self._put(session, status_url, body, "DERStatus")
        avail_url = self._der_hrefs.get("Availability")
        if avail_url is not None:
            body = render_availability(
                session.local(avail_url), availability_of(self.ratings, reading, connected)
            )
            await self._put(session, avail_url, body, "DERAvailability")
        with self._lock:
            self._status_sent_for = reading.time_s
            self._state_sent = state
            self._next_push_at = time.monotonic() + MIN_PUSH_INTERVAL_S
        return True

    def _merge(
        self,
        seen: dict[int, tuple[DerControl, Respondable, int]],
        default: tuple[DefaultDerControl, int] | None,
        now: int,
    ) -> None:
        with self._lock:
            known = dict(self._known)
            for mrid, (control, respond, primacy) in seen.items():
                old = known.get(mrid)
                known[mrid] = _Known(control, respond, primacy, old.posted if old else set())
            retire(known, set(seen), (self._sim_now or now) - KEEP_AFTER_END_S, MAX_CONTROLS)
            self._known = known
            self._default = default

    async def _respond(self, session: Session, now: int) -> None:
        with self._lock:
            known = list(self._known.values())
            sim_now = self._sim_now
        await answer_events(session, known, sim_now, now, "DERControlResponse", self)
