"""A meter's requests to its 2030.5 server: HTTP over mutual TLS, answers turned into documents
or errors, hrefs followed.

``Session`` is the only place a meter touches the network. Each request carries the meter's own
TLS context (its certificate and key; the server verified against the trust anchor), is bounded
in time (``request_timeout_s``; ``connect_timeout_s`` for TCP connect + TLS handshake) and in
size (``max_response_bytes``), and never follows redirects. A non-success answer becomes the
``errors`` class that says what to do next (``raise_for``); a body becomes a parsed, root-checked
document (``get``); an href, relative or absolute, becomes a URL against the server's
(``href``, ``join``).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import NoReturn

import aiohttp
from lxml import etree
from yarl import URL

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.client.errors import Busy, Gone, ProtocolError, Refused, TransportError
from gtx_ray.ieee2030_5.client.settings import ClientSettings
from gtx_ray.ieee2030_5.codec import (
    MEDIA_TYPE,
    XmlError,
    child,
    children,
    expect_root,
    parse_document,
)
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.pki import DeviceCredentials
from gtx_ray.ieee2030_5.tls import client_context

MAX_DEPTH = 32
"""Bound on the element nesting of a document the client reads."""


@dataclass
class Reply:
    """A server's answer: status, the Location and Retry-After headers, the (bounded) body."""

    status: int
    location: str | None
    retry_after: str | None
    body: bytes


