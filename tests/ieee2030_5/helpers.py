"""Test helpers: a 2030.5 server on a background thread and a keep-alive mutual-TLS client that
validates every response body against the official schema."""

from __future__ import annotations

import asyncio
import http.client
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gtx_ray.ieee2030_5.codec import MEDIA_TYPE, NS
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.pki import device_credentials, identity_of, load_first_certificate
from gtx_ray.ieee2030_5.server.backend import LocalBackend
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config, build_registry
from gtx_ray.ieee2030_5.server.registry import Registry
from gtx_ray.ieee2030_5.server.tls_server import Ieee2030_5Server
from gtx_ray.ieee2030_5.tls import client_context

Q = "{" + NS + "}"


class ThreadedServer:
    """Ieee2030_5Server with an in-process registry, on its own event loop thread. ``registry``:
    serve an existing registry (a front restarted over the same state), else a fresh one."""

    def __init__(self, config: Ieee2030_5Config, registry: Registry | None = None) -> None:
        self.registry = (
            registry if registry is not None else build_registry(config, int(time.time()))
        )
        self.loop = asyncio.new_event_loop()
        self.server = Ieee2030_5Server(config, LocalBackend(self.registry))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self.port = self.server.port

    def admin(self, action, **kwargs):
        """Run an operator action (a ``managers.admin`` function) on the server's loop, where the
        registry lives, as the admin API does."""

        async def run():
            return action(self.registry, int(time.time()), **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stats(self) -> dict:
        async def get() -> dict:
            return self.server.stats()

        return asyncio.run_coroutine_threadsafe(get(), self.loop).result(10)

    def stop(self) -> None:
        """Stop the server and its loop; a second call does nothing."""
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    doc: etree._Element | None = None
    reason: str = ""

    def text(self, path: str) -> str | None:
        """Text of the first element at ``path`` (names without namespace, '/'-separated)."""
        assert self.doc is not None
        el = self.doc.find("/".join(Q + p for p in path.split("/")))
        return None if el is None else el.text

    def all(self, name: str) -> list[etree._Element]:
        assert self.doc is not None
        return self.doc.findall(Q + name)


@dataclass
class Sep2Client:
    """A meter's view of the server: its own certificate, keep-alive HTTPS, schema checks.

    ``der_schema`` (the CSIP-AUS schema): DER documents (root DER... or DefaultDERControl) are
    validated against it instead of ``schema``, bodies sent as well as received."""

    port: int
    certs_dir: Path
    meter_id: str
    schema: etree.XMLSchema
    host: str = "localhost"
    context: ssl.SSLContext | None = None
    der_schema: etree.XMLSchema | None = None
    identity: DeviceIdentity = field(init=False)

    def __post_init__(self) -> None:
        creds = device_credentials(self.certs_dir, self.meter_id)
        self.identity = identity_of(load_first_certificate(creds.cert_chain.read_bytes()))
        if self.context is None:
            self.context = client_context(creds.ca, creds.cert_chain, creds.key)
        self.conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=10
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        content_type: str | None = MEDIA_TYPE,
    ) -> Response:
        """``method path`` with ``body`` declared as ``content_type`` (None: no Content-Type)."""
        if isinstance(body, str):
            body = body.encode()
        if body is not None and self.der_schema is not None:
            sent = etree.fromstring(body)
            if self._is_der(sent):
                self._validate(sent, self.der_schema, f"{method} {path} request", body)
        headers = {"Content-Type": content_type} if body is not None and content_type else {}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            raw = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.conn.close()
            self.conn.request(method, path, body=body, headers=headers)
            raw = self.conn.getresponse()
        data = raw.read()
        headers = {k.lower(): v for k, v in raw.getheaders()}
        resp = Response(raw.status, headers, data, reason=raw.reason)
        if data:
            assert resp.headers.get("content-type", "").startswith(MEDIA_TYPE), resp.headers
            # Some test harnesses read bodies as text and reject an XML declaration.
            assert not data.lstrip().startswith(b"<?xml"), f"{method} {path}: {data[:80]!r}"
            doc = etree.fromstring(data)
            schema = self.der_schema if self.der_schema and self._is_der(doc) else self.schema
            self._validate(doc, schema, f"{method} {path} → {raw.status}", data)
            resp.doc = doc
        return resp

    @staticmethod
    def _is_der(doc: etree._Element) -> bool:
        name = etree.QName(doc).localname
        return name.startswith("DER") or name == "DefaultDERControl"

    @staticmethod
    def _validate(doc: etree._Element, schema: etree.XMLSchema, what: str, data: bytes) -> None:
        if not schema.validate(doc):
            raise AssertionError(
                f"{what}: body is not schema-valid: "
                f"{schema.error_log.last_error}\n{data.decode()[:2000]}"
            )

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, body: bytes | str) -> Response:
        return self.request("POST", path, body)

    def put(self, path: str, body: bytes | str) -> Response:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Response:
        return self.request("DELETE", path)

    def close(self) -> None:
        self.conn.close()

    # --- documents a meter posts ---------------------------------------------------------
    def end_device_xml(self, lfdi: str | None = None, sfdi: int | None = None) -> str:
        lfdi = self.identity.lfdi if lfdi is None else lfdi
        sfdi = self.identity.sfdi if sfdi is None else sfdi
        return (
            f'<EndDevice xmlns="{NS}"><lFDI>{lfdi}</lFDI><sFDI>{sfdi}</sFDI>'
            "<changedTime>0</changedTime></EndDevice>"
        )

    def register(self) -> str:
        """POST /edev (found from /dcap) and return the EndDevice's location."""
        dcap = self.get("/dcap")
        edev = dcap.doc.find(Q + "EndDeviceListLink").get("href")
        resp = self.post(edev, self.end_device_xml())
        assert resp.status == 201, resp
        return resp.headers["location"]


def mirror_usage_point_xml(mrid: str, lfdi: str, readings: str = "", extra: str = "") -> str:
    """A MirrorUsagePoint document (readings: MirrorMeterReading elements)."""
    return (
        f'<MirrorUsagePoint xmlns="{NS}"><mRID>{mrid}</mRID>{extra}<roleFlags>0049</roleFlags>'
        f"<serviceCategoryKind>0</serviceCategoryKind><status>1</status>"
        f"<deviceLFDI>{lfdi}</deviceLFDI>{readings}<postRate>900</postRate></MirrorUsagePoint>"
    )


def reading_type_xml(uom: int = 72, flow: int = 1, power: int = 0) -> str:
    return (
        "<ReadingType><accumulationBehaviour>4</accumulationBehaviour><commodity>1</commodity>"
        f"<flowDirection>{flow}</flowDirection><intervalLength>900</intervalLength>"
        f"<kind>12</kind><powerOfTenMultiplier>{power}</powerOfTenMultiplier>"
        f"<uom>{uom}</uom></ReadingType>"
    )
