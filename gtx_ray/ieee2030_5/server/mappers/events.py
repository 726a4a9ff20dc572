"""Elements every event document shares: the identified-object header, EventStatus and the
event's interval (Event), randomisation (RandomizableEvent) and the respondable attributes."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import hex_text, leaf, node


def respondable(el: etree._Element, reply_to: str | None, response_required: int) -> None:
    """replyTo and responseRequired attributes (only when a response is asked for)."""
    if response_required:
        el.set("replyTo", reply_to or "")
        el.set("responseRequired", hex_text(response_required, 1))


def identified(el: etree._Element, mrid: int, description: str | None) -> None:
    leaf(el, "mRID", hex_text(mrid, 16))
    leaf(el, "description", description or None)


def event_body(
    el: etree._Element, creation_time: int, status: tuple[int, int], start: int, duration: int
) -> None:
    """creationTime, EventStatus and interval, in schema order (after the header)."""
    leaf(el, "creationTime", creation_time)
    st = node(el, "EventStatus")
    leaf(st, "currentStatus", status[0])
    leaf(st, "dateTime", status[1])
    leaf(st, "potentiallySuperseded", False)
    interval = node(el, "interval")
    leaf(interval, "duration", duration)
    leaf(interval, "start", start)


def randomization(el: etree._Element, duration_s: int, start_s: int) -> None:
    leaf(el, "randomizeDuration", duration_s or None)
    leaf(el, "randomizeStart", start_s or None)