class Session:
    """One meter's HTTP-over-mutual-TLS conversation with one server.

    server: the DeviceCapability URL (``settings.dcap_url``), the base of relative hrefs.
    identity: the LFDI and SFDI of the certificate the meter presents (what the documents it
    posts, Responses included, say it is). ``open`` binds the shared ``aiohttp.ClientSession``
    (connection pool) and builds the meter's TLS context; ``requests`` counts requests sent.
    """

    def __init__(
        self,
        server: URL,
        credentials: DeviceCredentials,
        identity: DeviceIdentity,
        settings: ClientSettings,
    ) -> None:
        self.server = server
        self.credentials = credentials
        self.identity = identity
        self.settings = settings
        self.requests = 0
        self._http: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None
        # sock_connect bounds TCP connect + TLS handshake; waiting for a pool slot is bounded by
        # the whole request only (a busy pool is not a dead server).
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s,
            connect=None,
            sock_connect=settings.connect_timeout_s,
        )

    def open(self, http: aiohttp.ClientSession) -> None:
        """Send requests through ``http``; Refused when the meter's credentials are unusable."""
        self._http = http
        if self._ssl is None:
            c = self.credentials
            try:
                self._ssl = client_context(
                    c.ca, c.cert_chain, c.key, check_hostname=self.settings.check_hostname
                )
            except ConfigError as exc:
                raise Refused(str(exc)) from None

    # --- requests ----------------------------------------------------------------------------
    async def request(self, method: str, url: URL, body: bytes | None = None) -> Reply:
        """One request; any answer is returned, no answer raises TransportError."""
        assert self._http is not None
        headers = {"Accept": MEDIA_TYPE}
        if body is not None:
            headers["Content-Type"] = MEDIA_TYPE
            if self.settings.observe is not None:
                self.settings.observe(method, str(url), body)
        self.requests += 1
        try:
            async with self._http.request(
                method,
                url,
                data=body,
                headers=headers,
                ssl=self._ssl,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                data = await self._read_body(resp)
                return Reply(
                    resp.status, resp.headers.get("Location"), resp.headers.get("Retry-After"), data
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            what = type(exc).__name__
            raise TransportError(f"{method} {url.path}: {what}: {exc}".rstrip(": ")) from None

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.max_response_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise ProtocolError(f"{resp.url.path}: {resp.content_length} byte body over {limit}")
        parts: list[bytes] = []
        size = 0
        while chunk := await resp.content.read(65536):
            size += len(chunk)
            if size > limit:
                raise ProtocolError(f"{resp.url.path}: body over {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    @staticmethod
    def raise_for(reply: Reply, what: str) -> NoReturn:
        """Raise the error class of a non-success answer: 403/404/410 → Gone, 429/5xx → Busy
        (with Retry-After), anything else → ProtocolError."""
        s = reply.status
        detail = f"{what} → HTTP {s}"
        if s in (403, 404, 410):
            raise Gone(detail)
        if s == 429 or s >= 500:
            raise Busy(detail, retry_after(reply.retry_after))
        raise ProtocolError(detail)

    async def get(self, url: URL, *names: str) -> etree._Element:
        """GET a document whose root is one of ``names``; a 200 or an error."""
        reply = await self.request("GET", url)
        if reply.status != 200:
            self.raise_for(reply, f"GET {url.path}")
        try:
            doc = parse_document(reply.body, self.settings.max_response_bytes, MAX_DEPTH)
            expect_root(doc, *names)
        except XmlError as exc:
            raise ProtocolError(f"GET {url.path}: {exc}") from None
        return doc

    async def find_in_list(
        self,
        list_url: URL,
        list_name: str,
        item_name: str,
        match: Callable[[etree._Element], bool],
    ) -> URL | None:
        """The href of the first ``item_name`` of a paged list that ``match``es (and has an
        href), reading pages until it is found (see ``_pages``); else None."""
        async with contextlib.aclosing(self._pages(list_url, list_name, item_name)) as pages:
            async for items in pages:
                for item in items:
                    if match(item) and item.get("href"):
                        return self.join(item.get("href"))
        return None

    async def read_list(
        self, list_url: URL, list_name: str, item_name: str
    ) -> list[etree._Element]:
        """Every ``item_name`` of a paged list (bounded, see ``_pages``)."""
        pages = self._pages(list_url, list_name, item_name)
        return [item async for items in pages for item in items]

    async def _pages(
        self, list_url: URL, list_name: str, item_name: str
    ) -> AsyncIterator[list[etree._Element]]:
        """The items of each page of a list, at most ``max_list_pages`` pages of
        ``list_page_size``, until a page is empty or the list's ``all`` is reached."""
        size = self.settings.list_page_size
        for page in range(self.settings.max_list_pages):
            doc = await self.get(list_url.update_query(s=page * size, l=size), list_name)
            items = children(doc, item_name)
            yield items
            total = _attr_int(doc, "all")
            if not items or total is None or (page + 1) * size >= total:
                return

    # --- hrefs -------------------------------------------------------------------------------
    def join(self, href: str) -> URL:
        """An href (relative or absolute) as a URL."""
        return self.server.join(URL(href))

    def href(self, doc: etree._Element, link: str, required: bool = True) -> URL | None:
        """The URL of ``doc``'s ``link`` element (e.g. ``TimeLink``); ProtocolError when it is
        missing and ``required``, else None."""
        el = child(doc, link)
        href = el.get("href") if el is not None else None
        if not href:
            if required:
                raise ProtocolError(f"{etree.QName(doc).localname} has no {link}")
            return None
        return self.join(href)

    def local(self, url: URL) -> str:
        """An href as the status shows it: the path when on the server's origin."""
        if url.origin() == self.server.origin():
            return url.raw_path_qs
        return str(url)


# --- fields of answers -----------------------------------------------------------------------


def text(el: etree._Element, name: str) -> str | None:
    """The stripped text of ``el``'s child ``name``, or None."""
    c = child(el, name)
    return c.text.strip() if c is not None and c.text else None


def rate(value: str | None, default: int) -> int:
    """A pollRate/postRate (s) from the wire; the default when absent, 0 or not a number."""
    if value is None or not value.strip().isdigit() or int(value) == 0:
        return default
    return int(value)


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds, or None (absent, or an HTTP date)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value)


def _attr_int(el: etree._Element, name: str) -> int | None:
    value = el.get(name)
    return int(value) if value is not None and value.isdigit() else None
