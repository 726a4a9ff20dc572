"""Operator actions (for the admin API on the REST port): list, pre-register and remove end
devices, clear mirrors, set pollRate/postRate globally or per device. The operator is trusted:
these take no caller identity; the REST layer guards them (loopback or token)."""

from __future__ import annotations

from dataclasses import asdict

from gtx_ray.ieee2030_5.identity import normalise_lfdi
from gtx_ray.ieee2030_5.server.errors import BadRequest, Conflict, NotFound
from gtx_ray.ieee2030_5.server.registry import Registry


def list_devices(registry: Registry, now: int) -> list[dict]:
    """Every registered device as plain dicts (id, lfdi, sfdi, times, rates, mirrors)."""
    out = []
    for d in registry.devices():
        row = asdict(d)
        row["mirror_usage_points"] = registry.mirror_ids_of(d.lfdi)
        out.append(row)
    return out


def preregister(registry: Registry, now: int, lfdi: str) -> int:
    """Register ``lfdi`` on the device's behalf (the allow-list); returns the EndDevice id."""
    try:
        lfdi = normalise_lfdi(lfdi)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if registry.device_by_lfdi(lfdi) is not None:
        raise Conflict(f"LFDI {lfdi} is already registered")
    return registry.add_device(lfdi, now).id


def remove_device(registry: Registry, now: int, device_id: int) -> None:
    if not registry.remove_device(device_id):
        raise NotFound(f"no end device {device_id}")


def clear_mirrors(registry: Registry, now: int, lfdi: str | None = None) -> int:
    """Remove the mirror usage points of one LFDI (or all); returns how many went."""
    return registry.clear_mirrors(normalise_lfdi(lfdi) if lfdi else None)


def set_rates(
    registry: Registry,
    now: int,
    poll_rate: int | None = None,
    post_rate: int | None = None,
    device_id: int | None = None,
) -> None:
    """pollRate/postRate (s, 1..2^32-1), for every device or one."""
    for name, value in (("pollRate", poll_rate), ("postRate", post_rate)):
        if value is not None and not 1 <= value < 2**32:
            raise BadRequest(f"{name} must be 1..4294967295 s, got {value}")
    if device_id is None:
        registry.set_rates(poll_rate, post_rate)
        return
    if registry.device(device_id) is None:
        raise NotFound(f"no end device {device_id}")
    registry.set_device_rates(device_id, now, poll_rate, post_rate)
