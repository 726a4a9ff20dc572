"""What every route needs: the caller's identity, paging, bodies, running an op, responses."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from lxml import etree

from gtx_ray.ieee2030_5.codec import MEDIA_TYPE, XmlError, parse_document
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import Created, Deleted, PageRequest, Updated
from gtx_ray.ieee2030_5.server.backend import Backend
from gtx_ray.ieee2030_5.server.dispatch import Op
from gtx_ray.ieee2030_5.server.errors import Forbidden, ResourceError, UnsupportedMediaType
from gtx_ray.ieee2030_5.server.peers import PeerGate

ACCEPTED_TYPES = frozenset({MEDIA_TYPE, "application/xml"})
"""Request Content-Types read as a 2030.5 document (parameters such as charset are ignored).
Anything else, or none, is answered 415: a body is only parsed when the client said it is XML."""


@dataclass(frozen=True)
class ApiSettings:
    """Limits the routes apply: body bytes, XML depth, largest page (``l``)."""

    max_body_bytes: int
    max_xml_depth: int
    max_page: int


BACKEND = web.AppKey("backend", Backend)
SETTINGS = web.AppKey("settings", ApiSettings)
PEERS = web.AppKey("peers", PeerGate)


def caller(request: web.Request) -> DeviceIdentity:
    """The identity of the TLS peer: from its certificate, never from headers or the body;
    403 unless it is a device certificate (``peers.PeerGate``)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise Forbidden("a client certificate is required")
    return request.app[PEERS].identify(der)


def page_request(request: web.Request) -> PageRequest:
    """``s`` (start, default 0), ``a`` (after, epoch s, default 0), ``l`` (limit, default 1;
    capped at the configured largest page) from the query string; 400 when not integers ≥ 0."""
    values = {}
    for key, default in (("s", 0), ("a", 0), ("l", 1)):
        raw = request.query.get(key)
        if raw is None:
            values[key] = default
            continue
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            raise XmlError(f"query parameter {key}={raw[:20]!r} is not a non-negative integer")
        values[key] = int(raw)
    limit = min(values["l"], request.app[SETTINGS].max_page)
    return PageRequest(start=values["s"], after=values["a"], limit=limit)


async def read_document(request: web.Request) -> etree._Element:
    """The request body parsed safely; 413 when too large, 415 for a non-XML content type."""
    settings = request.app[SETTINGS]
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type not in ACCEPTED_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {content_type[:60] or '(none)'} is not accepted: use {MEDIA_TYPE}"
        )
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=settings.max_body_bytes, actual_size=length)
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):  # b"" at the end of the body
        size += len(chunk)
        if size > settings.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=settings.max_body_bytes, actual_size=size)
        parts.append(chunk)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    return parse_document(body, settings.max_body_bytes, settings.max_xml_depth)


async def run(request: web.Request, name: str, *args: Any) -> Any:
    """Run one registry operation for the caller; a ResourceError outcome is raised."""
    op = Op(name, caller(request), int(time.time()), args)
    outcome = await request.app[BACKEND].execute(op)
    if isinstance(outcome, ResourceError):
        raise outcome
    return outcome


def xml(body: bytes, status: int = 200) -> web.Response:
    """A 2030.5 document response."""
    return web.Response(body=body, status=status, content_type=MEDIA_TYPE)


def written(outcome: Created | Updated | Deleted) -> web.Response:
    """201 + Location for a creation, 204 (+ Location) for an update or deletion."""
    if isinstance(outcome, Created):
        return web.Response(status=201, headers={"Location": outcome.location})
    if isinstance(outcome, Updated):
        return web.Response(status=204, headers={"Location": outcome.location})
    return web.Response(status=204)


def int_param(request: web.Request, name: str) -> int:
    """A numeric path parameter (routes only match digits)."""
    return int(request.match_info[name])
