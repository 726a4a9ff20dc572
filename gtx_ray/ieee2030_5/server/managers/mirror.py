"""Metering Mirror: MirrorUsagePoints and the readings posted to them.

Rules: the caller must be registered; a MirrorUsagePoint's deviceLFDI must be the caller's own
(403 otherwise). POST /mup with a new mRID creates (201 + Location); with an mRID the caller
already mirrors, updates it (204 + Location); with an mRID another device mirrors, 409. Readings
are POSTed to /mup/{id} as one MirrorMeterReading or a MirrorMeterReadingList; each carries a
single Reading and/or MirrorReadingSets. A MirrorMeterReading with an mRID the mirror does not
know yet must carry its ReadingType (400 otherwise). Every request is checked whole before
anything is stored, so a rejected request changes nothing; one that does not fit the device's
memory budget even after its older sets are retired is 413 with reasonCode 2 (see ``budget``).
"""

from __future__ import annotations

from collections.abc import Sequence

from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import (
    Created,
    Deleted,
    MirrorMeterReading,
    MirrorUsagePoint,
    Page,
    PageRequest,
    Updated,
    UsagePointView,
)
from gtx_ray.ieee2030_5.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    LimitReached,
    NotFound,
    TooLarge,
)
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate, own_device, paginate
from gtx_ray.ieee2030_5.server.registry import Registry


def mup_href(mirror_id: int) -> str:
    return f"/mup/{mirror_id}"


def _own_mirror(registry: Registry, caller: DeviceIdentity, mirror_id: int) -> None:
    if registry.mirror_owner(mirror_id) != caller.lfdi:
        raise NotFound(f"no mirror usage point {mirror_id} for this certificate")


def list_mirrors(
    registry: Registry, caller: DeviceIdentity, now: int, page: PageRequest
) -> Page[UsagePointView]:
    rate = caller_poll_rate(registry, caller)
    return paginate(registry.mirrors_of(caller.lfdi), page, poll_rate=rate)


def get_mirror(
    registry: Registry, caller: DeviceIdentity, now: int, mirror_id: int
) -> UsagePointView:
    _own_mirror(registry, caller, mirror_id)
    view = registry.mirror(mirror_id)
    assert view is not None
    return view


def _check_readings(
    registry: Registry,
    owner: str,
    mirror_id: int | None,
    readings: Sequence[MirrorMeterReading],
) -> None:
    """Raise before any change if ``readings`` cannot all be stored on the mirror (``None``: a
    new one), within the meter-reading bound and the owner's memory budget."""
    seen: set[int] = set()
    new = 0
    for mmr in readings:
        if mmr.mrid in seen:
            raise BadRequest(f"MirrorMeterReading mRID {mmr.mrid:032X} appears twice")
        seen.add(mmr.mrid)
        known = mirror_id is not None and registry.meter_reading_id(mirror_id, mmr.mrid)
        if not known:
            if mmr.reading_type is None:
                raise BadRequest(
                    f"MirrorMeterReading {mmr.mrid:032X} is new to this mirror and needs a "
                    "ReadingType"
                )
            new += 1
    have = len(registry.meter_reading_ids(mirror_id)) if mirror_id is not None else 0
    if have + new > registry.limits.max_readings_per_mirror:
        raise LimitReached(
            f"a mirror usage point may hold {registry.limits.max_readings_per_mirror} "
            "meter readings"
        )
    sizes = [len(s.readings) for mmr in readings for s in mmr.reading_sets]
    sizes += [1 for mmr in readings if mmr.reading is not None]
    problem = registry.fits(owner, mirror_id is None, new, sizes)
    if problem is not None:
        raise TooLarge(problem)


def _store_readings(
    registry: Registry, mirror_id: int, readings: Sequence[MirrorMeterReading], now: int
) -> None:
    for mmr in readings:
        registry.upsert_meter_reading(mirror_id, mmr)
        for reading_set in mmr.reading_sets:
            registry.add_reading_set(mirror_id, mmr.mrid, reading_set)
        if mmr.reading is not None:
            registry.add_reading(mirror_id, mmr.mrid, mmr.reading, now)


def create_or_update(
    registry: Registry, caller: DeviceIdentity, now: int, body: MirrorUsagePoint
) -> Created | Updated:
    """POST /mup."""
    own_device(registry, caller)
    if body.device_lfdi != caller.lfdi:
        raise Forbidden(
            f"deviceLFDI {body.device_lfdi} is not the LFDI of your certificate ({caller.lfdi})"
        )
    existing = registry.mirror_id_by_mrid(body.mrid)
    if existing is not None:
        if registry.mirror_owner(existing) != caller.lfdi:
            raise Conflict(f"mRID {body.mrid:032X} is mirrored by another device")
        _check_readings(registry, caller.lfdi, existing, body.meter_readings)
        registry.update_mirror_header(existing, body)
        _store_readings(registry, existing, body.meter_readings, now)
        return Updated(mup_href(existing))
    if len(registry.mirror_ids_of(caller.lfdi)) >= registry.limits.max_mirrors_per_device:
        raise LimitReached(
            f"a device may hold {registry.limits.max_mirrors_per_device} mirror usage points"
        )
    _check_readings(registry, caller.lfdi, None, body.meter_readings)
    mirror_id = registry.add_mirror(caller.lfdi, body)
    _store_readings(registry, mirror_id, body.meter_readings, now)
    return Created(mup_href(mirror_id))


def post_readings(
    registry: Registry,
    caller: DeviceIdentity,
    now: int,
    mirror_id: int,
    readings: tuple[MirrorMeterReading, ...],
) -> Created:
    """POST /mup/{id}: one MirrorMeterReading or a list of them."""
    _own_mirror(registry, caller, mirror_id)
    _check_readings(registry, caller.lfdi, mirror_id, readings)
    _store_readings(registry, mirror_id, readings, now)
    return Created(mup_href(mirror_id))


def delete_mirror(registry: Registry, caller: DeviceIdentity, now: int, mirror_id: int) -> Deleted:
    """DELETE /mup/{id}: the mirror, its UsagePoint and its history go."""
    _own_mirror(registry, caller, mirror_id)
    registry.remove_mirror(mirror_id)
    return Deleted()
