"""DER for devices: programs, their controls (all, active), the DefaultDERControl, and each
device's own DER (/edev/{id}/der/1) with the records it PUTs.

A device reads every program; of the controls it sees those addressed to it (or to every
device); whether a control's device category matches is the device's decision. Its DER and
records are its own: another device's answer 404, as its EndDevice does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gtx_ray.ieee2030_5.der import DefaultDerControl, DerControl
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import Page, PageRequest, Updated
from gtx_ray.ieee2030_5.server.der import DER_ID, PARTS, DerProgram, DeviceDer
from gtx_ray.ieee2030_5.server.errors import NotFound
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate, paginate
from gtx_ray.ieee2030_5.server.managers.edev import get_end_device
from gtx_ray.ieee2030_5.server.registry import Registry

PART_PATHS = {"capability": "dercap", "settings": "derg", "status": "ders", "availability": "dera"}
"""The href segment of each DER record under /edev/{id}/der/1."""


@dataclass(frozen=True, slots=True)
class ProgramView:
    """A program with the counts its list links carry (as the caller sees them)."""

    program: DerProgram
    controls: int
    active: int
    has_default: bool


@dataclass(frozen=True, slots=True)
class ControlPage:
    """A page of controls and ``now`` (epoch s), which decides each control's status."""

    program_id: int
    page: Page[DerControl]
    now: int


@dataclass(frozen=True, slots=True)
class DerView:
    """A device's DER: its EndDevice id and what it has reported."""

    device_id: int
    der: DeviceDer
    programs: int


def _view(registry: Registry, program: DerProgram, lfdi: str, now: int) -> ProgramView:
    book = registry.der
    return ProgramView(
        program,
        len(book.controls_of(program.id, lfdi)),
        len(book.active_of(program.id, lfdi, now)),
        program.id in book.defaults,
    )


def list_programs(
    registry: Registry, caller: DeviceIdentity, now: int, page: PageRequest
) -> Page[ProgramView]:
    views = [_view(registry, p, caller.lfdi, now) for p in registry.der.programs.values()]
    return paginate(views, page, poll_rate=caller_poll_rate(registry, caller))


def get_program(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int
) -> ProgramView:
    return _view(registry, registry.der.program(program_id), caller.lfdi, now)


def list_controls(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, page: PageRequest
) -> ControlPage:
    registry.der.program(program_id)
    controls = registry.der.controls_of(program_id, caller.lfdi)
    return ControlPage(program_id, paginate(controls, page, lambda c: c.creation_time), now)


def list_active_controls(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, page: PageRequest
) -> ControlPage:
    registry.der.program(program_id)
    controls = registry.der.active_of(program_id, caller.lfdi, now)
    return ControlPage(program_id, paginate(controls, page), now)


def get_control(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int, control_id: int
) -> tuple[DerControl, int]:
    """The control and ``now``; 404 when it is another program's or not for the caller."""
    control = registry.der.controls.get(control_id)
    if control is None or control.program_id != program_id or not control.applies_to(caller.lfdi):
        raise NotFound(f"no DER control {control_id} in program {program_id} for you")
    return control, now


def get_default(
    registry: Registry, caller: DeviceIdentity, now: int, program_id: int
) -> DefaultDerControl:
    found = registry.der.default_of(program_id)
    if found is None:
        raise NotFound(f"DER program {program_id} has no default control")
    return found


def list_der(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int, page: PageRequest
) -> Page[DerView]:
    """The caller's DER list: one DER per device."""
    view = get_der(registry, caller, now, device_id, DER_ID)
    return paginate([view], page, poll_rate=caller_poll_rate(registry, caller))


def get_der(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int, der_id: int
) -> DerView:
    get_end_device(registry, caller, now, device_id)
    if der_id != DER_ID:
        raise NotFound(f"no DER {der_id} on device {device_id}")
    return DerView(device_id, registry.der.device(caller.lfdi), len(registry.der.programs))


def list_associated_programs(
    registry: Registry,
    caller: DeviceIdentity,
    now: int,
    device_id: int,
    der_id: int,
    page: PageRequest,
) -> Page[ProgramView]:
    """The programs that apply to the caller's DER (every program of the campus)."""
    get_der(registry, caller, now, device_id, der_id)
    return list_programs(registry, caller, now, page)


def get_part(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int, der_id: int, part: str
) -> Any:
    """One of the caller's DER records; 404 until it has PUT it."""
    view = get_der(registry, caller, now, device_id, der_id)
    if part not in PARTS:
        raise NotFound(f"no DER record {part}")
    value = getattr(view.der, part)
    if value is None:
        raise NotFound(f"device {device_id} has not sent its DER {part} yet")
    return value


def put_part(
    registry: Registry,
    caller: DeviceIdentity,
    now: int,
    device_id: int,
    der_id: int,
    part: str,
    value: Any,
) -> Updated:
    """Keep a record the caller PUT on its own DER (parsed and checked by the mapper)."""
    get_der(registry, caller, now, device_id, der_id)
    registry.der.put(caller.lfdi, part, value)
    return Updated(f"/edev/{device_id}/der/{der_id}/{PART_PATHS[part]}")
