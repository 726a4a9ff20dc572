"""Hardening of the 2030.5 server over real mutual TLS: hostile integers, content types, who may
be a client, XML declarations, per-device rates on mirrors. Every response body is validated
against the official schema by the client (helpers.Sep2Client)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from gtx_ray.ieee2030_5 import pki
from gtx_ray.ieee2030_5.codec import NS
from gtx_ray.ieee2030_5.pki import device_credentials
from gtx_ray.ieee2030_5.server.managers import admin
from gtx_ray.ieee2030_5.tls import client_context
from tests.ieee2030_5.helpers import Q, Sep2Client, mirror_usage_point_xml, reading_type_xml

HUGE = "9" * 5000
"""More digits than Python's int-string conversion limit (4,300)."""
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _registered_mirror(c, mrid: str) -> str:
    c.register()
    mmr = f"<MirrorMeterReading><mRID>0A</mRID>{reading_type_xml()}</MirrorMeterReading>"
    resp = c.post("/mup", mirror_usage_point_xml(mrid, c.identity.lfdi, mmr))
    assert resp.status == 201, resp
    return resp.headers["location"]


def _reading(value: str = "1", start: str = str(T0), duration: str = "900") -> str:
    return (
        f'<MirrorMeterReading xmlns="{NS}"><mRID>0A</mRID><Reading><timePeriod>'
        f"<duration>{duration}</duration><start>{start}</start></timePeriod>"
        f"<value>{value}</value></Reading></MirrorMeterReading>"
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("sFDI", HUGE),
        ("value", HUGE),
        ("value", "-" + HUGE),
        ("start", HUGE),
        ("duration", "0" * 5000 + "4294967296"),
        ("value", "140737488355329"),  # Int48 + 1
        ("start", "9223372036854775808"),  # Int64 + 1
        ("duration", "4294967296"),  # UInt32 + 1
        ("sFDI", "1099511627776"),  # UInt40 + 1
    ],
)
def test_out_of_range_integers_are_400_naming_the_field(field, value, client_for):
    c = client_for("AMI_METER_UTCC_001")
    if field == "sFDI":
        resp = c.post("/edev", c.end_device_xml().replace(f">{c.identity.sfdi}<", f">{value}<"))
    else:
        mup = c.get("/mup")
        if mup.doc.get("all") == "0":
            href = _registered_mirror(c, "01" * 16)
        else:
            href = mup.all("MirrorUsagePoint")[0].get("href")
        resp = c.post(href, _reading(**{field: value}))
    assert resp.status == 400, (resp.status, resp.body[:200])
    assert resp.doc is not None and resp.doc.tag == Q + "Error"
    assert resp.text("reasonCode") in ("0", "1")
    assert field in resp.reason, resp.reason
    # The server keeps serving, on the same connection and a new one.
    assert c.get("/dcap").status == 200
    assert client_for("AMI_METER_UTCC_002").get("/tm").status == 200


def test_leading_zeros_are_still_a_number(client_for):
    c = client_for("AMI_METER_UTCC_003")
    href = _registered_mirror(c, "03" * 16)
    assert c.post(href, _reading(value="0" * 5000 + "42")).status == 201
    upt = href.replace("/mup/", "/upt/")
    assert c.get(f"{upt}/mr/1/r").text("value") == "42"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/xml", "application/octet-stream", "application/json", "sep+xml"],
)
def test_bodies_not_declared_as_xml_are_415(content_type, client_for):
    c = client_for("AMI_METER_UTCC_004")
    resp = c.request("POST", "/edev", c.end_device_xml(), content_type=content_type)
    assert resp.status == 415, (content_type, resp.status)
    assert resp.doc is not None and resp.doc.tag == Q + "Error"
    assert "application/sep+xml" in resp.reason
    assert c.get("/edev").doc.get("all") == "0"  # nothing was registered


@pytest.mark.parametrize(
    "content_type", ["application/sep+xml", "Application/SEP+XML; charset=utf-8", "application/xml"]
)
def test_xml_media_types_are_accepted(content_type, client_for):
    c = client_for("AMI_METER_UTCC_005")
    resp = c.request("POST", "/edev", c.end_device_xml(), content_type=content_type)
    assert resp.status in (201, 409), (content_type, resp.status)


def test_no_response_body_carries_an_xml_declaration(client_for):
    """Every kind of document the server sends, success and error; the client asserts on each
    body that it has no ``<?xml`` declaration and is schema-valid."""
    c = client_for("AMI_METER_UTCC_006")
    declared = '<?xml version="1.0" encoding="UTF-8"?>\n'
    edev = c.post("/edev", declared + c.end_device_xml())  # requests may carry one
    assert edev.status == 201
    edev_href = edev.headers["location"]
    mup = c.post(
        "/mup",
        declared
        + mirror_usage_point_xml(
            "06" * 16,
            c.identity.lfdi,
            (f"<MirrorMeterReading><mRID>0A</mRID>{reading_type_xml()}</MirrorMeterReading>"),
        ),
    )
    assert mup.status == 201
    mup_href = mup.headers["location"]
    reading_set = (
        f'<MirrorMeterReadingList xmlns="{NS}"><MirrorMeterReading><mRID>0A</mRID>'
        f"<MirrorReadingSet><mRID>0B</mRID><timePeriod><duration>900</duration><start>{T0}"
        "</start></timePeriod><Reading><value>5</value></Reading></MirrorReadingSet>"
        "</MirrorMeterReading></MirrorMeterReadingList>"
    )
    assert c.post(mup_href, reading_set).status == 201
    assert c.post(mup_href, _reading()).status == 201
    upt = mup_href.replace("/mup/", "/upt/")
    bodies = 0
    for path in (
        "/dcap",
        "/tm",
        "/edev",
        edev_href,
        edev_href + "/rg",
        edev_href + "/fsa",
        edev_href + "/fsa/1",
        "/mup",
        mup_href,
        "/upt",
        upt,
        upt + "/mr",
        upt + "/mr/1",
        upt + "/mr/1/rt",
        upt + "/mr/1/r",
        upt + "/mr/1/rs",
        upt + "/mr/1/rs/1",
        upt + "/mr/1/rs/1/r",
        upt + "/mr/1/rs/1/r/0",
    ):
        resp = c.get(path)
        assert resp.status == 200 and resp.doc is not None, path
        bodies += 1
    errors = (
        c.post("/edev", "<EndDevice/>"),  # 400
        c.post("/mup", mirror_usage_point_xml("07", "AB" * 20)),  # 403
        c.request("POST", "/mup", "x", content_type="text/plain"),  # 415
    )
    assert [r.status for r in errors] == [400, 403, 415]
    assert all(r.doc is not None for r in errors)
    assert bodies == 19


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _client_with(server, certs_dir, sep_schema, chain: Path, key: Path) -> Sep2Client:
    layout = pki.CertsLayout(certs_dir)
    ctx = client_context(layout.serca_cert, chain, key)
    return Sep2Client(server.port, certs_dir, "AMI_METER_UTCC_007", sep_schema, context=ctx)


