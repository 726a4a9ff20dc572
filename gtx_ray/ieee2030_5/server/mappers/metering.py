"""Metering (read side) documents: UsagePoint, MeterReading, ReadingType, ReadingSet, Reading."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import hex_text, leaf, link, node, root, serialize
from gtx_ray.ieee2030_5.elements import fill_reading, fill_reading_type, render_time_period
from gtx_ray.ieee2030_5.models import (
    MeterReadingView,
    Page,
    Reading,
    ReadingSetView,
    ReadingType,
    UsagePointView,
)


def _fill_usage_point(el: etree._Element, u: UsagePointView) -> None:
    leaf(el, "mRID", hex_text(u.mrid, 16))
    leaf(el, "description", u.description)
    leaf(el, "version", u.version)
    leaf(el, "roleFlags", hex_text(u.role_flags, 2))
    leaf(el, "serviceCategoryKind", u.service_category_kind)
    leaf(el, "status", u.status)
    leaf(el, "deviceLFDI", u.device_lfdi)
    link(el, "MeterReadingListLink", f"/upt/{u.id}/mr", len(u.meter_readings))


def render_usage_point(u: UsagePointView) -> bytes:
    doc = root("UsagePoint", f"/upt/{u.id}")
    _fill_usage_point(doc, u)
    return serialize(doc)


def render_usage_point_list(page: Page[UsagePointView], poll_rate: int) -> bytes:
    doc = root("UsagePointList", "/upt", all=page.all, results=len(page.items), pollRate=poll_rate)
    for u in page.items:
        _fill_usage_point(node(doc, "UsagePoint", f"/upt/{u.id}"), u)
    return serialize(doc)


def _fill_meter_reading(el: etree._Element, upt: int, r: MeterReadingView) -> None:
    href = f"/upt/{upt}/mr/{r.id}"
    leaf(el, "mRID", hex_text(r.mrid, 16))
    leaf(el, "description", r.description)
    leaf(el, "version", r.version)
    if r.latest is not None:
        link(el, "ReadingLink", f"{href}/r")
    link(el, "ReadingSetListLink", f"{href}/rs", r.reading_sets)
    link(el, "ReadingTypeLink", f"{href}/rt")


def render_meter_reading(upt: int, r: MeterReadingView) -> bytes:
    doc = root("MeterReading", f"/upt/{upt}/mr/{r.id}")
    _fill_meter_reading(doc, upt, r)
    return serialize(doc)


def render_meter_reading_list(upt: int, page: Page[MeterReadingView]) -> bytes:
    doc = root("MeterReadingList", f"/upt/{upt}/mr", all=page.all, results=len(page.items))
    for r in page.items:
        _fill_meter_reading(node(doc, "MeterReading", f"/upt/{upt}/mr/{r.id}"), upt, r)
    return serialize(doc)


def render_reading_type(href: str, rt: ReadingType) -> bytes:
    doc = root("ReadingType", href)
    fill_reading_type(doc, rt)
    return serialize(doc)


def render_reading(href: str, r: Reading) -> bytes:
    doc = root("Reading", href)
    fill_reading(doc, r)
    return serialize(doc)


def _fill_reading_set(el: etree._Element, href: str, v: ReadingSetView) -> None:
    s = v.set
    leaf(el, "mRID", hex_text(s.mrid, 16))
    leaf(el, "description", s.description)
    leaf(el, "version", s.version)
    render_time_period(el, s.start, s.duration)
    link(el, "ReadingListLink", f"{href}/r", len(s.readings))


def render_reading_set(href: str, v: ReadingSetView) -> bytes:
    doc = root("ReadingSet", href)
    _fill_reading_set(doc, href, v)
    return serialize(doc)


def render_reading_set_list(href: str, page: Page[ReadingSetView]) -> bytes:
    doc = root("ReadingSetList", href, all=page.all, results=len(page.items))
    for v in page.items:
        item_href = f"{href}/{v.id}"
        _fill_reading_set(node(doc, "ReadingSet", item_href), item_href, v)
    return serialize(doc)


def render_reading_list(href: str, page: Page[tuple[int, Reading]]) -> bytes:
    doc = root("ReadingList", href, all=page.all, results=len(page.items))
    for index, r in page.items:
        fill_reading(node(doc, "Reading", f"{href}/{index}"), r)
    return serialize(doc)
