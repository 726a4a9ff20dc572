"""How a meter finds itself on a server: DeviceCapability, the server's clock, its EndDevice.

1. ``GET /dcap`` — the only fixed path; every other resource is reached through the links of the
   documents, relative or absolute hrefs alike. DeviceCapability's ``pollRate`` is kept.
2. ``Time``: the offset between the server's clock and ours (server − local, seconds, measured at
   the midpoint of the request) is kept, reported in status and used for the times the client
   writes (``server_now``). Reading timestamps are the simulation's data and are never shifted.
3. EndDevice: found by LFDI in the EndDeviceList (paged, bounded), else registered by POSTing an
   EndDevice with the LFDI and SFDI of the meter's own certificate: ``201`` + Location, or ``409``
   with Location ("already registered"). Its lFDI must be ours. If a PIN is configured, the
   Registration's ``pIN`` must equal it, else ``Refused``.
4. FunctionSetAssignments (``read_function_sets``, for meters that poll function sets): the
   EndDevice's FunctionSetAssignmentsList (paged, bounded).

Every ``...Link`` href of DeviceCapability, of the EndDevice and of each FunctionSetAssignments
is kept in ``Discovery.links`` (``Links``), refreshed whenever the document is read again: the
function-set pollers find their resources there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from lxml import etree
from yarl import URL

from gtx_ray.ieee2030_5.client.documents import end_device_document
from gtx_ray.ieee2030_5.client.errors import ProtocolError, Refused
from gtx_ray.ieee2030_5.client.session import Session, rate, text
from gtx_ray.ieee2030_5.client.settings import ClientSettings
from gtx_ray.ieee2030_5.codec import NS, XmlError, all_children, child, read_int, read_uint
from gtx_ray.ieee2030_5.identity import DeviceIdentity, normalise_lfdi


@dataclass(frozen=True)
class Resource:
    """A document the meter read: its href (None if it had none) and every ``...Link`` child's
    href as an absolute URL, keyed by the link's element name (``"TimeLink"``, …)."""

    href: URL | None = None
    links: Mapping[str, URL] = field(default_factory=dict)

    def link(self, name: str) -> URL | None:
        """The URL of the link ``name`` (e.g. ``"DemandResponseProgramListLink"``), or None."""
        return self.links.get(name)


@dataclass(frozen=True)
class Links:
    """What a meter discovered, as pollers see it (a snapshot; a new one after every re-read).

    device_capability: ``/dcap``. end_device: the meter's EndDevice (its href and links).
    function_sets: the EndDevice's FunctionSetAssignments in list order (read only for meters
    that carry function-set pollers; empty otherwise).
    """

    device_capability: Resource = field(default_factory=Resource)
    end_device: Resource = field(default_factory=Resource)
    function_sets: tuple[Resource, ...] = ()

    def all(self, name: str) -> list[URL]:
        """Every distinct URL of the link ``name``: DeviceCapability's, the EndDevice's, then
        each FunctionSetAssignments' (e.g. every DemandResponseProgramListLink to poll)."""
        out: list[URL] = []
        for resource in (self.device_capability, self.end_device, *self.function_sets):
            url = resource.link(name)
            if url is not None and url not in out:
                out.append(url)
        return out


def resource_of(doc: etree._Element, session: Session, href: URL | None = None) -> Resource:
    """The href (``href``, else the document's own) and ``...Link`` hrefs of a document."""
    own = doc.get("href")
    links = {}
    for el in all_children(doc):
        q = etree.QName(el)
        if q.namespace == NS and q.localname.endswith("Link") and el.get("href"):
            links.setdefault(q.localname, session.join(el.get("href")))
    return Resource(href if href is not None else session.join(own) if own else None, links)


