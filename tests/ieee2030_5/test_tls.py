"""The TLS front over real sockets: TLS 1.2 + ECDHE-ECDSA-AES128-CCM8 with mutual
authentication works; everything else is refused during the handshake."""

from __future__ import annotations

import socket
import ssl
import subprocess

import pytest

from gtx_ray.ieee2030_5.pki import (
    CertsLayout,
    device_credentials,
    identity_of,
    load_first_certificate,
)
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.tls import CIPHER_CCM8, CIPHER_GCM, client_context
from tests.ieee2030_5.helpers import Sep2Client, ThreadedServer

METER = "AMI_METER_UTCC_011"


def _handshake(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        # With TLS 1.2 the server checks the client certificate before its Finished message, so
        # a refused client fails here; a read makes sure no late alert is pending.
        tls.sendall(b"GET /tm HTTP/1.1\r\nHost: localhost\r\n\r\n")
        if not tls.recv(12).startswith(b"HTTP/1.1"):
            raise ssl.SSLError("no HTTP answer")
        return tls
    except BaseException:
        raw.close()
        raise


def _ctx(certs_dir, meter=METER, ciphers=CIPHER_CCM8, tls13=False, cert=True):
    creds = device_credentials(certs_dir, meter)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(creds.ca))
    if tls13:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(str(creds.cert_chain), str(creds.key))
    return ctx


def test_ccm8_client_talks_and_is_identified(server, certs_dir, sep_schema):
    tls = _handshake(server.port, _ctx(certs_dir))
    try:
        assert tls.version() == "TLSv1.2"
        assert tls.cipher()[0] == CIPHER_CCM8
        # The server presents its chain (server + MICA) and its certificate names localhost.
        assert tls.getpeercert()["subjectAltName"][0] == ("DNS", "localhost")
    finally:
        tls.close()
    # The identity the server uses is the one of our certificate: /edev shows it after POST.
    c = Sep2Client(server.port, certs_dir, METER, sep_schema, context=_ctx(certs_dir))
    try:
        edev = c.get(c.register())
        creds = device_credentials(certs_dir, METER)
        ident = identity_of(load_first_certificate(creds.cert_chain.read_bytes()))
        assert edev.text("lFDI") == ident.lfdi and edev.text("sFDI") == str(ident.sfdi)
    finally:
        c.close()


def test_server_verifies_hostname_for_the_client(server, certs_dir):
    creds = device_credentials(certs_dir, METER)
    ctx = client_context(creds.ca, creds.cert_chain, creds.key)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(raw, server_hostname="not-this-server.example")
    raw.close()


@pytest.mark.parametrize(
    "case, alert",
    [
        ("no certificate", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
        ("other CA", "TLSV1_ALERT_UNKNOWN_CA"),
        ("only GCM", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
        ("only AES256", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
        ("TLS 1.3 only", "TLSV1_ALERT_PROTOCOL_VERSION"),
    ],
)
def test_refused_at_handshake_with_an_alert(case, alert, server, certs_dir, other_ca_dir):
    if case == "no certificate":
        ctx = _ctx(certs_dir, cert=False)
    elif case == "other CA":
        other = CertsLayout(other_ca_dir)
        ctx = _ctx(certs_dir, cert=False)
        (meter,) = [p.stem for p in other.devices_dir.glob("*.pem")]
        ctx.load_cert_chain(str(other.device_cert(meter)), str(other.device_key(meter)))
    elif case == "only GCM":
        ctx = _ctx(certs_dir, ciphers=CIPHER_GCM)
    elif case == "only AES256":
        ctx = _ctx(certs_dir, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305")
    else:
        ctx = _ctx(certs_dir, tls13=True)
    # The client learns why from the server's TLS alert, not from a bare close (an EOF).
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(server.port, ctx).close()
    assert not isinstance(refused.value, ssl.SSLEOFError)
    assert refused.value.reason == alert, refused.value
    # … and the server goes on serving well-behaved clients.
    _handshake(server.port, _ctx(certs_dir)).close()


def test_gcm_offered_only_when_configured(certs_dir):
    srv = ThreadedServer(Ieee2030_5Config(certs_dir=certs_dir, port=0, allow_gcm=True))
    try:
        tls = _handshake(srv.port, _ctx(certs_dir, ciphers=CIPHER_GCM))
        assert tls.cipher()[0] == CIPHER_GCM
        tls.close()
        both = _handshake(srv.port, _ctx(certs_dir, ciphers=f"{CIPHER_GCM}:{CIPHER_CCM8}"))
        assert both.cipher()[0] == CIPHER_CCM8  # the server prefers the 2030.5 suite
        both.close()
        with pytest.raises(ssl.SSLError):
            _handshake(srv.port, _ctx(certs_dir, tls13=True))
    finally:
        srv.stop()


def test_certificate_request_names_the_trust_anchor(server, certs_dir):
    """OpenSSL's own client shows the CA names of the server's CertificateRequest."""
    layout = CertsLayout(certs_dir)
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{server.port}",
            "-tls1_2",
            "-cipher",
            CIPHER_CCM8,
            "-CAfile",
            str(layout.serca_cert),
        ],
        input=b"",
        capture_output=True,
        timeout=60,
    ).stdout.decode()
    names = out.split("Acceptable client certificate CA names", 1)
    assert len(names) == 2, out[-2000:]
    assert names[1].splitlines()[1].strip() == "CN = gtx_ray SERCA (test)"
