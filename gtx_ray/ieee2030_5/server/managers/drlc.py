"""Demand response and load control for devices: programs, their events, the active ones.

A device reads every program; of the events it sees those addressed to it (or to every
device). Whether an event's device category matches the device is the device's decision (as
the standard has it), so the lists are not filtered by category.
"""

from __future__ import annotations

from dataclasses import dataclass

from gtx_ray.ieee2030_5.events import EndDeviceControl
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import Page, PageRequest
from gtx_ray.ieee2030_5.server.drlc import DemandResponseProgram
from gtx_ray.ieee2030_5.server.errors import NotFound
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate, paginate
from gtx_ray.ieee2030_5.server.registry import Registry


@dataclass(frozen=True, slots=True)
class ProgramView:
    """A program with the counts its list links carry (as the caller sees them)."""

    program: DemandResponseProgram
    events: int
    active: int


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of events and ``now`` (epoch s), which decides each event's status."""

    program_id: int
    page: Page[EndDeviceControl]
    now: int


def _view(registry: Registry, program: DemandResponseProgram, lfdi: str, now: int) -> ProgramView:
    book = registry.drlc
    return ProgramView(
        program,
        len(book.events_of(program.id, lfdi)),
        len(book.active_of(program.id, lfdi, now)),
    )


def list_programs(
    registry: Registry, caller: DeviceIdentity, now: int, page: PageRequest
) -> Page[ProgramView]:
    views = [_view(registry, p, caller.lfdi, now) for p in registry.drlc.programs.values()]
    return paginate(views, page, poll_rate=caller_poll_rate(registry, caller))


def get_program(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int
) -> ProgramView:
    return _view(registry, registry.drlc.program(program_id), caller.lfdi, now)


def list_events(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, page: PageRequest
) -> EventPage:
    registry.drlc.program(program_id)
    events = registry.drlc.events_of(program_id, caller.lfdi)
    return EventPage(program_id, paginate(events, page, lambda e: e.creation_time), now)


def list_active_events(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, page: PageRequest
) -> EventPage:
    registry.drlc.program(program_id)
    events = registry.drlc.active_of(program_id, caller.lfdi, now)
    return EventPage(program_id, paginate(events, page), now)


def get_event(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, event_id: int
) -> tuple[EndDeviceControl, int]:
    """The event and ``now``; 404 when it is another program's or not addressed to the caller."""
    event = registry.drlc.events.get(event_id)
    if event is None or event.program_id != program_id or not event.applies_to(caller.lfdi):
        raise NotFound(f"no end device control {event_id} in program {program_id} for you")
    return event, now
