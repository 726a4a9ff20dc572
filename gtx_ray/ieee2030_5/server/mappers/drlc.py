"""DemandResponseProgram(List) and EndDeviceControl(List) documents (/dr...)."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import hex_text, leaf, link, node, root, serialize
from gtx_ray.ieee2030_5.events import UNIT_KW, EndDeviceControl
from gtx_ray.ieee2030_5.models import Page
from gtx_ray.ieee2030_5.server.managers.drlc import EventPage, ProgramView
from gtx_ray.ieee2030_5.server.mappers.events import (
    event_body,
    identified,
    randomization,
    respondable,
)
from gtx_ray.ieee2030_5.server.responses import SET_DRLC, reply_to


def program_href(program_id: int) -> str:
    return f"/dr/{program_id}"


def _fill_program(el: etree._Element, v: ProgramView) -> None:
    p = v.program
    identified(el, p.mrid, p.description)
    link(el, "ActiveEndDeviceControlListLink", f"{program_href(p.id)}/actedc", v.active)
    link(el, "EndDeviceControlListLink", f"{program_href(p.id)}/edc", v.events)
    leaf(el, "primacy", p.primacy)


def render_program_list(page: Page[ProgramView]) -> bytes:
    doc = root(
        "DemandResponseProgramList",
        "/dr",
        all=page.all,
        results=len(page.items),
        pollRate=page.poll_rate,
    )
    for v in page.items:
        _fill_program(node(doc, "DemandResponseProgram", program_href(v.program.id)), v)
    return serialize(doc)


def render_program(v: ProgramView) -> bytes:
    doc = root("DemandResponseProgram", program_href(v.program.id))
    _fill_program(doc, v)
    return serialize(doc)


def event_href(e: EndDeviceControl) -> str:
    return f"{program_href(e.program_id)}/edc/{e.id}"


def _fill_event(el: etree._Element, e: EndDeviceControl, now: int) -> None:
    respondable(el, reply_to(SET_DRLC), e.response_required)
    identified(el, e.mrid, e.description)
    event_body(el, e.creation_time, e.status_at(now), e.start, e.duration)
    randomization(el, e.randomize_duration_s, e.randomize_start_s)
    leaf(el, "deviceCategory", hex_text(e.device_category, 4))
    leaf(el, "drProgramMandatory", e.mandatory)
    shed = e.shed
    if shed.duty_cycle_pct is not None:
        leaf(node(el, "DutyCycle"), "normalValue", shed.duty_cycle_pct)
    leaf(el, "loadShiftForward", False)
    if shed.cooling_offset_c is not None or shed.reduction_pct is not None:
        offset = node(el, "Offset")
        leaf(offset, "coolingOffset", shed.cooling_offset_c)
        if shed.reduction_pct is not None:
            leaf(offset, "loadAdjustmentPercentageOffset", round(shed.reduction_pct * 100))
    if shed.reduction_kw is not None:
        target = node(el, "TargetReduction")
        leaf(target, "type", UNIT_KW)
        leaf(target, "value", shed.reduction_kw)


def render_event_list(v: EventPage, active: bool = False) -> bytes:
    """An EndDeviceControlList (the active list has the same type at another href)."""
    path = "actedc" if active else "edc"
    doc = root(
        "EndDeviceControlList",
        f"{program_href(v.program_id)}/{path}",
        all=v.page.all,
        results=len(v.page.items),
    )
    for e in v.page.items:
        _fill_event(node(doc, "EndDeviceControl", event_href(e)), e, v.now)
    return serialize(doc)


def render_event(e: EndDeviceControl, now: int) -> bytes:
    doc = root("EndDeviceControl", event_href(e))
    _fill_event(doc, e, now)
    return serialize(doc)
