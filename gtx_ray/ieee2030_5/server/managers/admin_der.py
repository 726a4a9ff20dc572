"""Operator actions on the DER function set (for the admin API on the REST port): create, list
and cancel DERControls, set and read a program's DefaultDERControl, and read what each device
reported about its DER. Trusted callers (the REST layer guards them); answers are plain dicts
of JSON types. Times epoch s, powers kW, percentages %, ramp times s (see ``der``).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from gtx_ray.ieee2030_5.der import DefaultDerControl, DerControl, DerControlBase
from gtx_ray.ieee2030_5.events import STATUS_NAMES, mrid_hex
from gtx_ray.ieee2030_5.server.der import DEFAULT_PROGRAM, PARTS
from gtx_ray.ieee2030_5.server.errors import BadRequest
from gtx_ray.ieee2030_5.server.managers.admin_events import _response_counts, _targets
from gtx_ray.ieee2030_5.server.registry import Registry
from gtx_ray.ieee2030_5.server.responses import SET_DER

MODES = tuple(f.name for f in fields(DerControlBase))
"""The DERControlBase fields an operator may give (see ``der.DerControlBase``)."""
CONTROL_OPTIONS = frozenset(
    {
        "description",
        "randomize_start_s",
        "randomize_duration_s",
        "device_category",
        "response_required",
        "program_id",
        "mrid",
        "creation_time",
        "cancelled_s",
    }
)


def _modes(values: dict[str, Any]) -> DerControlBase:
    return DerControlBase(**{k: v for k, v in values.items() if k in MODES})


def _base_dict(base: DerControlBase) -> dict[str, Any]:
    return {k: v for k, v in asdict(base).items() if v is not None}


def der_control_dict(c: DerControl, now: int, registry: Registry | None = None) -> dict:
    status, at = c.status_at(now)
    label = "completed" if status == 1 and now >= c.end else STATUS_NAMES[status]
    out = {
        "id": c.id,
        "program_id": c.program_id,
        "mrid": mrid_hex(c.mrid),
        "description": c.description,
        "creation_time": c.creation_time,
        "start": c.start,
        "duration_s": c.duration,
        "end": c.end,
        "status": label,
        "status_time": at,
        "randomize_start_s": c.randomize_start_s,
        "randomize_duration_s": c.randomize_duration_s,
        "device_category": c.device_category,
        "targets": sorted(c.targets) if c.targets is not None else None,
        "response_required": c.response_required,
        "modes": _base_dict(c.base),
    }
    if registry is not None:
        out["responses"] = _response_counts(registry.responses.of_set(SET_DER, subject=c.mrid))
    return out


def default_dict(d: DefaultDerControl) -> dict:
    return {
        "program_id": d.program_id,
        "mrid": mrid_hex(d.mrid),
        "description": d.description,
        "set_grad_w_pct_per_s": d.set_grad_w_pct_per_s,
        "updated": d.updated,
        "modes": _base_dict(d.base),
    }


def _hex_mrid(value: Any) -> int:
    try:
        return int(value, 16)
    except (TypeError, ValueError):
        raise BadRequest(f"mrid must be hex, got {value!r}") from None


def create_der_control(
    registry: Registry,
    now: int,
    start: int,
    duration_s: int,
    targets: list[str] | None = None,
    **values: Any,
) -> dict:
    """A new DERControl; ``targets`` are LFDIs (None: every device). ``values``: the modes
    (``MODES``) and options: description, randomize_start_s, randomize_duration_s,
    device_category, response_required, program_id, mrid (hex), creation_time, cancelled_s (a
    control replayed from a scenario, cancelled then)."""
    unknown = sorted(set(values) - set(MODES) - CONTROL_OPTIONS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a DER control field")
    options = {k: v for k, v in values.items() if k in CONTROL_OPTIONS and v is not None}
    if "mrid" in options:
        options["mrid"] = _hex_mrid(options["mrid"])
    control = registry.der.create(
        now, start, duration_s, _modes(values), targets=_targets(targets), **options
    )
    return der_control_dict(control, now, registry)


def cancel_der_control(
    registry: Registry, now: int, control_id: int, randomized: bool = False, at: int | None = None
) -> dict:
    """Cancel at ``at`` (the simulation's time, epoch s) or, when not given, ``now``."""
    now = now if at is None else at
    return der_control_dict(registry.der.cancel(control_id, now, randomized), now, registry)


def list_der_controls(
    registry: Registry, now: int, active_only: bool = False, at: int | None = None
) -> list[dict]:
    """Every control, or those in force, at ``at`` (the simulation's time) or ``now``."""
    now = now if at is None else at
    book = registry.der
    controls = [
        c
        for p in book.programs
        for c in (book.active_of(p, None, now) if active_only else book.controls_of(p))
    ]
    return [der_control_dict(c, now, registry) for c in controls]


def get_der_control(registry: Registry, now: int, control_id: int, at: int | None = None) -> dict:
    now = now if at is None else at
    return der_control_dict(registry.der.control(control_id), now, registry)


def set_default_der_control(
    registry: Registry,
    now: int,
    program_id: int = DEFAULT_PROGRAM.id,
    set_grad_w_pct_per_s: float | None = None,
    description: str = "",
    mrid: str | None = None,
    **modes: Any,
) -> dict:
    """Replace the program's DefaultDERControl with ``modes`` (``MODES``) and setGradW;
    ``mrid`` (hex): keep this mRID (a scenario's default, published again unchanged)."""
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a DER control mode")
    default = registry.der.set_default(
        now,
        _modes(modes),
        program_id=program_id,
        set_grad_w_pct_per_s=set_grad_w_pct_per_s,
        description=description,
        mrid=None if mrid is None else _hex_mrid(mrid),
    )
    return default_dict(default)


def get_default_der_control(
    registry: Registry, now: int, program_id: int = DEFAULT_PROGRAM.id
) -> dict | None:
    """The program's DefaultDERControl, or None when the operator has not set one."""
    found = registry.der.default_of(program_id)
    return default_dict(found) if found is not None else None


def list_der_devices(registry: Registry, now: int) -> list[dict]:
    """Each registered device's DER as it reported it: capability, settings, status and
    availability (None until it PUT that record), by device id."""
    out = []
    for device in registry.devices():
        record = registry.der.device(device.lfdi)
        row: dict[str, Any] = {"device_id": device.id, "lfdi": device.lfdi}
        for part in PARTS:
            value = getattr(record, part)
            row[part] = asdict(value) if value is not None else None
        out.append(row)
    return out
