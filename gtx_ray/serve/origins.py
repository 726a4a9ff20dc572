"""Which browser origins may use which REST endpoints (CORS, and refusing cross-site requests).

A browser on the operator's machine is a loopback client, so without this any page on any site
could pause the simulation or read the admin device list through it. The rule:

- Public reads (``GET``/``HEAD`` outside the admin API) are open to every origin
  (``Access-Control-Allow-Origin: *``), for dashboards.
- Protected requests, i.e. every other method on any path and every method under
  ``/api/ieee2030_5/admin``, are refused with 403 when they come from a browser page of another
  origin: an ``Origin`` header that is neither the API's own origin nor in the allow-list
  (``API_CORS_ORIGINS``), or, without ``Origin``, a ``Sec-Fetch-Site`` other than
  ``same-origin`` / ``none``. Preflights for them are granted only to those origins.
  Requests without either header (curl, scripts) pass on to the token or loopback check.

The API's own origin is ``http://`` plus the request's ``Host`` when that host is an IP
literal, ``localhost`` or the configured ``--api-host``: a host name that merely resolves here
(DNS rebinding) is not trusted unless listed.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ADMIN_PREFIX = "/api/ieee2030_5/admin"
SAFE_METHODS = frozenset({"GET", "HEAD"})
EXPOSED_HEADERS = b"X-Total-Count, ETag"
PROTECTED_METHODS = b"GET, HEAD, POST, PUT, DELETE"
PROTECTED_HEADERS = b"Authorization, Content-Type"
PREFLIGHT_MAX_AGE_S = b"600"
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values of our own pages


def normalise_origin(text: str) -> str:
    """``scheme://host[:port]`` in the form browsers send in ``Origin`` (lower case, no default
    port); ValueError when ``text`` is not an http(s) origin."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) origin such as http://host:8080")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r} is not an origin (scheme://host[:port] only)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def is_protected(method: str, path: str) -> bool:
    """The request changes state or reaches the admin API."""
    return method not in SAFE_METHODS or path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def _literal_or_local(hostname: str, api_host: str) -> bool:
    if hostname in ("localhost", api_host.lower()):
        return True
    try:
        ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class OriginPolicy:
    """The API's listening host (``--api-host``) and the extra origins allowed to use protected
    endpoints (``API_CORS_ORIGINS``, normalised)."""

    api_host: str = "127.0.0.1"
    allowed: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(cls, api_host: str, allowed: tuple[str, ...] | list[str] = ()) -> OriginPolicy:
        return cls(api_host, frozenset(normalise_origin(o) for o in allowed))

    def is_own(self, origin: str, host_header: str | None) -> bool:
        """``origin`` is this API's own (a page it served itself)."""
        if not host_header:
            return False
        own = "http://" + host_header.strip().lower()
        hostname = urlsplit(own).hostname or ""
        return origin == own and _literal_or_local(hostname, self.api_host)

    def trusted(self, origin: str, host_header: str | None) -> bool:
        return origin in self.allowed or self.is_own(origin, host_header)

    def refusal(self, headers: dict[str, str]) -> str | None:
        """Why a protected request with these (lower-cased) headers must be refused, or None."""
        origin, site = headers.get("origin"), headers.get("sec-fetch-site")
        if origin is not None:
            if origin in self.allowed:
                return None
            if self.is_own(origin, headers.get("host")) and site in (None, *SAME_SITE_FETCHES):
                return None
            return (
                f"requests from the web page origin {origin!r} may not use this endpoint (only "
                "the API's own origin and the origins in API_CORS_ORIGINS may)"
            )
        if site is not None and site not in SAME_SITE_FETCHES:
            return f"cross-site browser requests (Sec-Fetch-Site: {site}) may not use this endpoint"
        return None


def _merge_vary(
    headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``headers`` plus ``extra``, with ``Origin`` added to ``Vary`` (caches must key on it)."""
    vary = [v for k, v in headers if k.lower() == b"vary"]
    kept = [(k, v) for k, v in headers if k.lower() != b"vary"]
    if not any(b"origin" in v.lower() or v.strip() == b"*" for v in vary):
        vary.append(b"Origin")
    return [*kept, *extra, (b"vary", b", ".join(vary))]


def _refuse(message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": message, "status": 403}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"vary", b"Origin"),
    ]
    return 403, headers, body


class OriginGuard:
    """ASGI middleware applying an ``OriginPolicy``: answers preflights, refuses cross-origin
    protected requests with a JSON 403, and adds the CORS headers to what passes."""

    def __init__(self, app: Any, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method, path, origin = scope["method"], scope["path"], headers.get("origin")
        requested = headers.get("access-control-request-method")
        if method == "OPTIONS" and origin is not None and requested is not None:
            await self._respond(send, *self._preflight(path, origin, requested.upper(), headers))
            return
        protected = is_protected(method, path)
        if protected:
            reason = self.policy.refusal(headers)
            if reason is not None:
                await self._respond(send, *_refuse(reason))
                return
        if origin is None:
            await self.app(scope, receive, send)
            return
        extra = [(b"access-control-expose-headers", EXPOSED_HEADERS)]
        if not protected:
            extra.append((b"access-control-allow-origin", b"*"))
        elif origin in self.policy.allowed:  # same-origin answers need no CORS headers
            extra.append((b"access-control-allow-origin", origin.encode("latin-1")))

        async def with_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _merge_vary(message.get("headers", []), extra)}
            await send(message)

        await self.app(scope, receive, with_cors)

    def _preflight(
        self, path: str, origin: str, requested: str, headers: dict[str, str]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if not is_protected(requested, path):
            allow = [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"GET, HEAD"),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE_S),
                (b"vary", b"Origin"),
            ]
            wanted = headers.get("access-control-request-headers")
            if wanted:  # reads may send e.g. If-None-Match
                allow.append((b"access-control-allow-headers", wanted.encode("latin-1")))
            return 200, [*allow, (b"content-length", b"0")], b""
        if not self.policy.trusted(origin, headers.get("host")):
            return _refuse(
                f"the web page origin {origin!r} may not {requested} {path} (only the API's own "
                "origin and the origins in API_CORS_ORIGINS may)"
            )
        allow = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", PROTECTED_METHODS),
            (b"access-control-allow-headers", PROTECTED_HEADERS),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE_S),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        return 200, allow, b""

    @staticmethod
    async def _respond(
        send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
