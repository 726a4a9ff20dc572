"""Responses a meter posts to an event's ``replyTo`` (IEEE 2030.5 Response / DrResponse).

``due_statuses`` decides, from an event's ``responseRequired`` bits and what happened to it,
which Table 27 statuses the meter owes; ``response_document`` writes one.
"""

from __future__ import annotations

from gtx_ray.ieee2030_5.codec import hex_text, leaf, root, serialize
from gtx_ray.ieee2030_5.events import (
    EVENT_CANCELLED,
    EVENT_COMPLETED,
    EVENT_RECEIVED,
    EVENT_STARTED,
    EVENT_SUPERSEDED,
    RESPOND_RECEIVED,
    RESPOND_SPECIFIC,
)


def due_statuses(
    response_required: int,
    received: bool,
    started: bool,
    completed: bool,
    cancelled: bool,
    superseded: bool,
) -> list[int]:
    """The statuses owed, in the order they happen: received (bit 0); started, completed,
    cancelled or superseded (bit 1). A cancelled or superseded event that never started owes
    only that; one that started owes started and then cancelled (it did not complete)."""
    out = []
    if received and response_required & RESPOND_RECEIVED:
        out.append(EVENT_RECEIVED)
    if response_required & RESPOND_SPECIFIC:
        if started:
            out.append(EVENT_STARTED)
        if cancelled:
            out.append(EVENT_CANCELLED)
        elif superseded:
            out.append(EVENT_SUPERSEDED)
        elif completed:
            out.append(EVENT_COMPLETED)
    return out


def response_document(kind: str, lfdi: str, subject: int, status: int, created_s: int) -> bytes:
    """A ``kind`` (Response, DrResponse, TextResponse, ...) document in schema order."""
    doc = root(kind)
    leaf(doc, "createdDateTime", created_s)
    leaf(doc, "endDeviceLFDI", lfdi)
    leaf(doc, "status", status)
    leaf(doc, "subject", hex_text(subject, 16))
    return serialize(doc)
