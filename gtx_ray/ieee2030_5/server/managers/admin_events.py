"""Operator actions on the event function sets (for the admin API on the REST port and
scenario files): create, list and cancel demand-response events, tariff changes and campus
notices, and read the Responses devices posted. Trusted callers (the REST layer guards them);
answers are plain dicts of JSON types. Times are epoch s, prices THB/kWh, reductions kW or %.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from gtx_ray.ieee2030_5.der import DerControl, DerControlBase
from gtx_ray.ieee2030_5.events import (
    RESPONSE_NAMES,
    STATUS_NAMES,
    EndDeviceControl,
    LoadShed,
    Response,
    TextMessage,
    TimeOfUseRates,
    mrid_hex,
)
from gtx_ray.ieee2030_5.identity import normalise_lfdi
from gtx_ray.ieee2030_5.server.errors import BadRequest
from gtx_ray.ieee2030_5.server.registry import Registry
from gtx_ray.ieee2030_5.server.responses import SET_DRLC, SET_MESSAGING


def dr_event_dict(e: EndDeviceControl, now: int, registry: Registry | None = None) -> dict:
    status, at = e.status_at(now)
    label = "completed" if status == 1 and now >= e.end else STATUS_NAMES[status]
    out = {
        "id": e.id,
        "program_id": e.program_id,
        "mrid": mrid_hex(e.mrid),
        "description": e.description,
        "creation_time": e.creation_time,
        "start": e.start,
        "duration_s": e.duration,
        "end": e.end,
        "status": label,
        "status_time": at,
        "randomize_start_s": e.randomize_start_s,
        "randomize_duration_s": e.randomize_duration_s,
        "device_category": e.device_category,
        "targets": sorted(e.targets) if e.targets is not None else None,
        "response_required": e.response_required,
        **{k: v for k, v in asdict(e.shed).items() if v is not None},
    }
    if registry is not None:
        out["responses"] = _response_counts(registry.responses.of_set(SET_DRLC, subject=e.mrid))
    return out


def _response_counts(responses: list[Response]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in responses:
        name = RESPONSE_NAMES.get(r.status or 0, f"status_{r.status}")
        counts[name] = counts.get(name, 0) + 1
    return counts


def _targets(targets: list[str] | None) -> frozenset[str] | None:
    if targets is None:
        return None
    try:
        return frozenset(normalise_lfdi(t) for t in targets)
    except ValueError as exc:
        raise BadRequest(f"targets: {exc}") from None


def create_dr_event(
    registry: Registry,
    now: int,
    start: int,
    duration_s: int,
    duty_cycle_pct: int | None = None,
    cooling_offset_c: int | None = None,
    reduction_pct: float | None = None,
    reduction_kw: int | None = None,
    targets: list[str] | None = None,
    **options: Any,
) -> dict:
    """A new EndDeviceControl; ``targets`` are LFDIs (None: every device). ``options``:
    description, randomize_start_s, randomize_duration_s, device_category, response_required,
    program_id, mrid (hex), creation_time."""
    if "mrid" in options and options["mrid"] is not None:
        options["mrid"] = int(options["mrid"], 16)
    shed = LoadShed(duty_cycle_pct, cooling_offset_c, reduction_pct, reduction_kw)
    event = registry.drlc.create(now, start, duration_s, shed, targets=_targets(targets), **options)
    return dr_event_dict(event, now, registry)


def cancel_dr_event(
    registry: Registry, now: int, event_id: int, randomized: bool = False, at: int | None = None
) -> dict:
    """Cancel at ``at`` (the simulation's time, epoch s) or, when not given, ``now``."""
    now = now if at is None else at
    return dr_event_dict(registry.drlc.cancel(event_id, now, randomized), now, registry)


def list_dr_events(
    registry: Registry, now: int, active_only: bool = False, at: int | None = None
) -> list[dict]:
    """Every event, or those in force, at ``at`` (the simulation's time) or ``now``."""
    now = now if at is None else at
    events = [e for p in registry.drlc.programs for e in registry.drlc.events_of(p)]
    if active_only:
        events = [e for e in events if e.status_at(now)[0] == 1 and now < e.end]
    return [dr_event_dict(e, now, registry) for e in events]


def get_dr_event(registry: Registry, now: int, event_id: int, at: int | None = None) -> dict:
    now = now if at is None else at
    return dr_event_dict(registry.drlc.event(event_id), now, registry)


def add_tariff(registry: Registry, now: int, **fields: Any) -> dict:
    """A tariff in force from ``effective_from`` (see ``TimeOfUseRates``)."""
    try:
        rates = TimeOfUseRates(**fields)
    except TypeError as exc:
        raise BadRequest(f"tariff: {exc}") from None
    return asdict(registry.pricing.add(rates))


def list_tariffs(registry: Registry, now: int, at: int | None = None) -> dict:
    """The tariff history, the one in force at ``at`` (the simulation's time) or ``now``, and
    that day's intervals (import prices)."""
    now = now if at is None else at
    current = registry.pricing.in_force(now)
    day = 86_400
    off = registry.pricing.utc_offset_s
    today = (now + off) // day * day - off
    return {
        "tariffs": [asdict(r) for r in registry.pricing.rates],
        "in_force": asdict(current) if current else None,
        "today": [asdict(i) for i in registry.pricing.intervals(1, today, today + day)],
    }


def remove_tariff(registry: Registry, now: int, effective_from: int) -> None:
    if len(registry.pricing.rates) <= 1:
        raise BadRequest("the last tariff cannot be removed; add another first")
    registry.pricing.remove(effective_from)


def tariff_intervals(
    registry: Registry, now: int, start: int, end: int, rc_id: int = 1
) -> list[dict]:
    if not 0 < end - start <= 400 * 86_400:
        raise BadRequest("end - start must be 1 s .. 400 days")
    return [asdict(i) for i in registry.pricing.intervals(rc_id, start, end)]


def message_dict(m: TextMessage, now: int, registry: Registry | None = None) -> dict:
    status, at = m.status_at(now)
    label = "completed" if status == 1 and now >= m.start + m.duration else STATUS_NAMES[status]
    out = {
        "id": m.id,
        "mrid": mrid_hex(m.mrid),
        "start": m.start,
        "duration_s": m.duration,
        "text": m.text,
        "priority": m.priority,
        "originator": m.originator,
        "status": label,
        "status_time": at,
    }
    if registry is not None:
        out["responses"] = _response_counts(
            registry.responses.of_set(SET_MESSAGING, subject=m.mrid)
        )
    return out


def create_message(
    registry: Registry, now: int, start: int, duration_s: int, text: str, **options: Any
) -> dict:
    message = registry.messaging.create(now, start, duration_s, text, **options)
    return message_dict(message, now, registry)


def cancel_message(registry: Registry, now: int, message_id: int, at: int | None = None) -> dict:
    now = now if at is None else at
    return message_dict(registry.messaging.cancel(message_id, now), now, registry)


def list_messages(
    registry: Registry, now: int, active_only: bool = False, at: int | None = None
) -> list[dict]:
    now = now if at is None else at
    book = registry.messaging
    messages = [
        m
        for p in book.programs
        for m in (book.active_of(p, now) if active_only else book.messages_of(p))
    ]
    return [message_dict(m, now, registry) for m in messages]


def list_responses(
    registry: Registry,
    now: int,
    set_id: int = SET_DRLC,
    subject: str | None = None,
    limit: int = 1000,
) -> list[dict]:
    """Newest first, at most ``limit``; ``subject``: an event's mRID (hex)."""
    wanted = int(subject, 16) if subject else None
    out = []
    for r in registry.responses.of_set(set_id, subject=wanted)[:limit]:
        row = asdict(r)
        row["subject"] = mrid_hex(r.subject)
        row["status_name"] = RESPONSE_NAMES.get(r.status or 0)
        out.append(row)
    return out


def export_scenario(registry: Registry, now: int) -> dict:
    """Everything operators put on this server as a scenario file (``gtx_ray.scenario``):
    replaying it with ``--scenario`` gives the meters the same events (same mRIDs), tariff
    changes and notices. Targets are LFDIs here (the REST layer names meters where it can);
    a cancelled or superseded event carries ``cancelled_at``."""
    events = [
        _scenario_row(e, e.shed)
        for e in sorted(registry.drlc.events.values(), key=lambda e: (e.start, e.id))
    ]
    tariffs = [asdict(r) for r in registry.pricing.rates]
    messages = [
        {
            "start": m.start,
            "duration_s": m.duration,
            "text": m.text,
            "priority": m.priority,
            **({"originator": m.originator} if m.originator else {}),
        }
        for p in registry.messaging.programs
        for m in registry.messaging.messages_of(p)
        if m.cancelled_s is None
    ]
    return {
        "description": f"exported from the IEEE 2030.5 server at {now}",
        "dr_events": events,
        "tariffs": tariffs,
        "messages": messages,
        **export_der(registry),
    }


def _scenario_row(
    event: EndDeviceControl | DerControl, asks: LoadShed | DerControlBase, **extra: Any
) -> dict[str, Any]:
    """An event as a scenario file entry: its window, what it asks (the set fields of
    ``asks``), targeting, randomisation, mRID and, once cancelled or superseded, when."""
    row: dict[str, Any] = {
        "start": event.start,
        "duration_s": event.duration,
        **{k: v for k, v in asdict(asks).items() if v is not None},
        "device_category": event.device_category,
        "randomize_start_s": event.randomize_start_s,
        "randomize_duration_s": event.randomize_duration_s,
        "description": event.description,
        "mrid": mrid_hex(event.mrid),
        **extra,
    }
    if event.targets is not None:
        row["targets"] = sorted(event.targets)
    stop = [s for s in (event.cancelled_s, event.superseded_s) if s is not None]
    if stop:
        row["cancelled_at"] = min(stop)
    return row


def export_der(registry: Registry) -> dict[str, list[dict]]:
    """The DER controls (each with its program's primacy) and the programs' defaults (lowest
    primacy first, the one a device in several programs follows) as scenario entries."""
    book = registry.der
    controls = [
        _scenario_row(
            c,
            c.base,
            primacy=book.program(c.program_id).primacy,
            created_at=c.creation_time,
        )
        for c in sorted(book.controls.values(), key=lambda c: (c.start, c.id))
    ]
    defaults = []
    for program in sorted(book.programs.values(), key=lambda p: (p.primacy, p.id)):
        d = book.default_of(program.id)
        if d is None:
            continue
        modes = {k: v for k, v in asdict(d.base).items() if v is not None and k != "ramp_s"}
        if d.set_grad_w_pct_per_s is not None:
            modes["set_grad_w_pct_per_s"] = d.set_grad_w_pct_per_s
        defaults.append({**modes, "description": d.description, "mrid": mrid_hex(d.mrid)})
    return {"der_controls": controls, "der_defaults": defaults}
