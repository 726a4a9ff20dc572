"""ResponseSet(List) and Response(List) documents (/rsps...) and a posted Response."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import (
    XmlError,
    expect_root,
    hex_text,
    leaf,
    link,
    node,
    read_hex,
    read_uint,
    root,
    serialize,
)
from gtx_ray.ieee2030_5.elements import read_time
from gtx_ray.ieee2030_5.events import Response
from gtx_ray.ieee2030_5.models import Page
from gtx_ray.ieee2030_5.server.managers.response import ResponseIn, ResponseSetView
from gtx_ray.ieee2030_5.server.mappers.edev import read_lfdi
from gtx_ray.ieee2030_5.server.mappers.events import identified

RESPONSE_ELEMENTS = (
    "Response",
    "DrResponse",
    "PriceResponse",
    "TextResponse",
    "DERControlResponse",
)


def set_href(set_id: int) -> str:
    return f"/rsps/{set_id}"


def _fill_set(el: etree._Element, v: ResponseSetView) -> None:
    identified(el, v.info.mrid, v.info.description)
    link(el, "ResponseListLink", f"{set_href(v.info.id)}/rsp", v.responses)


def render_set_list(page: Page[ResponseSetView]) -> bytes:
    doc = root(
        "ResponseSetList", "/rsps", all=page.all, results=len(page.items), pollRate=page.poll_rate
    )
    for v in page.items:
        _fill_set(node(doc, "ResponseSet", set_href(v.info.id)), v)
    return serialize(doc)


def render_set(v: ResponseSetView) -> bytes:
    doc = root("ResponseSet", set_href(v.info.id))
    _fill_set(doc, v)
    return serialize(doc)


def _fill_response(el: etree._Element, r: Response) -> None:
    leaf(el, "createdDateTime", r.created)
    leaf(el, "endDeviceLFDI", r.lfdi)
    leaf(el, "status", r.status)
    leaf(el, "subject", hex_text(r.subject, 16))


def render_response_list(set_id: int, page: Page[Response]) -> bytes:
    href = f"{set_href(set_id)}/rsp"
    doc = root("ResponseList", href, all=page.all, results=len(page.items))
    for r in page.items:
        _fill_response(node(doc, "Response", f"{href}/{r.id}"), r)
    return serialize(doc)


def render_response(r: Response) -> bytes:
    doc = root("Response", f"{set_href(r.set_id)}/rsp/{r.id}")
    _fill_response(doc, r)
    return serialize(doc)


def parse_response(doc: etree._Element) -> ResponseIn:
    """A posted Response (or DrResponse, PriceResponse, TextResponse); load-reduction
    details of a DrResponse are accepted and not kept."""
    kind = expect_root(doc, *RESPONSE_ELEMENTS)
    lfdi = read_lfdi(doc, "endDeviceLFDI", required=True)
    subject = read_hex(doc, "subject", 16, required=True)
    if lfdi is None or subject is None:
        raise XmlError(f"{kind}: endDeviceLFDI and subject are required")
    return ResponseIn(
        kind=kind,
        lfdi=lfdi,
        subject=subject,
        status=read_uint(doc, "status", 8),
        created=read_time(doc, "createdDateTime"),
    )
