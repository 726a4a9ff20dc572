"""Pricing for devices: the tariff profile, its rate components and their TimeTariffIntervals.

Interval lists cover the local days from the day before ``now`` to ``HORIZON_DAYS`` after it
(or, with the list's ``a`` parameter, from that time on), generated from the tariff history.
"""

from __future__ import annotations

from dataclasses import dataclass

from gtx_ray.ieee2030_5.events import TariffInterval, TimeOfUseRates
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import Page, PageRequest
from gtx_ray.ieee2030_5.server.errors import NotFound
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate, paginate
from gtx_ray.ieee2030_5.server.pricing import (
    DAY_S,
    PROFILE_ID,
    RATE_COMPONENTS,
    RateComponentInfo,
)
from gtx_ray.ieee2030_5.server.registry import Registry

HORIZON_DAYS = 7
"""Days ahead of ``now`` a TimeTariffIntervalList covers."""


@dataclass(frozen=True, slots=True)
class ProfileView:
    """The tariff profile: the tariff in force at ``now`` names it."""

    id: int
    rates: TimeOfUseRates | None
    rate_components: int


@dataclass(frozen=True, slots=True)
class IntervalPage:
    rc_id: int
    page: Page[TariffInterval]
    now: int


def _profile(registry: Registry, now: int) -> ProfileView:
    return ProfileView(PROFILE_ID, registry.pricing.in_force(now), 2)


def _check_profile(profile_id: int) -> None:
    if profile_id != PROFILE_ID:
        raise NotFound(f"no tariff profile {profile_id}")


def list_profiles(
    registry: Registry, caller: DeviceIdentity, now: int, page: PageRequest
) -> Page[ProfileView]:
    items = [_profile(registry, now)] if registry.pricing.rates else []
    return paginate(items, page, poll_rate=caller_poll_rate(registry, caller))


def get_profile(
    registry: Registry, caller: DeviceIdentity, now: int, profile_id: int
) -> ProfileView:
    _check_profile(profile_id)
    if not registry.pricing.rates:
        raise NotFound("this server publishes no tariff")
    return _profile(registry, now)


def list_rate_components(
    registry: Registry, caller: DeviceIdentity, now: int, profile_id: int, page: PageRequest
) -> Page[RateComponentInfo]:
    get_profile(registry, caller, now, profile_id)
    return paginate(list(RATE_COMPONENTS.values()), page)


def get_rate_component(
    registry: Registry, caller: DeviceIdentity, now: int, profile_id: int, rc_id: int
) -> RateComponentInfo:
    get_profile(registry, caller, now, profile_id)
    return registry.pricing.rate_component(rc_id)


def _window(now: int, after: int) -> tuple[int, int]:
    start = after if after > 0 else now - DAY_S
    return start, max(start, now) + HORIZON_DAYS * DAY_S


def list_intervals(
    registry: Registry,
    caller: DeviceIdentity,
    now: int,
    profile_id: int,
    rc_id: int,
    page: PageRequest,
) -> IntervalPage:
    get_rate_component(registry, caller, now, profile_id, rc_id)
    start, end = _window(now, page.after)
    items = [
        i for i in registry.pricing.intervals(rc_id, start, end) if i.start + i.duration > start
    ]
    plain = PageRequest(start=page.start, after=0, limit=page.limit)
    return IntervalPage(rc_id, paginate(items, plain), now)


def list_active_intervals(
    registry: Registry,
    caller: DeviceIdentity,
    now: int,
    profile_id: int,
    rc_id: int,
    page: PageRequest,
) -> IntervalPage:
    get_rate_component(registry, caller, now, profile_id, rc_id)
    items = [
        i
        for i in registry.pricing.intervals(rc_id, now, now + 1)
        if i.start <= now < i.start + i.duration
    ]
    return IntervalPage(rc_id, paginate(items, page), now)


def get_interval(
    registry: Registry, caller: DeviceIdentity, now: int, profile_id: int, rc_id: int, start: int
) -> tuple[TariffInterval, int]:
    """The interval that starts at ``start`` (its id); 404 when none does."""
    get_rate_component(registry, caller, now, profile_id, rc_id)
    for interval in registry.pricing.intervals(rc_id, start, start + 1):
        if interval.start == start:
            return interval, now
    raise NotFound(f"no time tariff interval starts at {start}")
