"""Distributed energy resources: DERPrograms, their DERControls and DefaultDERControl, and the
DER each device reports (DERCapability, DERSettings, DERStatus, DERAvailability).

Pure state and rules (no I/O, no clock: ``now`` is passed in, epoch s). Operators create and
cancel controls and set the default; devices read what is addressed to them and PUT their own
DER records. Rules:
- a control needs at least one mode; each mode within its range (``check_base``), a duration
  of 1 s .. 1 day and randomisation within ±3600 s;
- a new control supersedes the program's earlier controls that overlap it in time, share a
  device category and reach a common device (the newer creationTime wins);
- a cancelled or superseded control stays listed (with its status) until pruned; each program
  keeps at most ``max_controls``, the longest-ended go first;
- each registered device has one DER (id 1) with at most one of each record; ``forget`` drops a
  removed device's. ``changed`` (programs, controls, defaults) and ``dirty`` (LFDIs whose
  records changed) tell the store what to write through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from gtx_ray.ieee2030_5.der import (
    CATEGORY_DER,
    DefaultDerControl,
    DerAvailability,
    DerCapability,
    DerControl,
    DerControlBase,
    DerSettings,
    DerStatus,
    to_power,
)
from gtx_ray.ieee2030_5.events import RESPOND_RECEIVED, RESPOND_SPECIFIC, event_mrid
from gtx_ray.ieee2030_5.server.errors import BadRequest, Conflict, NotFound
from gtx_ray.ieee2030_5.server.event_rules import definition, prune, supersedes

MAX_DURATION_S = 86_400
RANDOMIZE_LIMIT_S = 3_600
MAX_LIMIT_KW = 1_000_000.0
"""Largest CSIP-AUS limit accepted, kW (1 GW)."""
DER_ID = 1
"""Every device has one DER, /edev/{id}/der/1."""
PARTS = ("capability", "settings", "status", "availability")
"""The records a device PUTs on its DER."""


@dataclass(frozen=True, slots=True)
class DerProgram:
    """A program DER controls belong to; primacy: lower wins when programs conflict."""

    id: int
    mrid: int
    description: str
    primacy: int


DEFAULT_PROGRAM = DerProgram(1, event_mrid("derp", 1), "UTCC campus DER", primacy=1)


@dataclass(frozen=True, slots=True)
class DeviceDer:
    """What one device reported about its DER (None: not reported yet)."""

    capability: DerCapability | None = None
    settings: DerSettings | None = None
    status: DerStatus | None = None
    availability: DerAvailability | None = None


def _number(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{name} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be {lo:g}..{hi:g}, got {value}")


def check_base(base: DerControlBase, default: bool = False) -> None:
    """BadRequest naming the field when ``base`` asks for nothing (a control must ask for a
    mode; a default may be empty) or for something out of range."""
    if base.is_empty() and not default:
        raise BadRequest(
            "a DER control needs a mode: connect, energize, fixed_w_pct, max_lim_w_pct, "
            "export_limit_kw, import_limit_kw, generation_limit_kw or load_limit_kw"
        )
    for name in ("connect", "energize"):
        value = getattr(base, name)
        if value is not None and not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false, got {value!r}")
    if base.fixed_w_pct is not None:
        _number("fixed_w_pct", base.fixed_w_pct, -100, 100)
    if base.max_lim_w_pct is not None:
        _number("max_lim_w_pct", base.max_lim_w_pct, 0, 100)
    if base.ramp_s is not None:
        _number("ramp_s", base.ramp_s, 0, 655.35)
    for name in ("export_limit_kw", "import_limit_kw", "generation_limit_kw", "load_limit_kw"):
        value = getattr(base, name)
        if value is not None:
            _number(name, value, 0, MAX_LIMIT_KW)
            to_power(value)


class DerBook:
    """Every DER program, control and default of one server, and the devices' DER records."""

    def __init__(self, max_controls: int = 1_000) -> None:
        self.max_controls = max_controls
        self.programs: dict[int, DerProgram] = {DEFAULT_PROGRAM.id: DEFAULT_PROGRAM}
        self.controls: dict[int, DerControl] = {}
        self.defaults: dict[int, DefaultDerControl] = {}
        self.next_id = 1
        self.devices: dict[str, DeviceDer] = {}
        self.changed = False
        self.dirty: set[str] = set()

    # --- reading ---------------------------------------------------------------------------
    def program(self, program_id: int) -> DerProgram:
        found = self.programs.get(program_id)
        if found is None:
            raise NotFound(f"no DER program {program_id}")
        return found

    def control(self, control_id: int) -> DerControl:
        found = self.controls.get(control_id)
        if found is None:
            raise NotFound(f"no DER control {control_id}")
        return found

    def by_mrid(self, mrid: int) -> DerControl | None:
        return next((c for c in self.controls.values() if c.mrid == mrid), None)

    def controls_of(self, program_id: int, lfdi: str | None = None) -> list[DerControl]:
        """The program's controls (for one device when ``lfdi`` is given): start ascending,
        then the newest creation first."""
        found = [
            c
            for c in self.controls.values()
            if c.program_id == program_id and (lfdi is None or c.applies_to(lfdi))
        ]
        found.sort(key=lambda c: (c.start, -c.creation_time, -c.id))
        return found

    def active_of(self, program_id: int, lfdi: str | None, now: int) -> list[DerControl]:
        """Controls in force at ``now`` (not cancelled or superseded, started, not ended)."""
        return [
            c
            for c in self.controls_of(program_id, lfdi)
            if c.cancelled_s is None and c.superseded_s is None and c.start <= now < c.end
        ]

    def default_of(self, program_id: int) -> DefaultDerControl | None:
        self.program(program_id)
        return self.defaults.get(program_id)

    # --- operator changes ------------------------------------------------------------------
    def create(
        self,
        now: int,
        start: int,
        duration: int,
        base: DerControlBase,
        *,
        program_id: int = DEFAULT_PROGRAM.id,
        description: str = "",
        randomize_start_s: int = 0,
        randomize_duration_s: int = 0,
        device_category: int = CATEGORY_DER,
        targets: frozenset[str] | None = None,
        response_required: int = RESPOND_RECEIVED | RESPOND_SPECIFIC,
        mrid: int | None = None,
        creation_time: int | None = None,
        cancelled_s: int | None = None,
    ) -> DerControl:
        """A new control; BadRequest naming the wrong field, Conflict when ``mrid`` names a
        control that exists with other content (the same content again changes nothing)."""
        self.program(program_id)
        check_base(base)
        if not isinstance(duration, int) or not 1 <= duration <= MAX_DURATION_S:
            raise BadRequest(f"duration_s must be 1..{MAX_DURATION_S} s, got {duration}")
        if not isinstance(start, int) or start < 0:
            raise BadRequest(f"start must be an epoch time in seconds, got {start}")
        for name, value in (
            ("randomize_start_s", randomize_start_s),
            ("randomize_duration_s", randomize_duration_s),
        ):
            if not isinstance(value, int) or not -RANDOMIZE_LIMIT_S <= value <= RANDOMIZE_LIMIT_S:
                raise BadRequest(f"{name} must be -3600..3600 s, got {value}")
        if not isinstance(device_category, int) or not 0 < device_category < 2**32:
            raise BadRequest(
                f"device_category must be a non-empty 32-bit mask, got {device_category}"
            )
        if not isinstance(response_required, int) or not 0 <= response_required <= 0xFF:
            raise BadRequest(f"response_required must be 0..255, got {response_required}")
        if targets is not None and not targets:
            raise BadRequest("targets must name at least one device, or be left out for all")
        if len(description) > 32:
            raise BadRequest(f"description must be at most 32 characters, got {len(description)}")
        control_id = self.next_id
        control = DerControl(
            id=control_id,
            program_id=program_id,
            mrid=event_mrid("derc", program_id, control_id, start) if mrid is None else mrid,
            description=description,
            creation_time=now if creation_time is None else creation_time,
            start=start,
            duration=duration,
            base=base,
            device_category=device_category,
            randomize_start_s=randomize_start_s,
            randomize_duration_s=randomize_duration_s,
            targets=targets,
            response_required=response_required,
            cancelled_s=cancelled_s,  # a control replayed from a scenario that was cancelled
        )
        existing = self.by_mrid(control.mrid)
        if existing is not None:
            if definition(existing) == definition(control):
                return existing
            raise Conflict(f"a DER control with mRID {control.mrid:032X} exists with other content")
        self.next_id += 1
        for other in self.controls_of(program_id):
            if supersedes(control, other):
                self.controls[other.id] = replace(other, superseded_s=now)
        self.controls[control_id] = control
        prune(self.controls, self.max_controls, now)
        self.changed = True
        return control

    def cancel(self, control_id: int, now: int, randomized: bool = False) -> DerControl:
        """Cancel a control (Conflict if it already ended, was cancelled or superseded)."""
        control = self.control(control_id)
        if control.cancelled_s is not None:
            raise Conflict(f"DER control {control_id} was already cancelled")
        if control.superseded_s is not None:
            raise Conflict(f"DER control {control_id} was superseded by a newer control")
        if now >= control.end:
            raise Conflict(f"DER control {control_id} already ended")
        cancelled = replace(control, cancelled_s=now, cancel_randomized=randomized)
        self.controls[control_id] = cancelled
        self.changed = True
        return cancelled

    def set_default(
        self,
        now: int,
        base: DerControlBase,
        *,
        program_id: int = DEFAULT_PROGRAM.id,
        set_grad_w_pct_per_s: float | None = None,
        description: str = "",
        mrid: int | None = None,
    ) -> DefaultDerControl:
        """Replace the program's DefaultDERControl (it may ask for no mode at all). With
        ``mrid`` (a scenario published again) the same content under the same mRID changes
        nothing, so devices see no new default."""
        self.program(program_id)
        check_base(base, default=True)
        if set_grad_w_pct_per_s is not None:
            _number("set_grad_w_pct_per_s", set_grad_w_pct_per_s, 0, 655.35)
        if len(description) > 32:
            raise BadRequest(f"description must be at most 32 characters, got {len(description)}")
        default = DefaultDerControl(
            program_id=program_id,
            mrid=event_mrid("dderc", program_id, now) if mrid is None else mrid,
            description=description,
            base=base,
            set_grad_w_pct_per_s=set_grad_w_pct_per_s,
            updated=now,
        )
        held = self.defaults.get(program_id)
        if held is not None and replace(held, updated=now) == default:
            return held
        self.defaults[program_id] = default
        self.changed = True
        return default

    # --- devices' records ------------------------------------------------------------------
    def device(self, lfdi: str) -> DeviceDer:
        return self.devices.get(lfdi, DeviceDer())

    def put(self, lfdi: str, part: str, value: Any) -> None:
        """Keep ``value`` as the device's ``part`` (one of PARTS), replacing the earlier one."""
        if part not in PARTS:
            raise NotFound(f"no DER record {part}")
        self.devices[lfdi] = replace(self.device(lfdi), **{part: value})
        self.dirty.add(lfdi)

    def forget(self, lfdi: str) -> None:
        """Drop a removed device's records."""
        if self.devices.pop(lfdi, None) is not None:
            self.dirty.add(lfdi)
