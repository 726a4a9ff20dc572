"""Demand response and load control, the meter's side: poll the DemandResponsePrograms it is
assigned, keep the EndDeviceControls meant for its device category, answer them.

Each poll reads every DemandResponseProgramList linked from DeviceCapability and the meter's
FunctionSetAssignments, then each program's EndDeviceControlList (paged, bounded), and keeps
the events whose ``deviceCategory`` shares a bit with the meter's. What the meter does with an
event is the simulator's business (``controls()`` hands them to the meter model); what it owes
the server is here: Responses to the event's ``replyTo`` as ``responseRequired`` asks —
received when first seen; started, completed, cancelled or superseded as simulated time
(``advance``) and the event's status say. Each status is posted once per event.

Thread-safety: the actor's thread calls ``controls`` and ``advance``; the client's event loop
calls ``poll``. Shared state is replaced whole under a lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from gtx_ray.ieee2030_5.client.discovery import Links
from gtx_ray.ieee2030_5.client.event_documents import Respondable, parse_end_device_control
from gtx_ray.ieee2030_5.client.responses import answer_events, retire
from gtx_ray.ieee2030_5.client.session import Session, rate
from gtx_ray.ieee2030_5.codec import children
from gtx_ray.ieee2030_5.events import EndDeviceControl

DEFAULT_POLL_RATE_S = 900
KEEP_AFTER_END_S = 86_400
"""An event no longer listed is forgotten this long after its end (s)."""
MAX_EVENTS = 1_000


@dataclass
class _Known:
    control: EndDeviceControl
    respond: Respondable
    posted: set[int] = field(default_factory=set)


class DemandResponsePoller:
    """One meter's demand-response function set. ``device_category``: the meter's
    DeviceCategoryType bits (an event applies when it shares one)."""

    name = "drlc"

    def __init__(self, device_category: int) -> None:
        self.device_category = device_category
        self._lock = threading.Lock()
        self._known: dict[int, _Known] = {}
        self._sim_now: int | None = None
        self.responses_posted = 0
        self.responses_failed = 0

    # --- the actor's side ----------------------------------------------------------------
    def controls(self) -> list[EndDeviceControl]:
        """The events this meter follows (cancelled and superseded ones included: they say
        when shedding stops)."""
        with self._lock:
            return [k.control for k in self._known.values()]

    def advance(self, sim_now_s: int) -> None:
        """Simulated time reached ``sim_now_s`` (epoch s): started/completed become due."""
        with self._lock:
            self._sim_now = sim_now_s if self._sim_now is None else max(self._sim_now, sim_now_s)

    def detail(self) -> dict[str, object]:
        with self._lock:
            known = list(self._known.values())
        return {
            "events": len(known),
            "responses_posted": self.responses_posted,
            "responses_failed": self.responses_failed,
        }

    # --- the client's side ---------------------------------------------------------------
    async def poll(self, session: Session, links: Links, now: int) -> float:
        poll_rate = None
        seen: dict[int, tuple[EndDeviceControl, Respondable]] = {}
        for list_url in links.all("DemandResponseProgramListLink"):
            size = session.settings.list_page_size
            doc = await session.get(list_url.update_query(s=0, l=size), "DemandResponseProgramList")
            rate_s = rate(doc.get("pollRate"), DEFAULT_POLL_RATE_S)
            poll_rate = rate_s if poll_rate is None else min(poll_rate, rate_s)
            for program in children(doc, "DemandResponseProgram"):
                edc_url = session.href(program, "EndDeviceControlListLink", required=False)
                if edc_url is None:
                    continue
                items = await session.read_list(edc_url, "EndDeviceControlList", "EndDeviceControl")
                for item in items:
                    control, respond = parse_end_device_control(item)
                    if control.device_category & self.device_category:
                        seen[control.mrid] = (control, respond)
        self._merge(seen, now)
        await self._respond(session, now)
        return float(poll_rate or DEFAULT_POLL_RATE_S)

    def _merge(self, seen: dict[int, tuple[EndDeviceControl, Respondable]], now: int) -> None:
        with self._lock:
            known = dict(self._known)
            for mrid, (control, respond) in seen.items():
                old = known.get(mrid)
                known[mrid] = _Known(control, respond, old.posted if old else set())
            retire(known, set(seen), (self._sim_now or now) - KEEP_AFTER_END_S, MAX_EVENTS)
            self._known = known

    async def _respond(self, session: Session, now: int) -> None:
        with self._lock:
            known = list(self._known.values())
            sim_now = self._sim_now
        await answer_events(session, known, sim_now, now, "DrResponse", self)
