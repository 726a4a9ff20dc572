"""EndDevice, Registration, DeviceInformation and FunctionSetAssignments.

Rules: a device sees only its own EndDevice (others answer 404); it registers itself by POSTing
an EndDevice whose sFDI (and lFDI, when given) equal its certificate's, otherwise 403; a second
registration of the same LFDI answers 409 with the existing device's location. Under the
"allowlist" policy only pre-registered devices exist and a POST from any other certificate is 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import (
    Created,
    DeviceInformation,
    EndDeviceIn,
    EndDeviceView,
    Page,
    PageRequest,
    Updated,
)
from gtx_ray.ieee2030_5.server.errors import Conflict, Forbidden, NotFound
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate, paginate
from gtx_ray.ieee2030_5.server.registry import Registry

FSA_ID = 1
"""Every device gets one FunctionSetAssignments (id 1) pointing at the function sets it uses."""


@dataclass(frozen=True, slots=True)
class RegistrationView:
    """A device's Registration: PIN and when it registered (epoch s); poll_rate s."""

    device_id: int
    pin: int
    registered_time: int
    poll_rate: int


def edev_href(device_id: int) -> str:
    return f"/edev/{device_id}"


def list_end_devices(
    registry: Registry, caller: DeviceIdentity, now: int, page: PageRequest
) -> Page[EndDeviceView]:
    """The caller's view of /edev: its own device, if registered."""
    own = registry.device_by_lfdi(caller.lfdi)
    rate = caller_poll_rate(registry, caller)
    return paginate([own] if own else [], page, lambda d: d.changed_time, rate)


def get_end_device(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int
) -> EndDeviceView:
    device = registry.device(device_id)
    if device is None or device.lfdi != caller.lfdi:
        raise NotFound(f"no end device {device_id} for this certificate")
    return device


def register(registry: Registry, caller: DeviceIdentity, now: int, body: EndDeviceIn) -> Created:
    """POST /edev: register the caller's own certificate."""
    if body.sfdi != caller.sfdi:
        raise Forbidden(f"sFDI {body.sfdi} is not the sFDI of your certificate ({caller.sfdi})")
    if body.lfdi is not None and body.lfdi != caller.lfdi:
        raise Forbidden(f"lFDI {body.lfdi} is not the lFDI of your certificate ({caller.lfdi})")
    existing = registry.device_by_lfdi(caller.lfdi)
    if existing is not None:
        raise Conflict(
            f"LFDI {caller.lfdi} is already registered as {edev_href(existing.id)}",
            location=edev_href(existing.id),
        )
    if registry.policy.registration != "open":
        raise Forbidden(f"LFDI {caller.lfdi} is not on this server's allow-list")
    device = registry.add_device(
        caller.lfdi,
        now,
        caller.sfdi,
        device_category=body.device_category,
        post_rate=body.post_rate,
        enabled=True if body.enabled is None else body.enabled,
    )
    return Created(edev_href(device.id))


def get_registration(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int
) -> RegistrationView:
    device = get_end_device(registry, caller, now, device_id)
    return RegistrationView(device.id, device.pin, device.registered_time, device.poll_rate)


def get_device_information(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int
) -> DeviceInformation:
    get_end_device(registry, caller, now, device_id)
    info = registry.device_information(device_id)
    if info is None:
        raise NotFound(f"device {device_id} has not sent its DeviceInformation yet")
    return info


def put_device_information(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int, info: DeviceInformation
) -> Updated:
    get_end_device(registry, caller, now, device_id)
    if info.lfdi != caller.lfdi:
        raise Forbidden(f"DeviceInformation lFDI {info.lfdi} is not your certificate's")
    registry.set_device_information(device_id, info, now)
    return Updated(f"{edev_href(device_id)}/di")


def list_function_set_assignments(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int, page: PageRequest
) -> Page[int]:
    """The FSA ids of the caller's device (one: FSA_ID)."""
    get_end_device(registry, caller, now, device_id)
    return paginate([FSA_ID], page, poll_rate=caller_poll_rate(registry, caller))


def get_function_set_assignments(
    registry: Registry, caller: DeviceIdentity, now: int, device_id: int, fsa_id: int
) -> int:
    get_end_device(registry, caller, now, device_id)
    if fsa_id != FSA_ID:
        raise NotFound(f"no function set assignments {fsa_id}")
    return fsa_id
