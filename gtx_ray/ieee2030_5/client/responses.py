"""Responses a meter posts to an event's ``replyTo`` (IEEE 2030.5 Response / DrResponse).

``due_statuses`` decides, from an event's ``responseRequired`` bits and what happened to it,
which Table 27 statuses the meter owes; ``response_document`` writes one.
"""

from __future__ import annotations

from typing import Any, Protocol

from gtx_ray.ieee2030_5.client.errors import ClientError
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


class Answered(Protocol):
    """An event a poller keeps: the event (start, end, mRID, cancelled_s, superseded_s), where
    and whether to respond, and the statuses already posted."""

    control: Any
    respond: Any
    posted: set[int]


class ResponseCounts(Protocol):
    responses_posted: int
    responses_failed: int


async def answer_events(
    session: Any,
    known: list[Answered],
    sim_now: int | None,
    now: int,
    kind: str,
    counts: ResponseCounts,
) -> None:
    """Post each event's owed statuses (``due_statuses``) not posted yet, as ``kind`` documents
    dated ``sim_now`` (the simulated time reached; ``now`` before there is one); counted in
    ``counts``. A failure raises (``ClientError``) after counting: the poller backs off."""
    for k in known:
        c = k.control
        stopped = min(s for s in (c.cancelled_s, c.superseded_s, c.end) if s is not None)
        reached = sim_now is not None
        owed = due_statuses(
            k.respond.response_required,
            received=True,
            started=reached and sim_now >= c.start and stopped > c.start,
            completed=reached and sim_now >= c.end,
            cancelled=c.cancelled_s is not None,
            superseded=c.superseded_s is not None,
        )
        for status in owed:
            if status in k.posted or not k.respond.reply_to:
                continue
            body = response_document(kind, session.identity.lfdi, c.mrid, status, sim_now or now)
            try:
                reply = await session.request("POST", session.join(k.respond.reply_to), body)
            except ClientError:
                counts.responses_failed += 1
                raise
            if reply.status not in (200, 201, 204):
                counts.responses_failed += 1
                session.raise_for(reply, f"POST {kind}")
            k.posted.add(status)
            counts.responses_posted += 1


def retire(known: dict[int, Answered], listed: set[int], horizon_s: int, limit: int) -> None:
    """Forget events no longer listed that ended before ``horizon_s`` (epoch s), then, past
    ``limit``, the ones that end first."""
    for mrid in [m for m, k in known.items() if m not in listed and k.control.end < horizon_s]:
        del known[mrid]
    if len(known) > limit:
        for mrid in sorted(known, key=lambda m: known[m].control.end)[: len(known) - limit]:
            del known[mrid]
