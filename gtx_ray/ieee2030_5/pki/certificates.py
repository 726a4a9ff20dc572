"""Building and checking IEEE 2030.5 certificates: keys, the SERCA → MICA chain, server and
device certificates, identities (LFDI/SFDI) and the device-profile checks.

Every key is ECC P-256, every signature ECDSA with SHA-256, every certificate valid until
9999-12-31T23:59:59Z (the 2030.5 "no well-defined expiration"). Device certificates follow the
2030.5 device profile: empty subject, critical SubjectAltName with an otherName
HardwareModuleName (1.3.6.1.5.5.7.8.4) whose serial number is the meter id, KeyUsage
digitalSignature + keyAgreement (critical), certificate policies under 1.3.6.1.4.1.40732.

Pure in the sense of principle 1: no sockets, no files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from gtx_ray.ieee2030_5.identity import DeviceIdentity

log = logging.getLogger(__name__)


NOT_AFTER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
"""2030.5 certificates carry notAfter 99991231235959Z (GeneralizedTime)."""
NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
"""A fixed start of validity keeps generated certificates independent of the wall clock."""

OID_HARDWARE_MODULE_NAME = ObjectIdentifier("1.3.6.1.5.5.7.8.4")
"""RFC 4108 HardwareModuleName, the otherName of a 2030.5 device certificate's SAN."""
OID_POLICY_DEVICE_GENERIC = ObjectIdentifier("1.3.6.1.4.1.40732.1.1")
OID_POLICY_TEST = ObjectIdentifier("1.3.6.1.4.1.40732.2.1")
OID_HW_TYPE = ObjectIdentifier("1.3.6.1.4.1.40732.2.1")
"""hwType of the HardwareModuleName: the test arc, since these are simulator certificates."""
DEVICE_POLICIES = (OID_POLICY_DEVICE_GENERIC, OID_POLICY_TEST)

DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECC P-256 (secp256r1) private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_oid(oid: ObjectIdentifier) -> bytes:
    parts = [int(p) for p in oid.dotted_string.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body.extend(reversed(chunk))
    return b"\x06" + _der_length(len(body)) + bytes(body)


def hardware_module_name(serial: bytes, hw_type: ObjectIdentifier = OID_HW_TYPE) -> bytes:
    """DER of ``HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING }``."""
    inner = _der_oid(hw_type) + b"\x04" + _der_length(len(serial)) + serial
    return b"\x30" + _der_length(len(inner)) + inner


def _serial_from_hmn(der: bytes) -> bytes | None:
    """The hwSerialNum of a HardwareModuleName DER value (None if it is not one)."""
    try:
        if der[0] != 0x30:
            return None
        i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
        if der[i] != 0x06:
            return None
        i += 2 + der[i + 1]
        if der[i] != 0x04:
            return None
        n = der[i + 1]
        start = i + 2
        if n & 0x80:
            width = n & 0x7F
            n = int.from_bytes(der[start : start + width], "big")
            start += width
        return der[start : start + n]
    except IndexError:
        return None


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key, serial: int | None = None
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _policies(oids: Iterable[ObjectIdentifier]) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(oid, None) for oid in oids])


def make_serca(common_name: str = "gtx_ray SERCA (test)") -> tuple[x509.Certificate, object]:
    """A self-signed root CA: CA:true, keyCertSign + cRLSign. Returns (certificate, key)."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(_policies(DEVICE_POLICIES), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_mica(
    serca: x509.Certificate, serca_key, common_name: str = "gtx_ray MICA (test)"
) -> tuple[x509.Certificate, object]:
    """An intermediate CA (pathlen 0) signed by the SERCA. Returns (certificate, key)."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, serca.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(_policies(DEVICE_POLICIES), critical=False)
        .add_extension(_aki(serca), critical=False)
        .sign(serca_key, hashes.SHA256())
    )
    return cert, key


