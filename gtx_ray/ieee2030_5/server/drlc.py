"""Demand response and load control state: DemandResponsePrograms and their EndDeviceControls.

Pure state and rules (no I/O, no clock: ``now`` is passed in, epoch s). Operators create and
cancel events; devices read the events addressed to them. Rules:
- an event needs a load-shed form (duty cycle, cooling offset, % or kW reduction), a duration
  of 1 s .. 1 day and randomisation within ±3600 s (the schema's OneHourRangeType);
- a new event supersedes the program's earlier events that overlap it in time, share a device
  category and reach a common device (IEEE 2030.5 §12.1.3.1: the newer creationTime wins);
- a cancelled or superseded event stays listed (with its status) until it is pruned; each
  program keeps at most ``max_events``, the longest-ended go first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gtx_ray.ieee2030_5.events import (
    CATEGORY_MANAGED_CI_LOADS,
    RESPOND_RECEIVED,
    RESPOND_SPECIFIC,
    EndDeviceControl,
    LoadShed,
    event_mrid,
)
from gtx_ray.ieee2030_5.server.errors import BadRequest, Conflict, NotFound
from gtx_ray.ieee2030_5.server.event_rules import definition, prune, supersedes

MAX_DURATION_S = 86_400
RANDOMIZE_LIMIT_S = 3_600


@dataclass(frozen=True, slots=True)
class DemandResponseProgram:
    """A program events belong to; primacy: lower wins when programs conflict."""

    id: int
    mrid: int
    description: str
    primacy: int


DEFAULT_PROGRAM = DemandResponseProgram(
    1, event_mrid("drp", 1), "UTCC campus demand response", primacy=1
)


def check_shed(shed: LoadShed) -> None:
    """BadRequest naming the field when ``shed`` asks for nothing or for something impossible."""
    if shed.is_empty():
        raise BadRequest(
            "an event needs a load-shed form: duty_cycle_pct, cooling_offset_c, "
            "reduction_pct or reduction_kw"
        )
    if shed.duty_cycle_pct is not None and not 0 <= shed.duty_cycle_pct <= 100:
        raise BadRequest(f"duty_cycle_pct must be 0..100, got {shed.duty_cycle_pct}")
    if shed.cooling_offset_c is not None and not 0 < shed.cooling_offset_c <= 10:
        raise BadRequest(f"cooling_offset_c must be 1..10 °C, got {shed.cooling_offset_c}")
    if shed.reduction_pct is not None and not 0 < shed.reduction_pct <= 100:
        raise BadRequest(f"reduction_pct must be in (0, 100], got {shed.reduction_pct}")
    if shed.reduction_kw is not None and not 0 < shed.reduction_kw <= 65_535:
        raise BadRequest(f"reduction_kw must be 1..65535 kW, got {shed.reduction_kw}")


class DemandResponseBook:
    """Every program and event of one server. ``changed`` is set by every change (the store
    writes the book through and clears it)."""

    def __init__(self, max_events: int = 1_000) -> None:
        self.max_events = max_events
        self.programs: dict[int, DemandResponseProgram] = {DEFAULT_PROGRAM.id: DEFAULT_PROGRAM}
        self.events: dict[int, EndDeviceControl] = {}
        self.next_id = 1
        self.changed = False

    # --- reading ---------------------------------------------------------------------------
    def program(self, program_id: int) -> DemandResponseProgram:
        found = self.programs.get(program_id)
        if found is None:
            raise NotFound(f"no demand response program {program_id}")
        return found

    def event(self, event_id: int) -> EndDeviceControl:
        found = self.events.get(event_id)
        if found is None:
            raise NotFound(f"no end device control {event_id}")
        return found

    def by_mrid(self, mrid: int) -> EndDeviceControl | None:
        return next((e for e in self.events.values() if e.mrid == mrid), None)

    def events_of(self, program_id: int, lfdi: str | None = None) -> list[EndDeviceControl]:
        """The program's events (for one device when ``lfdi`` is given) in list order: start
        ascending, then the newest creation first."""
        found = [
            e
            for e in self.events.values()
            if e.program_id == program_id and (lfdi is None or e.applies_to(lfdi))
        ]
        found.sort(key=lambda e: (e.start, -e.creation_time, -e.id))
        return found

    def active_of(self, program_id: int, lfdi: str | None, now: int) -> list[EndDeviceControl]:
        """Events in force at ``now`` (not cancelled or superseded, started, not ended)."""
        return [
            e
            for e in self.events_of(program_id, lfdi)
            if e.cancelled_s is None and e.superseded_s is None and e.start <= now < e.end
        ]

    # --- operator changes ------------------------------------------------------------------
    def create(
        self,
        now: int,
        start: int,
        duration: int,
        shed: LoadShed,
        *,
        program_id: int = DEFAULT_PROGRAM.id,
        description: str = "",
        randomize_start_s: int = 0,
        randomize_duration_s: int = 0,
        device_category: int = CATEGORY_MANAGED_CI_LOADS,
        targets: frozenset[str] | None = None,
        response_required: int = RESPOND_RECEIVED | RESPOND_SPECIFIC,
        mrid: int | None = None,
        creation_time: int | None = None,
        cancelled_s: int | None = None,
    ) -> EndDeviceControl:
        """A new event; raises BadRequest naming the field that is wrong, Conflict when
        ``mrid`` names an event that exists with other content."""
        self.program(program_id)
        check_shed(shed)
        if not 1 <= duration <= MAX_DURATION_S:
            raise BadRequest(f"duration_s must be 1..{MAX_DURATION_S} s, got {duration}")
        if start < 0:
            raise BadRequest(f"start must be an epoch time in seconds, got {start}")
        for name, value in (
            ("randomize_start_s", randomize_start_s),
            ("randomize_duration_s", randomize_duration_s),
        ):
            if not -RANDOMIZE_LIMIT_S <= value <= RANDOMIZE_LIMIT_S:
                raise BadRequest(f"{name} must be -3600..3600 s, got {value}")
        if not 0 < device_category < 2**32:
            raise BadRequest(
                f"device_category must be a non-empty 32-bit mask, got {device_category}"
            )
        if targets is not None and not targets:
            raise BadRequest("targets must name at least one device, or be left out for all")
        if len(description) > 32:
            raise BadRequest(f"description must be at most 32 characters, got {len(description)}")
        event_id = self.next_id
        created = now if creation_time is None else creation_time
        event = EndDeviceControl(
            id=event_id,
            program_id=program_id,
            mrid=event_mrid("edc", program_id, event_id, start) if mrid is None else mrid,
            description=description,
            creation_time=created,
            start=start,
            duration=duration,
            shed=shed,
            device_category=device_category,
            randomize_start_s=randomize_start_s,
            randomize_duration_s=randomize_duration_s,
            targets=targets,
            response_required=response_required,
            cancelled_s=cancelled_s,  # an event replayed from a scenario that was cancelled
        )
        existing = self.by_mrid(event.mrid)
        if existing is not None:
            if definition(existing) == definition(event):
                return existing  # the same event again (a scenario replayed): nothing changes
            raise Conflict(f"an event with mRID {event.mrid:032X} exists with other content")
        self.next_id += 1
        for other in self.events_of(program_id):
            if supersedes(event, other):
                self.events[other.id] = replace(other, superseded_s=now)
        self.events[event_id] = event
        prune(self.events, self.max_events, now)
        self.changed = True
        return event

    def cancel(self, event_id: int, now: int, randomized: bool = False) -> EndDeviceControl:
        """Cancel an event (Conflict if it already ended, was cancelled or superseded)."""
        event = self.event(event_id)
        if event.cancelled_s is not None:
            raise Conflict(f"event {event_id} was already cancelled")
        if event.superseded_s is not None:
            raise Conflict(f"event {event_id} was superseded by a newer event")
        if now >= event.end:
            raise Conflict(f"event {event_id} already ended")
        cancelled = replace(event, cancelled_s=now, cancel_randomized=randomized)
        self.events[event_id] = cancelled
        self.changed = True
        return cancelled