def _odd_certificates(certs_dir, tmp_path) -> dict[str, tuple[Path, Path]]:
    """Certificates that chain to the SERCA but are not device certificates from a MICA."""
    layout = pki.CertsLayout(certs_dir)
    serca = pki.load_first_certificate(layout.serca_cert.read_bytes())
    serca_key = serialization.load_pem_private_key(layout.serca_key.read_bytes(), None)
    mica = pki.load_first_certificate(layout.mica_cert.read_bytes())
    mica_key = serialization.load_pem_private_key(layout.mica_key.read_bytes(), None)
    out = {"server": (layout.server_cert, layout.server_key)}
    key = pki.new_key()
    direct = pki.make_device_cert(serca, serca_key, key, "from-the-root")
    out["device cert signed by the SERCA"] = (tmp_path / "direct.pem", tmp_path / "direct.key")
    out["device cert signed by the SERCA"][0].write_bytes(_pem(direct) + _pem(serca))
    out["device cert signed by the SERCA"][1].write_bytes(_key_pem(key))
    # A MICA-issued leaf without the device policy and HardwareModuleName (e.g. a web cert).
    key = pki.new_key()
    plain = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")]))
        .issuer_name(mica.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.NOT_BEFORE)
        .not_valid_after(pki.NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(mica_key, hashes.SHA256())
    )
    out["no device policy"] = (tmp_path / "plain.pem", tmp_path / "plain.key")
    out["no device policy"][0].write_bytes(_pem(plain) + _pem(mica))
    out["no device policy"][1].write_bytes(_key_pem(key))
    return out


@pytest.mark.parametrize("which", ["server", "device cert signed by the SERCA", "no device policy"])
def test_only_device_certificates_are_clients(which, server, certs_dir, sep_schema, tmp_path):
    chain, key = _odd_certificates(certs_dir, tmp_path)[which]
    c = _client_with(server, certs_dir, sep_schema, chain, key)
    try:
        for method, path, body in (
            ("GET", "/dcap", None),
            ("GET", "/edev", None),
            ("POST", "/edev", c.end_device_xml()),
        ):
            try:
                resp = c.request(method, path, body)
            except ssl.SSLError:
                continue  # refused at the handshake is fine too
            assert resp.status == 403, (which, path, resp.status)
            assert resp.doc is not None and resp.doc.tag == Q + "Error"
            assert "device certificate" in resp.reason, resp.reason
    finally:
        c.close()
    # A real device certificate still works.
    assert (
        _client_with(
            server,
            certs_dir,
            sep_schema,
            *(lambda cr: (cr.cert_chain, cr.key))(
                device_credentials(certs_dir, "AMI_METER_UTCC_007")
            ),
        )
        .get("/dcap")
        .status
        == 200
    )


def test_operator_post_rate_reaches_the_devices_mirror_usage_points(server, client_for):
    a = client_for("AMI_METER_UTCC_008")
    b = client_for("AMI_METER_UTCC_009")
    a_edev = a.register()
    b.register()
    a_mup = _registered_mirror_of(a, "08" * 16)
    b_mup = _registered_mirror_of(b, "09" * 16)
    assert a.get(a_mup).text("postRate") == "900"  # what the meter posted
    server.admin(admin.set_rates, post_rate=60, device_id=int(a_edev.rsplit("/", 1)[1]))
    assert a.get(a_edev).text("postRate") == "60"
    assert a.get(a_mup).text("postRate") == "60"
    listed = a.get("/mup?l=10").all("MirrorUsagePoint")
    assert [m.find(Q + "postRate").text for m in listed] == ["60"]
    # A MirrorUsagePoint created after the change gets it too; other devices keep theirs.
    later = a.post("/mup", mirror_usage_point_xml("0C" * 16, a.identity.lfdi))
    assert a.get(later.headers["location"]).text("postRate") == "60"
    assert b.get(b_mup).text("postRate") == "900"


def _registered_mirror_of(c, mrid: str) -> str:
    mmr = f"<MirrorMeterReading><mRID>0A</mRID>{reading_type_xml()}</MirrorMeterReading>"
    resp = c.post("/mup", mirror_usage_point_xml(mrid, c.identity.lfdi, mmr))
    assert resp.status == 201, resp
    return resp.headers["location"]
