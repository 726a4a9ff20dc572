"""DER documents the server renders: DERProgram(List), DERControl(List), DefaultDERControl
(/derp...) and the device's DER(List) (/edev/{id}/der...). The DERControlBase they carry and the
DERCapability, DERSettings, DERStatus and DERAvailability a device PUTs are written and read by
``gtx_ray.ieee2030_5.der_documents`` (shared with the meters; re-exported here).
"""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import hex_text, leaf, link, node, root, serialize
from gtx_ray.ieee2030_5.der import DefaultDerControl, DerControl
from gtx_ray.ieee2030_5.der_documents import (
    PARSERS,
    RENDERERS,
    fill_base,
    hundredths,
    parse_availability,
    parse_capability,
    parse_settings,
    parse_status,
    render_availability,
    render_capability,
    render_settings,
    render_status,
)
from gtx_ray.ieee2030_5.models import Page
from gtx_ray.ieee2030_5.server.der import DEFAULT_PROGRAM
from gtx_ray.ieee2030_5.server.managers.der import (
    PART_PATHS,
    ControlPage,
    DerView,
    ProgramView,
)
from gtx_ray.ieee2030_5.server.mappers.events import (
    event_body,
    identified,
    randomization,
    respondable,
)
from gtx_ray.ieee2030_5.server.responses import SET_DER, reply_to

__all__ = [
    "PARSERS",
    "RENDERERS",
    "parse_availability",
    "parse_capability",
    "parse_settings",
    "parse_status",
    "render_availability",
    "render_capability",
    "render_settings",
    "render_status",
]


def program_href(program_id: int) -> str:
    return f"/derp/{program_id}"


def control_href(c: DerControl) -> str:
    return f"{program_href(c.program_id)}/derc/{c.id}"


def der_href(device_id: int, der_id: int = 1) -> str:
    return f"/edev/{device_id}/der/{der_id}"


# --- building ----------------------------------------------------------------------------


def _fill_program(el: etree._Element, v: ProgramView) -> None:
    p = v.program
    href = program_href(p.id)
    identified(el, p.mrid, p.description)
    link(el, "ActiveDERControlListLink", f"{href}/actderc", v.active)
    if v.has_default:
        link(el, "DefaultDERControlLink", f"{href}/dderc")
    link(el, "DERControlListLink", f"{href}/derc", v.controls)
    leaf(el, "primacy", p.primacy)


def render_program_list(page: Page[ProgramView], href: str = "/derp") -> bytes:
    doc = root(
        "DERProgramList", href, all=page.all, results=len(page.items), pollRate=page.poll_rate
    )
    for v in page.items:
        _fill_program(node(doc, "DERProgram", program_href(v.program.id)), v)
    return serialize(doc)


def render_program(v: ProgramView) -> bytes:
    doc = root("DERProgram", program_href(v.program.id))
    _fill_program(doc, v)
    return serialize(doc)


def _fill_control(el: etree._Element, c: DerControl, now: int) -> None:
    respondable(el, reply_to(SET_DER), c.response_required)
    identified(el, c.mrid, c.description)
    event_body(el, c.creation_time, c.status_at(now), c.start, c.duration)
    randomization(el, c.randomize_duration_s, c.randomize_start_s)
    fill_base(el, c.base)
    leaf(el, "deviceCategory", hex_text(c.device_category, 4))


def render_control_list(v: ControlPage, active: bool = False) -> bytes:
    """A DERControlList (the active list has the same type at another href)."""
    path = "actderc" if active else "derc"
    doc = root(
        "DERControlList",
        f"{program_href(v.program_id)}/{path}",
        all=v.page.all,
        results=len(v.page.items),
    )
    for c in v.page.items:
        _fill_control(node(doc, "DERControl", control_href(c)), c, v.now)
    return serialize(doc)


def render_control(c: DerControl, now: int) -> bytes:
    doc = root("DERControl", control_href(c))
    _fill_control(doc, c, now)
    return serialize(doc)


def render_default(d: DefaultDerControl) -> bytes:
    doc = root("DefaultDERControl", f"{program_href(d.program_id)}/dderc")
    identified(doc, d.mrid, d.description)
    fill_base(doc, d.base)
    leaf(doc, "setGradW", hundredths(d.set_grad_w_pct_per_s))
    return serialize(doc)


def _fill_der(el: etree._Element, v: DerView) -> None:
    href = der_href(v.device_id)
    link(el, "AssociatedDERProgramListLink", f"{href}/derp", v.programs)
    link(el, "CurrentDERProgramLink", program_href(DEFAULT_PROGRAM.id))
    link(el, "DERAvailabilityLink", f"{href}/{PART_PATHS['availability']}")
    link(el, "DERCapabilityLink", f"{href}/{PART_PATHS['capability']}")
    link(el, "DERSettingsLink", f"{href}/{PART_PATHS['settings']}")
    link(el, "DERStatusLink", f"{href}/{PART_PATHS['status']}")


def render_der_list(device_id: int, page: Page[DerView]) -> bytes:
    doc = root(
        "DERList",
        f"/edev/{device_id}/der",
        all=page.all,
        results=len(page.items),
        pollRate=page.poll_rate,
    )
    for v in page.items:
        _fill_der(node(doc, "DER", der_href(v.device_id)), v)
    return serialize(doc)


def render_der(v: DerView) -> bytes:
    doc = root("DER", der_href(v.device_id))
    _fill_der(doc, v)
    return serialize(doc)
