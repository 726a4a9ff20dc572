"""Helpers shared by the managers: paging and the caller's own device."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import EndDeviceView, Page, PageRequest
from gtx_ray.ieee2030_5.server.errors import Forbidden
from gtx_ray.ieee2030_5.server.registry import Registry

T = TypeVar("T")


def paginate(
    items: Sequence[T],
    page: PageRequest,
    time_of: Callable[[T], int | None] | None = None,
    poll_rate: int | None = None,
) -> Page[T]:
    """The page ``page`` of ``items``: those at or after ``page.after`` (epoch s, when the items
    have a time) from index ``page.start``, at most ``page.limit``; ``all`` counts the matches."""
    if time_of is not None and page.after > 0:
        items = [i for i in items if (time_of(i) or 0) >= page.after]
    return Page(tuple(items[page.start : page.start + page.limit]), len(items), poll_rate)


def own_device(registry: Registry, caller: DeviceIdentity) -> EndDeviceView:
    """The caller's registered EndDevice; Forbidden if it has not registered."""
    device = registry.device_by_lfdi(caller.lfdi)
    if device is None:
        raise Forbidden(f"device {caller.lfdi} is not registered: POST an EndDevice to /edev first")
    return device


def caller_poll_rate(registry: Registry, caller: DeviceIdentity) -> int:
    """The pollRate (s) this caller is told: its own override, else the server's."""
    device = registry.device_by_lfdi(caller.lfdi)
    return device.poll_rate if device is not None else registry.policy.poll_rate
