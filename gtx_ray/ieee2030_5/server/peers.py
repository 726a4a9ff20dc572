"""Who may be a client of the 2030.5 server: device certificates only.

TLS has already verified the peer's chain to the SERCA. ``PeerGate`` then accepts a peer only
when its certificate is a device certificate issued by a MICA (``pki.device_certificate_problem``)
and is not the server's own certificate, and gives its identity (LFDI/SFDI). Verdicts are cached
per certificate (DER bytes), so a request costs a dictionary look-up, not an X.509 parse.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from gtx_ray.ieee2030_5.identity import DeviceIdentity, fingerprint
from gtx_ray.ieee2030_5.pki import (
    certificate_der,
    device_certificate_problem,
    load_first_certificate,
)
from gtx_ray.ieee2030_5.server.errors import Forbidden

CACHE_SIZE = 4096
"""Certificates whose verdict is kept (about 1 KiB each with the DER key)."""


class PeerGate:
    """Device certificates in, everything else 403. ``own_certs``: DER of certificates that are
    the server's (refused as clients); ``roots``: subjects of the trust anchors (a leaf they
    issued directly did not come from a MICA)."""

    def __init__(self, own_certs: tuple[bytes, ...] = (), roots: tuple = ()) -> None:
        self._own = frozenset(fingerprint(der) for der in own_certs)
        self._roots = tuple(roots)
        self._cache: OrderedDict[bytes, DeviceIdentity | str] = OrderedDict()

    @staticmethod
    def from_files(server_cert: Path, serca_cert: Path) -> PeerGate:
        """A gate for the server whose certificate is ``server_cert`` under ``serca_cert``."""
        own = load_first_certificate(Path(server_cert).read_bytes())
        root = load_first_certificate(Path(serca_cert).read_bytes())
        return PeerGate((certificate_der(own),), (root.subject,))

    def identify(self, der: bytes) -> DeviceIdentity:
        """The identity of the peer certificate ``der``; Forbidden (403) for a non-device one."""
        verdict = self._cache.get(der)
        if verdict is None:
            verdict = self._judge(der)
            self._cache[der] = verdict
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        if isinstance(verdict, str):
            raise Forbidden(f"this client certificate may not be used: {verdict}")
        return verdict

    def _judge(self, der: bytes) -> DeviceIdentity | str:
        if fingerprint(der) in self._own:
            return "it is the server's own certificate, not a device certificate"
        try:
            cert = load_first_certificate(der)
        except ValueError as exc:
            return f"unreadable certificate ({exc}), not a device certificate"
        problem = device_certificate_problem(cert, self._roots)
        return problem if problem is not None else DeviceIdentity.from_certificate(der)