class Discovery:
    """What a meter learned about the server and itself there.

    poll_rate_s: DeviceCapability's pollRate (s). clock_offset_s: server − local clock (s; None
    before the first Time). time_url, end_device_url: where Time and the meter's EndDevice are;
    end_device_href: the latter as status shows it. links: every link discovered (``Links``).
    pin: the Registration PIN the server must report (None: not checked).
    """

    def __init__(
        self,
        session: Session,
        identity: DeviceIdentity,
        pin: int | None,
        settings: ClientSettings,
    ) -> None:
        self.session = session
        self.identity = identity
        self.pin = pin
        self.settings = settings
        self.poll_rate_s = settings.default_poll_rate_s
        self.clock_offset_s: float | None = None
        self.time_url: URL | None = None
        self.end_device_url: URL | None = None
        self.end_device_href: str | None = None
        self.links = Links()

    # --- DeviceCapability and Time -----------------------------------------------------------
    async def read_server(self) -> etree._Element:
        """DeviceCapability (pollRate, TimeLink) and, if linked, the server's clock; returns the
        DeviceCapability document."""
        dcap = await self.read_device_capability()
        self.time_url = self.session.href(dcap, "TimeLink", required=False)
        await self.read_time()
        return dcap

    async def read_device_capability(self) -> etree._Element:
        """GET DeviceCapability and keep its pollRate (s) and links."""
        dcap = await self.session.get(self.session.server, "DeviceCapability")
        self.poll_rate_s = rate(dcap.get("pollRate"), self.settings.default_poll_rate_s)
        resource = resource_of(dcap, self.session, self.session.server)
        self.links = replace(self.links, device_capability=resource)
        return dcap

    async def read_time(self) -> None:
        """Measure the server's clock offset (s) from its Time resource, when it has one."""
        if self.time_url is None:
            return
        sent = time.time()
        doc = await self.session.get(self.time_url, "Time")
        received = time.time()
        try:
            server_now = read_int(doc, "currentTime", -(2**63), 2**63 - 1, required=True)
        except XmlError as exc:
            raise ProtocolError(f"Time: {exc}") from None
        assert server_now is not None
        self.clock_offset_s = round(server_now - (sent + received) / 2, 3)

    def server_now(self) -> int:
        """The server's clock as far as we know it (epoch s)."""
        return int(time.time() + (self.clock_offset_s or 0.0))

    # --- the meter's EndDevice ---------------------------------------------------------------
    async def end_device(self, list_url: URL) -> etree._Element:
        """Find the meter's EndDevice in the EndDeviceList at ``list_url`` or register it, check
        its lFDI and the Registration PIN; returns the EndDevice document."""
        url = await self._find(list_url) or await self._register(list_url)
        self.end_device_url = url
        self.end_device_href = self.session.local(url)
        edev = await self.read_end_device()
        lfdi = child(edev, "lFDI")
        if lfdi is not None and lfdi.text and normalise_lfdi(lfdi.text) != self.identity.lfdi:
            raise ProtocolError(f"{self.end_device_href} has the lFDI {lfdi.text}, not ours")
        await self._check_pin(edev)
        return edev

    async def read_end_device(self) -> etree._Element:
        """GET the meter's EndDevice (once found) and keep its links."""
        assert self.end_device_url is not None
        edev = await self.session.get(self.end_device_url, "EndDevice")
        resource = resource_of(edev, self.session, self.end_device_url)
        self.links = replace(self.links, end_device=resource)
        return edev

    async def read_function_sets(self, edev: etree._Element) -> None:
        """Read the EndDevice's FunctionSetAssignmentsList and keep each one's links (none when
        the EndDevice links no list)."""
        list_url = self.session.href(edev, "FunctionSetAssignmentsListLink", required=False)
        function_sets: tuple[Resource, ...] = ()
        if list_url is not None:
            items = await self.session.read_list(
                list_url, "FunctionSetAssignmentsList", "FunctionSetAssignments"
            )
            function_sets = tuple(resource_of(item, self.session) for item in items)
        self.links = replace(self.links, function_sets=function_sets)

    async def _find(self, list_url: URL) -> URL | None:
        def ours(item: etree._Element) -> bool:
            lfdi = text(item, "lFDI")
            return bool(lfdi) and _same_lfdi(lfdi, self.identity.lfdi)

        return await self.session.find_in_list(list_url, "EndDeviceList", "EndDevice", ours)

    async def _register(self, list_url: URL) -> URL:
        body = end_device_document(self.identity, self.server_now())
        reply = await self.session.request("POST", list_url, body)
        if reply.status in (200, 201, 204, 409) and reply.location:
            return self.session.join(reply.location)
        if reply.status in (201, 409):  # no Location: look it up
            found = await self._find(list_url)
            if found is not None:
                return found
            raise ProtocolError(f"POST {list_url.path} → {reply.status} without a Location")
        if reply.status == 403:
            raise Refused(
                f"the server refused to register LFDI {self.identity.lfdi} (HTTP 403): it is not "
                "on the server's allow-list or the certificate is not accepted"
            )
        self.session.raise_for(reply, f"POST {list_url.path}")

    async def _check_pin(self, edev: etree._Element) -> None:
        if self.pin is None:
            return
        rg_url = self.session.href(edev, "RegistrationLink", required=False)
        if rg_url is None:
            raise Refused(
                "the server's EndDevice has no RegistrationLink, so its PIN cannot be checked; "
                "configure no PIN to accept this server"
            )
        rg = await self.session.get(rg_url, "Registration")
        try:
            pin = read_uint(rg, "pIN", 32, required=True)
        except XmlError as exc:
            raise ProtocolError(f"Registration: {exc}") from None
        if pin != self.pin:
            raise Refused(
                f"Registration PIN mismatch: the server at {self.session.server.origin()} says "
                f"{pin}, this meter is configured with {self.pin}; not mirroring to it (check the "
                "configured PIN or the server URL)"
            )


def _same_lfdi(text: str, lfdi: str) -> bool:
    try:
        return normalise_lfdi(text) == lfdi
    except ValueError:
        return False
