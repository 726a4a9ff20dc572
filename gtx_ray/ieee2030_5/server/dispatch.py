"""Operations: what the TLS front asks of the registry, as small picklable values.

An ``Op`` names a manager function and carries the caller's identity, ``now`` (epoch s, read by
the front) and parsed arguments. ``execute`` runs a batch in order against one Registry and
returns one outcome per op: the manager's return value, or the ResourceError it raised (returned,
not raised, so one bad request does not fail its batch). The same code runs in-process
(``LocalBackend``) and inside the registry actor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.server.errors import InternalError, ResourceError
from gtx_ray.ieee2030_5.server.managers import (
    dcap,
    der,
    drlc,
    edev,
    messaging,
    metering,
    mirror,
    pricing,
    response,
)
from gtx_ray.ieee2030_5.server.registry import Registry

log = logging.getLogger(__name__)

OPERATIONS: dict[str, Callable[..., Any]] = {
    "dcap.device_capability": dcap.device_capability,
    "dcap.time": dcap.server_time,
    "edev.list": edev.list_end_devices,
    "edev.get": edev.get_end_device,
    "edev.register": edev.register,
    "edev.registration": edev.get_registration,
    "edev.get_di": edev.get_device_information,
    "edev.put_di": edev.put_device_information,
    "edev.list_fsa": edev.list_function_set_assignments,
    "edev.get_fsa": edev.get_function_set_assignments,
    "mirror.list": mirror.list_mirrors,
    "mirror.get": mirror.get_mirror,
    "mirror.create_or_update": mirror.create_or_update,
    "mirror.post_readings": mirror.post_readings,
    "mirror.delete": mirror.delete_mirror,
    "metering.list_upt": metering.list_usage_points,
    "metering.get_upt": metering.get_usage_point,
    "metering.list_mr": metering.list_meter_readings,
    "metering.get_mr": metering.get_meter_reading,
    "metering.get_rt": metering.get_reading_type,
    "metering.get_latest": metering.get_latest_reading,
    "metering.list_rs": metering.list_reading_sets,
    "metering.get_rs": metering.get_reading_set,
    "metering.list_r": metering.list_readings,
    "metering.get_r": metering.get_reading,
    "drlc.list": drlc.list_programs,
    "drlc.get": drlc.get_program,
    "drlc.list_edc": drlc.list_events,
    "drlc.list_active": drlc.list_active_events,
    "drlc.get_edc": drlc.get_event,
    "der.list": der.list_programs,
    "der.get": der.get_program,
    "der.list_derc": der.list_controls,
    "der.list_active": der.list_active_controls,
    "der.get_derc": der.get_control,
    "der.get_dderc": der.get_default,
    "der.list_der": der.list_der,
    "der.get_der": der.get_der,
    "der.list_assoc": der.list_associated_programs,
    "der.get_part": der.get_part,
    "der.put_part": der.put_part,
    "pricing.list": pricing.list_profiles,
    "pricing.get": pricing.get_profile,
    "pricing.list_rc": pricing.list_rate_components,
    "pricing.get_rc": pricing.get_rate_component,
    "pricing.list_tti": pricing.list_intervals,
    "pricing.list_active": pricing.list_active_intervals,
    "pricing.get_tti": pricing.get_interval,
    "msg.list": messaging.list_programs,
    "msg.get": messaging.get_program,
    "msg.list_txt": messaging.list_messages,
    "msg.list_active": messaging.list_active_messages,
    "msg.get_txt": messaging.get_message,
    "rsp.list_sets": response.list_sets,
    "rsp.get_set": response.get_set,
    "rsp.list": response.list_responses,
    "rsp.get": response.get_response,
    "rsp.post": response.post_response,
}


@dataclass(frozen=True, slots=True)
class Op:
    """One request for the registry: ``name`` in OPERATIONS, the caller, now (epoch s), args."""

    name: str
    caller: DeviceIdentity
    now: int
    args: tuple = ()


def execute(registry: Registry, ops: Sequence[Op]) -> list[Any]:
    """Run ``ops`` in order; each outcome is a value or a ResourceError instance."""
    out: list[Any] = []
    for op in ops:
        try:
            fn = OPERATIONS[op.name]
            out.append(fn(registry, op.caller, op.now, *op.args))
        except ResourceError as exc:
            out.append(exc)
        except Exception:
            log.exception("registry operation %s failed", op.name)
            out.append(InternalError(f"internal error in {op.name}"))
    return out
