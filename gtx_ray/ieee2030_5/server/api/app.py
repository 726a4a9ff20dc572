"""The aiohttp application: the routes of every function set and the error middleware.

Errors become statuses here, once: ResourceError → its status (409 with Location; 400, 403 and
415 with an ``Error`` document), XmlError → 400 with an ``Error`` document; the message is the
HTTP reason phrase. aiohttp's own 404/405/413 keep their status (405 keeps its Allow header; 413
has an Error body and closes the connection so an over-long upload stops), anything unexpected →
500 (logged). ``ServerStats`` counts responses by status.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from gtx_ray.ieee2030_5.codec import REASON_RESOURCE_LIMIT, XmlError
from gtx_ray.ieee2030_5.elements import render_error
from gtx_ray.ieee2030_5.server.api import (
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
from gtx_ray.ieee2030_5.server.api.common import BACKEND, PEERS, SETTINGS, ApiSettings
from gtx_ray.ieee2030_5.server.backend import Backend
from gtx_ray.ieee2030_5.server.errors import ResourceError
from gtx_ray.ieee2030_5.server.peers import PeerGate

log = logging.getLogger(__name__)


@dataclass
class ServerStats:
    """Responses by HTTP status and the last server-side error message."""

    statuses: Counter = field(default_factory=Counter)
    last_error: str | None = None

    def summary(self) -> dict[str, object]:
        total = sum(self.statuses.values())
        client = sum(n for s, n in self.statuses.items() if 400 <= s < 500)
        server = sum(n for s, n in self.statuses.items() if s >= 500)
        return {
            "requests": total,
            "client_errors": client,
            "server_errors": server,
            "last_error": self.last_error,
            "by_status": {str(k): v for k, v in sorted(self.statuses.items())},
        }


STATS = web.AppKey("stats", ServerStats)
WITH_BODY = frozenset({400, 403, 413, 415})
"""Statuses of a ResourceError answered with an ``Error`` document."""
REASON_PHRASE_MAX = 200
"""Longest HTTP reason phrase sent with an error, characters."""


def _phrase(message: str | None) -> str | None:
    """``message`` as an HTTP reason phrase (printable ASCII, one line, bounded), or None.

    The Error document has only a reason code, so the phrase is where a client (and its log)
    learns which field was wrong."""
    if not message:
        return None
    text = "".join(c if " " <= c <= "~" else "?" for c in message)
    return text[:REASON_PHRASE_MAX]


def _error_document(
    status: int,
    reason: int | None,
    headers: dict[str, str] | None = None,
    message: str | None = None,
):
    phrase = _phrase(message)
    if reason is None:
        return web.Response(status=status, headers=headers, reason=phrase)
    return web.Response(
        status=status,
        body=render_error(reason),
        content_type="application/sep+xml",
        headers=headers,
        reason=phrase,
    )


@web.middleware
async def _errors(request: web.Request, handler) -> web.StreamResponse:
    stats = request.app[STATS]
    try:
        response = await handler(request)
    except ResourceError as exc:
        headers = {"Location": exc.location} if exc.location else None
        if exc.status >= 500:
            stats.last_error = exc.message
            log.warning("%s %s → %d: %s", request.method, request.path, exc.status, exc.message)
        else:
            log.debug("%s %s → %d: %s", request.method, request.path, exc.status, exc.message)
        reason = exc.reason if exc.status in WITH_BODY else None
        message = exc.message if exc.status < 500 else None
        response = _error_document(exc.status, reason, headers, message)
        if exc.status == 503:
            response.headers["Retry-After"] = "1"
    except XmlError as exc:
        log.debug("%s %s → 400: %s", request.method, request.path, exc)
        response = _error_document(400, exc.reason, message=str(exc))
    except web.HTTPException as exc:
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        reason = REASON_RESOURCE_LIMIT if exc.status == 413 else None
        response = _error_document(exc.status, reason, headers)
        if exc.status == 413:
            response.force_close()
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        stats.last_error = f"{type(exc).__name__}: {exc}"
        response = web.Response(status=500)
    stats.statuses[response.status] += 1
    return response


def create_app(backend: Backend, settings: ApiSettings, peers: PeerGate) -> web.Application:
    """The 2030.5 application over ``backend``; ``settings`` bounds bodies, depth and pages;
    ``peers`` decides which client certificates are devices."""
    app = web.Application(middlewares=[_errors], client_max_size=settings.max_body_bytes)
    app[BACKEND] = backend
    app[SETTINGS] = settings
    app[PEERS] = peers
    app[STATS] = ServerStats()
    for module in (dcap, edev, mirror, metering, drlc, der, pricing, messaging, response):
        app.add_routes(module.routes())
    return app
