"""Metering Mirror documents: MirrorUsagePoint(List), MirrorMeterReading(List), MirrorReadingSet."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import (
    XmlError,
    child,
    children,
    expect_root,
    hex_text,
    leaf,
    node,
    read_hex,
    read_str,
    read_uint,
    root,
    serialize,
)
from gtx_ray.ieee2030_5.elements import (
    fill_reading_type,
    parse_reading,
    parse_reading_type,
    parse_time_period,
    read_time,
)
from gtx_ray.ieee2030_5.models import (
    MirrorMeterReading,
    MirrorUsagePoint,
    Page,
    ReadingSet,
    UsagePointView,
)
from gtx_ray.ieee2030_5.server.mappers.edev import read_lfdi


def _mrid(el: etree._Element) -> int:
    value = read_hex(el, "mRID", 16, required=True)
    assert value is not None
    return value


def parse_reading_set(el: etree._Element) -> ReadingSet:
    """A ``MirrorReadingSet``: mRID and timePeriod required, any number of Readings."""
    period = parse_time_period(el, required=True)
    assert period is not None
    return ReadingSet(
        mrid=_mrid(el),
        start=period[0],
        duration=period[1],
        readings=tuple(parse_reading(r) for r in children(el, "Reading")),
        description=read_str(el, "description", 32),
        version=read_uint(el, "version", 16),
    )


def parse_meter_reading(el: etree._Element) -> MirrorMeterReading:
    """A ``MirrorMeterReading`` with optional ReadingType, Reading and MirrorReadingSets."""
    rt = child(el, "ReadingType")
    reading = child(el, "Reading")
    return MirrorMeterReading(
        mrid=_mrid(el),
        description=read_str(el, "description", 32),
        version=read_uint(el, "version", 16),
        last_update_time=read_time(el, "lastUpdateTime"),
        next_update_time=read_time(el, "nextUpdateTime"),
        reading_type=parse_reading_type(rt) if rt is not None else None,
        reading=parse_reading(reading) if reading is not None else None,
        reading_sets=tuple(parse_reading_set(s) for s in children(el, "MirrorReadingSet")),
    )


def parse_meter_readings(doc: etree._Element) -> tuple[MirrorMeterReading, ...]:
    """What a client POSTs to /mup/{id}: one MirrorMeterReading, or a MirrorMeterReadingList
    (its ``all``/``results`` attributes may be missing)."""
    name = expect_root(doc, "MirrorMeterReading", "MirrorMeterReadingList")
    if name == "MirrorMeterReading":
        return (parse_meter_reading(doc),)
    items = tuple(parse_meter_reading(m) for m in children(doc, "MirrorMeterReading"))
    if not items:
        raise XmlError("MirrorMeterReadingList holds no MirrorMeterReading")
    return items


def parse_mirror_usage_point(doc: etree._Element) -> MirrorUsagePoint:
    """A POSTed ``MirrorUsagePoint``: mRID, deviceLFDI, roleFlags, serviceCategoryKind and status
    are required."""
    expect_root(doc, "MirrorUsagePoint")
    lfdi = read_lfdi(doc, "deviceLFDI", required=True)
    role_flags = read_hex(doc, "roleFlags", 2, required=True)
    kind = read_uint(doc, "serviceCategoryKind", 8, required=True)
    status = read_uint(doc, "status", 8, required=True)
    assert lfdi is not None and role_flags is not None and kind is not None and status is not None
    return MirrorUsagePoint(
        mrid=_mrid(doc),
        device_lfdi=lfdi,
        role_flags=role_flags,
        service_category_kind=kind,
        status=status,
        description=read_str(doc, "description", 32),
        version=read_uint(doc, "version", 16),
        post_rate=read_uint(doc, "postRate", 32),
        meter_readings=tuple(parse_meter_reading(m) for m in children(doc, "MirrorMeterReading")),
    )


def _fill_mirror(el: etree._Element, m: UsagePointView) -> None:
    leaf(el, "mRID", hex_text(m.mrid, 16))
    leaf(el, "description", m.description)
    leaf(el, "version", m.version)
    leaf(el, "roleFlags", hex_text(m.role_flags, 2))
    leaf(el, "serviceCategoryKind", m.service_category_kind)
    leaf(el, "status", m.status)
    leaf(el, "deviceLFDI", m.device_lfdi)
    for r in m.meter_readings:
        mmr = node(el, "MirrorMeterReading", f"/upt/{m.id}/mr/{r.id}")
        leaf(mmr, "mRID", hex_text(r.mrid, 16))
        leaf(mmr, "description", r.description)
        leaf(mmr, "version", r.version)
        leaf(mmr, "lastUpdateTime", r.last_update_time)
        leaf(mmr, "nextUpdateTime", r.next_update_time)
        fill_reading_type(node(mmr, "ReadingType", f"/upt/{m.id}/mr/{r.id}/rt"), r.reading_type)
    leaf(el, "postRate", m.post_rate)


def render_mirror(m: UsagePointView) -> bytes:
    doc = root("MirrorUsagePoint", f"/mup/{m.id}")
    _fill_mirror(doc, m)
    return serialize(doc)


def render_mirror_list(page: Page[UsagePointView], poll_rate: int) -> bytes:
    doc = root(
        "MirrorUsagePointList", "/mup", all=page.all, results=len(page.items), pollRate=poll_rate
    )
    for m in page.items:
        _fill_mirror(node(doc, "MirrorUsagePoint", f"/mup/{m.id}"), m)
    return serialize(doc)
