"""Pieces shared by several function sets: Error, ReadingType, Reading and time periods."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import (
    INT48_MAX,
    INT48_MIN,
    XmlError,
    child,
    hex_text,
    leaf,
    node,
    read_bool,
    read_hex,
    read_int,
    read_uint,
    root,
    serialize,
)
from gtx_ray.ieee2030_5.models import Reading, ReadingType

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def render_error(reason: int) -> bytes:
    """An ``Error`` document with Error.reasonCode ``reason``."""
    doc = root("Error")
    leaf(doc, "reasonCode", reason)
    return serialize(doc)


def read_time(el: etree._Element, name: str, required: bool = False) -> int | None:
    """A TimeType child (Int64 epoch seconds)."""
    return read_int(el, name, INT64_MIN, INT64_MAX, required)


def parse_time_period(el: etree._Element, required: bool) -> tuple[int, int] | None:
    """``timePeriod`` (DateTimeInterval) as (start epoch s, duration s), or None when absent."""
    tp = child(el, "timePeriod")
    if tp is None:
        if required:
            raise XmlError(f"{etree.QName(el).localname}: timePeriod is required")
        return None
    duration = read_uint(tp, "duration", 32, required=True)
    start = read_time(tp, "start", required=True)
    assert duration is not None and start is not None
    return start, duration


def render_time_period(parent: etree._Element, start: int, duration: int) -> None:
    tp = node(parent, "timePeriod")
    leaf(tp, "duration", duration)
    leaf(tp, "start", start)


def parse_reading(el: etree._Element) -> Reading:
    """A ``Reading`` element (in a MirrorMeterReading or MirrorReadingSet)."""
    period = parse_time_period(el, required=False)
    return Reading(
        value=read_int(el, "value", INT48_MIN, INT48_MAX),
        time_start=period[0] if period else None,
        duration=period[1] if period else None,
        quality_flags=read_hex(el, "qualityFlags", 2),
        consumption_block=read_uint(el, "consumptionBlock", 8),
        tou_tier=read_uint(el, "touTier", 8),
        local_id=read_hex(el, "localID", 2),
    )


def fill_reading(el: etree._Element, r: Reading) -> None:
    """Children of a ``Reading`` in schema order."""
    leaf(el, "consumptionBlock", r.consumption_block)
    if r.quality_flags is not None:
        leaf(el, "qualityFlags", hex_text(r.quality_flags, 2))
    if r.time_start is not None:
        render_time_period(el, r.time_start, r.duration or 0)
    leaf(el, "touTier", r.tou_tier)
    leaf(el, "value", r.value)
    if r.local_id is not None:
        leaf(el, "localID", hex_text(r.local_id, 2))


_RT_FIELDS = (
    # (element, attribute, kind, bits)
    ("accumulationBehaviour", "accumulation_behaviour", "u", 8),
    ("commodity", "commodity", "u", 8),
    ("dataQualifier", "data_qualifier", "u", 8),
    ("flowDirection", "flow_direction", "u", 8),
    ("intervalLength", "interval_length", "u", 32),
    ("kind", "kind", "u", 8),
    ("maxNumberOfIntervals", "max_number_of_intervals", "u", 8),
    ("numberOfConsumptionBlocks", "number_of_consumption_blocks", "u", 8),
    ("numberOfTouTiers", "number_of_tou_tiers", "u", 8),
    ("phase", "phase", "u", 8),
    ("powerOfTenMultiplier", "power_of_ten_multiplier", "i", 8),
    ("subIntervalLength", "sub_interval_length", "u", 32),
    ("supplyLimit", "supply_limit", "u", 48),
    ("tieredConsumptionBlocks", "tiered_consumption_blocks", "b", 0),
    ("uom", "uom", "u", 8),
)


def parse_reading_type(el: etree._Element) -> ReadingType:
    """A ``ReadingType`` element. calorificValue and conversionFactor are not kept."""
    values = {}
    for tag, attr, kind, bits in _RT_FIELDS:
        if kind == "u":
            values[attr] = read_uint(el, tag, bits)
        elif kind == "i":
            values[attr] = read_int(el, tag, -128, 127)
        else:
            values[attr] = read_bool(el, tag)
    return ReadingType(**values)


def fill_reading_type(el: etree._Element, rt: ReadingType) -> None:
    """Children of a ``ReadingType`` in schema order."""
    for tag, attr, _, _ in _RT_FIELDS:
        leaf(el, tag, getattr(rt, attr))
