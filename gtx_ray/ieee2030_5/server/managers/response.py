"""Responses: devices post them to a ResponseSet and read back their own.

Rules: a Response's endDeviceLFDI must be the caller's certificate's (403 otherwise); its
subject must be an event of the set's function set on this server (400 otherwise), so the
operator's view of who answered what is never polluted by stray mRIDs.
"""

from __future__ import annotations

from dataclasses import dataclass

from gtx_ray.ieee2030_5.events import Response
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import Created, Page, PageRequest
from gtx_ray.ieee2030_5.server.errors import BadRequest, Forbidden, NotFound
from gtx_ray.ieee2030_5.server.managers.common import caller_poll_rate, paginate
from gtx_ray.ieee2030_5.server.pricing import PROFILE_MRID
from gtx_ray.ieee2030_5.server.registry import Registry
from gtx_ray.ieee2030_5.server.responses import (
    RESPONSE_SETS,
    SET_DER,
    SET_DRLC,
    SET_MESSAGING,
    ResponseSetInfo,
)


@dataclass(frozen=True, slots=True)
class ResponseIn:
    """A posted Response: its element name (Response, DrResponse, PriceResponse,
    TextResponse), LFDI, subject mRID, status and createdDateTime (epoch s)."""

    kind: str
    lfdi: str
    subject: int
    status: int | None
    created: int | None


@dataclass(frozen=True, slots=True)
class ResponseSetView:
    info: ResponseSetInfo
    responses: int


def list_sets(
    registry: Registry, caller: DeviceIdentity, now: int, page: PageRequest
) -> Page[ResponseSetView]:
    views = [
        ResponseSetView(s, len(registry.responses.of_set(s.id, caller.lfdi)))
        for s in RESPONSE_SETS.values()
    ]
    return paginate(views, page, poll_rate=caller_poll_rate(registry, caller))


def get_set(registry: Registry, caller: DeviceIdentity, now: int, set_id: int) -> ResponseSetView:
    info = registry.responses.response_set(set_id)
    return ResponseSetView(info, len(registry.responses.of_set(set_id, caller.lfdi)))


def list_responses(
    registry: Registry, caller: DeviceIdentity, now: int, set_id: int, page: PageRequest
) -> tuple[int, Page[Response]]:
    """The caller's own Responses in the set, newest first."""
    items = registry.responses.of_set(set_id, caller.lfdi)
    return set_id, paginate(items, page, lambda r: r.received)


def get_response(
    registry: Registry, caller: DeviceIdentity, now: int, set_id: int, response_id: int
) -> Response:
    response = registry.responses.get(set_id, response_id)
    if response.lfdi != caller.lfdi:
        raise NotFound(f"no response {response_id} of yours in set {set_id}")
    return response


def _known_subject(registry: Registry, set_id: int, subject: int) -> bool:
    if set_id == SET_DRLC:
        return registry.drlc.by_mrid(subject) is not None
    if set_id == SET_DER:
        return registry.der.by_mrid(subject) is not None
    if set_id == SET_MESSAGING:
        return any(m.mrid == subject for m in registry.messaging.messages.values())
    return subject == PROFILE_MRID or bool(registry.pricing.rates)


def post_response(
    registry: Registry, caller: DeviceIdentity, now: int, set_id: int, body: ResponseIn
) -> Created:
    registry.responses.response_set(set_id)
    if body.lfdi != caller.lfdi:
        raise Forbidden(f"endDeviceLFDI {body.lfdi} is not the LFDI of your certificate")
    if not _known_subject(registry, set_id, body.subject):
        raise BadRequest(f"subject {body.subject:032X} is not an event of response set {set_id}")
    response = registry.responses.add(
        set_id, body.kind, caller.lfdi, body.subject, body.status, body.created, now
    )
    return Created(f"/rsps/{set_id}/rsp/{response.id}")
