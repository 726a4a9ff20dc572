"""MessagingProgram and TextMessage documents (/msg...)."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import leaf, link, node, root, serialize
from gtx_ray.ieee2030_5.events import TextMessage
from gtx_ray.ieee2030_5.models import Page
from gtx_ray.ieee2030_5.server.managers.messaging import MessagePage, MessagingProgramView
from gtx_ray.ieee2030_5.server.mappers.events import event_body, identified, respondable
from gtx_ray.ieee2030_5.server.responses import SET_MESSAGING, reply_to


def program_href(program_id: int) -> str:
    return f"/msg/{program_id}"


def _fill_program(el: etree._Element, v: MessagingProgramView) -> None:
    p = v.program
    identified(el, p.mrid, p.description)
    link(el, "ActiveTextMessageListLink", f"{program_href(p.id)}/acttxt", v.active)
    leaf(el, "locale", p.locale)
    leaf(el, "primacy", p.primacy)
    link(el, "TextMessageListLink", f"{program_href(p.id)}/txt", v.messages)


def render_program_list(page: Page[MessagingProgramView]) -> bytes:
    doc = root(
        "MessagingProgramList",
        "/msg",
        all=page.all,
        results=len(page.items),
        pollRate=page.poll_rate,
    )
    for v in page.items:
        _fill_program(node(doc, "MessagingProgram", program_href(v.program.id)), v)
    return serialize(doc)


def render_program(v: MessagingProgramView) -> bytes:
    doc = root("MessagingProgram", program_href(v.program.id))
    _fill_program(doc, v)
    return serialize(doc)


def message_href(m: TextMessage) -> str:
    return f"{program_href(m.program_id)}/txt/{m.id}"


def _fill_message(el: etree._Element, m: TextMessage, now: int) -> None:
    respondable(el, reply_to(SET_MESSAGING), m.response_required)
    identified(el, m.mrid, None)
    event_body(el, m.creation_time, m.status_at(now), m.start, m.duration)
    leaf(el, "originator", m.originator)
    leaf(el, "priority", m.priority)
    leaf(el, "textMessage", m.text)


def render_message_list(v: MessagePage, active: bool = False) -> bytes:
    doc = root(
        "TextMessageList",
        f"{program_href(v.program_id)}/{'acttxt' if active else 'txt'}",
        all=v.page.all,
        results=len(v.page.items),
    )
    for m in v.page.items:
        _fill_message(node(doc, "TextMessage", message_href(m)), m, v.now)
    return serialize(doc)


def render_message(m: TextMessage, now: int) -> bytes:
    doc = root("TextMessage", message_href(m))
    _fill_message(doc, m, now)
    return serialize(doc)
