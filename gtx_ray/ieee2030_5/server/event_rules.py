"""Rules every event book shares (demand response's EndDeviceControls, DER's DERControls):
what an operator defined, when a newer event supersedes an older one, and how a program's
events are bounded. The events are frozen dataclasses with id, program_id, start, end,
creation_time, device_category, targets, cancelled_s, cancel_randomized and superseded_s."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

E = TypeVar("E")


def definition(event: E) -> E:
    """What an operator defined: without the id and what happened to the event since."""
    return replace(event, id=0, cancelled_s=None, cancel_randomized=False, superseded_s=None)  # type: ignore[type-var]


def supersedes(new: Any, old: Any) -> bool:
    """IEEE 2030.5 §12.1.3.1: a newer event overlapping an older one in time, for a common
    device category and a common device, supersedes it (cancelled or superseded ones stay)."""
    if old.cancelled_s is not None or old.superseded_s is not None:
        return False
    overlap = new.start < old.end and old.start < new.end
    same_kind = bool(new.device_category & old.device_category)
    reach = new.targets is None or old.targets is None or bool(new.targets & old.targets)
    return overlap and same_kind and reach and new.creation_time >= old.creation_time


def prune(events: dict[int, Any], max_per_program: int, now: int) -> None:
    """Keep at most ``max_per_program`` events per program: the longest-ended go first
    (events not ended yet are never dropped)."""
    by_program: dict[int, list[Any]] = {}
    for e in events.values():
        by_program.setdefault(e.program_id, []).append(e)
    for kept in by_program.values():
        excess = len(kept) - max_per_program
        if excess <= 0:
            continue
        ended = sorted((e for e in kept if e.end <= now), key=lambda e: e.end)
        for e in ended[:excess]:
            del events[e.id]
