"""DeviceCapability and Time: what the server offers and its clock."""

from __future__ import annotations

from dataclasses import dataclass

from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate
from gtx_ray.ieee2030_5.server.registry import Registry


@dataclass(frozen=True, slots=True)
class DeviceCapabilityView:
    """Counts (as the caller sees them) for the ListLinks' ``all``; poll_rate in s."""

    poll_rate: int
    end_devices: int
    mirror_usage_points: int
    usage_points: int


@dataclass(frozen=True, slots=True)
class TimeView:
    """Server time (epoch s), local offset (s, no DST in Bangkok), pollRate (s)."""

    now: int
    tz_offset: int
    poll_rate: int


def device_capability(registry: Registry, caller: DeviceIdentity, now: int) -> DeviceCapabilityView:
    """The entry point every client reads first (/dcap)."""
    own = registry.device_by_lfdi(caller.lfdi)
    mirrors = len(registry.mirror_ids_of(caller.lfdi))
    readable = len(registry.all_mirror_ids()) if caller.lfdi in registry.policy.readers else mirrors
    rate = caller_poll_rate(registry, caller)
    return DeviceCapabilityView(rate, 1 if own else 0, mirrors, readable)


def server_time(registry: Registry, caller: DeviceIdentity, now: int) -> TimeView:
    """The Time resource (/tm)."""
    return TimeView(now, registry.policy.tz_offset, caller_poll_rate(registry, caller))
