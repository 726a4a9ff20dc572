"""Metering (read side): UsagePoint → MeterReading → ReadingType, Reading, ReadingSet → Reading.

Each MirrorUsagePoint is exposed as the UsagePoint with the same id, so any 2030.5 client can
read the mirrored values. A device reads its own usage points; LFDIs listed as readers in the
policy (e.g. a head-end) read all of them. Everything else answers 404.
"""

from __future__ import annotations

from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import (
    MeterReadingView,
    Page,
    PageRequest,
    Reading,
    ReadingSetView,
    ReadingType,
    UsagePointView,
)
from gtx_ray.ieee2030_5.server.errors import NotFound
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate, paginate
from gtx_ray.ieee2030_5.server.registry import Registry


def _can_read(registry: Registry, caller: DeviceIdentity, mirror_id: int) -> bool:
    owner = registry.mirror_owner(mirror_id)
    return owner is not None and (owner == caller.lfdi or caller.lfdi in registry.policy.readers)


def _usage_point(registry: Registry, caller: DeviceIdentity, upt: int) -> UsagePointView:
    if not _can_read(registry, caller, upt):
        raise NotFound(f"no usage point {upt} for this certificate")
    view = registry.mirror(upt)
    assert view is not None
    return view


def _meter_reading(
    registry: Registry, caller: DeviceIdentity, upt: int, mr: int
) -> MeterReadingView:
    _usage_point(registry, caller, upt)
    view = registry.meter_reading(upt, mr)
    if view is None:
        raise NotFound(f"no meter reading {mr} in usage point {upt}")
    return view


def list_usage_points(
    registry: Registry, caller: DeviceIdentity, now: int, page: PageRequest
) -> Page[UsagePointView]:
    if caller.lfdi in registry.policy.readers:
        views = [v for i in registry.all_mirror_ids() if (v := registry.mirror(i))]
    else:
        views = registry.mirrors_of(caller.lfdi)
    return paginate(views, page, poll_rate=caller_poll_rate(registry, caller))


def get_usage_point(
    registry: Registry, caller: DeviceIdentity, now: int, upt: int
) -> UsagePointView:
    return _usage_point(registry, caller, upt)


def list_meter_readings(
    registry: Registry, caller: DeviceIdentity, now: int, upt: int, page: PageRequest
) -> Page[MeterReadingView]:
    view = _usage_point(registry, caller, upt)
    return paginate(view.meter_readings, page)


def get_meter_reading(
    registry: Registry, caller: DeviceIdentity, now: int, upt: int, mr: int
) -> MeterReadingView:
    return _meter_reading(registry, caller, upt, mr)


def get_reading_type(
    registry: Registry, caller: DeviceIdentity, now: int, upt: int, mr: int
) -> ReadingType:
    return _meter_reading(registry, caller, upt, mr).reading_type


def get_latest_reading(
    registry: Registry, caller: DeviceIdentity, now: int, upt: int, mr: int
) -> Reading:
    latest = _meter_reading(registry, caller, upt, mr).latest
    if latest is None:
        raise NotFound(f"meter reading {mr} has no reading yet")
    return latest


def list_reading_sets(
    registry: Registry, caller: DeviceIdentity, now: int, upt: int, mr: int, page: PageRequest
) -> Page[ReadingSetView]:
    """Reading sets, most recent first; ``a`` keeps sets starting at or after it."""
    _meter_reading(registry, caller, upt, mr)
    return paginate(registry.reading_sets(upt, mr), page, lambda v: v.set.start)


def get_reading_set(
    registry: Registry, caller: DeviceIdentity, now: int, upt: int, mr: int, rs: int
) -> ReadingSetView:
    _meter_reading(registry, caller, upt, mr)
    view = registry.reading_set(upt, mr, rs)
    if view is None:
        raise NotFound(f"no reading set {rs} (it may have aged out of the kept history)")
    return view


def list_readings(
    registry: Registry,
    caller: DeviceIdentity,
    now: int,
    upt: int,
    mr: int,
    rs: int,
    page: PageRequest,
) -> Page[tuple[int, Reading]]:
    """Readings of a set as (index, reading), in posted order; ``a`` filters by start time."""
    view = get_reading_set(registry, caller, now, upt, mr, rs)
    items = list(enumerate(view.set.readings))
    return paginate(items, page, lambda item: item[1].time_start)


def get_reading(
    registry: Registry, caller: DeviceIdentity, now: int, upt: int, mr: int, rs: int, index: int
) -> Reading:
    view = get_reading_set(registry, caller, now, upt, mr, rs)
    if not 0 <= index < len(view.set.readings):
        raise NotFound(f"no reading {index} in reading set {rs}")
    return view.set.readings[index]