def make_device_cert(
    mica: x509.Certificate, mica_key, device_key, meter_id: str
) -> x509.Certificate:
    """A 2030.5 device certificate for ``meter_id`` signed by the MICA.

    Empty subject, critical SAN with HardwareModuleName(hwSerialNum = meter id as UTF-8),
    KeyUsage digitalSignature + keyAgreement (critical), device and test policies.
    """
    san = x509.SubjectAlternativeName(
        [x509.OtherName(OID_HARDWARE_MODULE_NAME, hardware_module_name(meter_id.encode()))]
    )
    return (
        _builder(x509.Name([]), mica.subject, device_key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(_policies(DEVICE_POLICIES), critical=False)
        .add_extension(san, critical=True)
        .add_extension(_aki(mica), critical=False)
        .sign(mica_key, hashes.SHA256())
    )


def make_server_cert(
    mica: x509.Certificate, mica_key, server_key, names: Sequence[str]
) -> x509.Certificate:
    """The server's certificate: the device profile plus DNS/IP SubjectAltNames for ``names``
    (host names and IP addresses; ``localhost`` and ``127.0.0.1`` are always included)."""
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for name in (*DEFAULT_SERVER_NAMES, *names):
        name = name.strip()
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    entries.append(x509.OtherName(OID_HARDWARE_MODULE_NAME, hardware_module_name(b"server")))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gtx_ray IEEE 2030.5 server")])
    return (
        _builder(subject, mica.subject, server_key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(_policies(DEVICE_POLICIES), critical=False)
        .add_extension(x509.SubjectAlternativeName(entries), critical=False)
        .add_extension(_aki(mica), critical=False)
        .sign(mica_key, hashes.SHA256())
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


# --- reading certificates --------------------------------------------------------------------


def load_first_certificate(data: bytes) -> x509.Certificate:
    """The first certificate of PEM (one or a chain) or DER bytes; raises ValueError otherwise."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return x509.load_pem_x509_certificates(data)[0]
        except ValueError as exc:
            raise ValueError(f"not a valid PEM certificate: {exc}") from None
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError("neither a PEM nor a DER certificate") from None


def certificate_der(cert: x509.Certificate) -> bytes:
    """The DER encoding of a certificate (what the fingerprint is taken over)."""
    return cert.public_bytes(serialization.Encoding.DER)


def identity_of(cert: x509.Certificate) -> DeviceIdentity:
    """LFDI and SFDI of a certificate."""
    return DeviceIdentity.from_certificate(certificate_der(cert))


def hardware_serial(cert: x509.Certificate) -> str | None:
    """The HardwareModuleName serial number (our meter id) of a certificate, if it has one."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OID_HARDWARE_MODULE_NAME:
            serial = _serial_from_hmn(other.value)
            if serial is not None:
                return serial.decode("utf-8", "replace")
    return None


DEVICE_POLICY_ARC = "1.3.6.1.4.1.40732.1."
"""Certificate policies of 2030.5 device certificates are under this arc (.1.1 generic device)."""


def device_certificate_problem(
    cert: x509.Certificate, roots: Iterable[x509.Name] = ()
) -> str | None:
    """Why ``cert`` is not a 2030.5 device certificate issued by a MICA, or None when it is one.

    A device certificate is an end entity (not a CA), carries a device policy (under
    ``DEVICE_POLICY_ARC``) and a HardwareModuleName SubjectAltName, names no host (DNS or IP
    SubjectAltNames are what a TLS server certificate such as ours carries) and is issued by an
    intermediate, not directly by one of ``roots`` (the SERCA subjects). The chain itself is
    verified by TLS before this is asked.
    """
    ext = cert.extensions
    try:
        if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "a CA certificate is not a device certificate"
    except x509.ExtensionNotFound:
        pass
    try:
        policies = ext.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        policies = []
    if not any(p.policy_identifier.dotted_string.startswith(DEVICE_POLICY_ARC) for p in policies):
        return f"not a device certificate: no certificate policy under {DEVICE_POLICY_ARC[:-1]}"
    try:
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "not a device certificate: no SubjectAltName with a HardwareModuleName"
    if san.get_values_for_type(x509.DNSName) or san.get_values_for_type(x509.IPAddress):
        return "a server certificate (it names hosts) is not a device certificate"
    if not any(
        o.type_id == OID_HARDWARE_MODULE_NAME for o in san.get_values_for_type(x509.OtherName)
    ):
        return "not a device certificate: no HardwareModuleName in its SubjectAltName"
    if cert.issuer in set(roots):
        return "not a device certificate from a MICA: it is issued by the root (SERCA) itself"
    return None
