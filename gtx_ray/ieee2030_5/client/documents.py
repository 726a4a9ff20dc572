"""The documents a meter POSTs, and the mRIDs in them (pure functions, no network).

``end_device_document`` registers the meter, ``mirror_usage_point_document`` creates its mirror
with one MirrorMeterReading (and ReadingType) per quantity, ``readings_document`` carries queued
intervals. mRIDs are derived from the meter id (``derived_mrid``), so the same meter gets the same
mRIDs on every run and every server and a repeated POST replaces, never duplicates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

from gtx_ray.ieee2030_5.client.quantities import QUANTITIES, PendingReading, Quantity
from gtx_ray.ieee2030_5.codec import hex_text, leaf, node, root, serialize
from gtx_ray.ieee2030_5.elements import fill_reading, fill_reading_type, render_time_period
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import Reading

ROLE_IS_MIRROR = 0x0001
ROLE_IS_SUBMETER = 0x0040
SERVICE_ELECTRICITY = 0
MIRROR_STATUS_ON = 1

# --- identifiers -----------------------------------------------------------------------------


def derived_mrid(*parts: object, pen: int = 0) -> int:
    """A 128-bit mRID: 96 bits of SHA-256 over ``parts`` followed by the 32-bit IANA PEN (the
    schema puts the PEN in the least significant 32 bits). Deterministic: the same meter gets the
    same mRIDs on every run and every server."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return (int.from_bytes(digest[:12], "big") << 32) | (pen & 0xFFFFFFFF)


def mirror_mrid(meter_id: str, pen: int = 0) -> int:
    """The MirrorUsagePoint mRID of a meter."""
    return derived_mrid("gtx_ray", "mup", meter_id, pen=pen)


def meter_reading_mrid(meter_id: str, quantity: str, pen: int = 0) -> int:
    """The MirrorMeterReading mRID of one quantity of a meter."""
    return derived_mrid("gtx_ray", "mmr", meter_id, quantity, pen=pen)


def reading_set_mrid(meter_id: str, quantity: str, start: int, duration: int, pen: int = 0) -> int:
    """The MirrorReadingSet mRID of a time period (start epoch s, duration s): a repeated POST
    replaces the same set."""
    return derived_mrid("gtx_ray", "mrs", meter_id, quantity, start, duration, pen=pen)


# --- documents -------------------------------------------------------------------------------


def end_device_document(identity: DeviceIdentity, changed_time: int) -> bytes:
    """The EndDevice a meter POSTs to register itself (lFDI, sFDI, changedTime epoch s)."""
    doc = root("EndDevice")
    leaf(doc, "lFDI", identity.lfdi)
    leaf(doc, "sFDI", identity.sfdi)
    leaf(doc, "changedTime", changed_time)
    return serialize(doc)


def mirror_usage_point_document(
    meter_id: str,
    lfdi: str,
    interval_s: int,
    role_flags: int = ROLE_IS_MIRROR | ROLE_IS_SUBMETER,
    pen: int = 0,
    quantities: Sequence[Quantity] = QUANTITIES,
) -> bytes:
    """The MirrorUsagePoint of a meter with one MirrorMeterReading (and ReadingType, its
    intervalLength ``interval_s``) per quantity. No postRate: the server's is used."""
    doc = root("MirrorUsagePoint")
    leaf(doc, "mRID", hex_text(mirror_mrid(meter_id, pen), 16))
    leaf(doc, "description", meter_id[:32])
    leaf(doc, "roleFlags", hex_text(role_flags, 2))
    leaf(doc, "serviceCategoryKind", SERVICE_ELECTRICITY)
    leaf(doc, "status", MIRROR_STATUS_ON)
    leaf(doc, "deviceLFDI", lfdi)
    for q in quantities:
        mmr = node(doc, "MirrorMeterReading")
        leaf(mmr, "mRID", hex_text(meter_reading_mrid(meter_id, q.key, pen), 16))
        leaf(mmr, "description", q.description[:32])
        fill_reading_type(
            node(mmr, "ReadingType"), replace(q.reading_type, interval_length=interval_s)
        )
    return serialize(doc)


def readings_document(
    meter_id: str,
    readings: Sequence[PendingReading],
    interval_s: int,
    last_update: int | None = None,
    next_update: int | None = None,
    pen: int = 0,
    quantities: Sequence[Quantity] = QUANTITIES,
) -> bytes:
    """A MirrorMeterReadingList with one MirrorMeterReading per quantity: a single Reading for
    one interval, a MirrorReadingSet for several. Each Reading's timePeriod is its interval
    (``interval_s``); ``last_update``/``next_update`` are the server's epoch s."""
    if not readings:
        raise ValueError("no readings to post")
    ordered = sorted(readings, key=lambda r: r[0])
    doc = root("MirrorMeterReadingList", all=len(quantities), results=len(quantities))
    first = ordered[0][0]
    span = ordered[-1][0] + interval_s - first
    for i, q in enumerate(quantities):
        mmr = node(doc, "MirrorMeterReading")
        leaf(mmr, "mRID", hex_text(meter_reading_mrid(meter_id, q.key, pen), 16))
        leaf(mmr, "lastUpdateTime", last_update)
        if len(ordered) > 1:
            rs = node(mmr, "MirrorReadingSet")
            leaf(rs, "mRID", hex_text(reading_set_mrid(meter_id, q.key, first, span, pen), 16))
            render_time_period(rs, first, span)
            for start, values in ordered:
                fill_reading(node(rs, "Reading"), Reading(values[i], start, interval_s))
        leaf(mmr, "nextUpdateTime", next_update)
        if len(ordered) == 1:
            start, values = ordered[0]
            fill_reading(node(mmr, "Reading"), Reading(values[i], start, interval_s))
    return serialize(doc)
