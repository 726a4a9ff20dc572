"""Certificates for IEEE 2030.5 mutual TLS: a SERCA → MICA chain, a server and one per meter.

The layout of a certificates directory (``CertsLayout``)::

    serca.pem  serca.key      root CA (self-signed, the trust anchor both sides load)
    mica.pem   mica.key       intermediate CA (pathlen 0), signs the server and every device
    server.pem server.key     server certificate followed by mica.pem (a chain file)
    devices/<meter_id>.pem    device certificate followed by mica.pem (a chain file)
    devices/<meter_id>.key    its private key
    devices.json              meter_id → LFDI, SFDI, file names (written by ``init_certs``)
    issued/<name>.pem         a device certificate for an outside device or test tool, followed
    issued/<name>.key         by mica.pem and serca.pem (``issue_device_cert``), and its key

Every key is ECC P-256, every signature ECDSA with SHA-256, every certificate valid until
9999-12-31T23:59:59Z (the 2030.5 "no well-defined expiration"). Device certificates follow the
2030.5 device profile: empty subject, critical SubjectAltName with an otherName
HardwareModuleName (1.3.6.1.5.5.7.8.4) whose serial number is the meter id, KeyUsage
digitalSignature + keyAgreement (critical), certificate policies under 1.3.6.1.4.1.40732.
Keys are written with mode 0600. Existing files are kept unless ``force``.

Pure in the sense of principle 1: no sockets; it reads and writes files only where asked.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from gtx_ray.errors import ConfigError
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


@dataclass(frozen=True)
class CertsLayout:
    """File names inside a certificates directory (nothing is read or created here)."""

    root: Path

    @property
    def serca_cert(self) -> Path:
        return self.root / "serca.pem"

    @property
    def serca_key(self) -> Path:
        return self.root / "serca.key"

    @property
    def mica_cert(self) -> Path:
        return self.root / "mica.pem"

    @property
    def mica_key(self) -> Path:
        return self.root / "mica.key"

    @property
    def server_cert(self) -> Path:
        """The server certificate followed by the MICA (a chain file)."""
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def devices_dir(self) -> Path:
        return self.root / "devices"

    @property
    def devices_index(self) -> Path:
        return self.root / "devices.json"

    def device_cert(self, meter_id: str) -> Path:
        """A meter's certificate followed by the MICA (a chain file)."""
        return self.devices_dir / f"{_safe_name(meter_id)}.pem"

    def device_key(self, meter_id: str) -> Path:
        return self.devices_dir / f"{_safe_name(meter_id)}.key"

    @property
    def issued_dir(self) -> Path:
        return self.root / "issued"

    def issued_cert(self, name: str) -> Path:
        """An issued device certificate followed by the MICA and the SERCA (a full chain)."""
        return self.issued_dir / f"{check_issue_name(name)}.pem"

    def issued_key(self, name: str) -> Path:
        return self.issued_dir / f"{check_issue_name(name)}.key"


@dataclass(frozen=True)
class DeviceCredentials:
    """What a meter's 2030.5 client loads: ``ssl_context.load_cert_chain(cert_chain, key)`` and
    ``load_verify_locations(ca)``."""

    meter_id: str
    cert_chain: Path
    key: Path
    ca: Path


def device_credentials(certs_dir: str | Path, meter_id: str) -> DeviceCredentials:
    """The certificate, key and trust anchor paths of one meter; raises ConfigError if missing."""
    layout = CertsLayout(Path(certs_dir))
    creds = DeviceCredentials(
        meter_id, layout.device_cert(meter_id), layout.device_key(meter_id), layout.serca_cert
    )
    for path in (creds.cert_chain, creds.key, creds.ca):
        if not path.is_file():
            raise ConfigError(
                f"{path}: missing certificate file for meter {meter_id}; "
                f"run `python -m gtx_ray certs init --dir {certs_dir}`"
            )
    return creds


ISSUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Names ``certs issue`` accepts: 1–64 ASCII letters, digits, '.', '_', '-', not starting with
a dot or dash (a file name everywhere, never a path)."""


def check_issue_name(name: str) -> str:
    """``name`` if ``ISSUE_NAME`` matches it whole; ConfigError otherwise."""
    if not ISSUE_NAME.fullmatch(name):
        raise ConfigError(
            f"name {name[:80]!r} is not 1-64 letters, digits, '.', '_' or '-' "
            "starting with a letter or digit"
        )
    return name


def _safe_name(meter_id: str) -> str:
    if (
        not meter_id
        or "/" in meter_id
        or "\\" in meter_id
        or meter_id in (".", "..")
        or ("\x00" in meter_id)
    ):
        raise ConfigError(f"meter id {meter_id!r} cannot be used as a file name")
    return meter_id


# --- building certificates -------------------------------------------------------------------


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


# --- files -----------------------------------------------------------------------------------


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` atomically (temp file + rename) with permission ``mode`` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_pair(cert_path: Path, key_path: Path):
    try:
        cert = load_first_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{cert_path}: cannot load certificate and key ({exc}); use --force"
        ) from None
    return cert, key


@dataclass(frozen=True)
class InitReport:
    """What ``init_certs`` did: counts of files created and kept, and the directory."""

    certs_dir: Path
    created: int
    kept: int
    devices: int


def init_certs(
    certs_dir: str | Path,
    meter_ids: Sequence[str],
    server_names: Sequence[str] = (),
    force: bool = False,
) -> InitReport:
    """Create (or complete) a certificates directory: CA chain, server, one device per meter.

    Existing certificates are kept unless ``force``; a kept leaf that the current MICA did not sign
    raises ConfigError (the chain was replaced by hand: re-run with force). A kept server
    certificate that lacks one of ``server_names`` is re-issued. Writes ``devices.json``.
    """
    layout = CertsLayout(Path(certs_dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.devices_dir.mkdir(parents=True, exist_ok=True)
    created = kept = 0

    def have(cert_path: Path, key_path: Path) -> bool:
        return not force and cert_path.exists() and key_path.exists()

    if have(layout.serca_cert, layout.serca_key):
        serca, serca_key = _load_pair(layout.serca_cert, layout.serca_key)
        kept += 1
    else:
        serca, serca_key = make_serca()
        write_file(layout.serca_key, _key_pem(serca_key), 0o600)
        write_file(layout.serca_cert, _pem(serca), 0o644)
        created += 1
        force = True  # a new root invalidates every certificate below it
    if have(layout.mica_cert, layout.mica_key):
        mica, mica_key = _load_pair(layout.mica_cert, layout.mica_key)
        _require_issued(mica, serca, layout.mica_cert)
        kept += 1
    else:
        mica, mica_key = make_mica(serca, serca_key)
        write_file(layout.mica_key, _key_pem(mica_key), 0o600)
        write_file(layout.mica_cert, _pem(mica), 0o644)
        created += 1
        force = True

    wanted_names = [*DEFAULT_SERVER_NAMES, *server_names]
    if have(layout.server_cert, layout.server_key) and _server_ok(layout, mica, wanted_names):
        kept += 1
    else:
        key = (
            _load_pair(layout.server_cert, layout.server_key)[1]
            if not force and layout.server_key.exists() and layout.server_cert.exists()
            else new_key()
        )
        cert = make_server_cert(mica, mica_key, key, server_names)
        write_file(layout.server_key, _key_pem(key), 0o600)
        write_file(layout.server_cert, _pem(cert) + _pem(mica), 0o644)
        created += 1

    index: dict[str, dict[str, object]] = {}
    for meter_id in meter_ids:
        cert_path, key_path = layout.device_cert(meter_id), layout.device_key(meter_id)
        if have(cert_path, key_path):
            cert, _ = _load_pair(cert_path, key_path)
            _require_issued(cert, mica, cert_path)
            kept += 1
        else:
            key = new_key()
            cert = make_device_cert(mica, mica_key, key, meter_id)
            write_file(key_path, _key_pem(key), 0o600)
            write_file(cert_path, _pem(cert) + _pem(mica), 0o644)
            created += 1
        ident = identity_of(cert)
        index[meter_id] = {
            "lfdi": ident.lfdi,
            "sfdi": ident.sfdi,
            "cert": str(cert_path.relative_to(layout.root)),
            "key": str(key_path.relative_to(layout.root)),
        }
    write_file(layout.devices_index, (json.dumps(index, indent=1) + "\n").encode(), 0o644)
    log.info(
        "certificates in %s: %d created, %d kept, %d devices",
        layout.root,
        created,
        kept,
        len(index),
    )
    return InitReport(layout.root, created, kept, len(index))


@dataclass(frozen=True)
class IssuedCert:
    """What ``issue_device_cert`` wrote: the chain file, the key file, the identity."""

    name: str
    cert_chain: Path
    key: Path
    identity: DeviceIdentity


def issue_device_cert(certs_dir: str | Path, name: str, force: bool = False) -> IssuedCert:
    """A device certificate for ``name`` (an outside device or test tool) from the MICA of
    ``certs_dir``: ``issued/<name>.pem`` holds leaf + MICA + SERCA, ``issued/<name>.key`` its
    key (mode 0600). Raises ConfigError for a bad name, a missing CA (run ``certs init``) or an
    existing certificate of that name unless ``force``."""
    layout = CertsLayout(Path(certs_dir))
    cert_path, key_path = layout.issued_cert(name), layout.issued_key(name)
    for path in (layout.serca_cert, layout.mica_cert, layout.mica_key):
        if not path.is_file():
            raise ConfigError(f"{path}: no CA here; run `python -m gtx_ray certs init` first")
    if not force and (cert_path.exists() or key_path.exists()):
        raise ConfigError(f"{cert_path}: a certificate named {name!r} exists; use --force")
    serca = load_first_certificate(layout.serca_cert.read_bytes())
    mica, mica_key = _load_pair(layout.mica_cert, layout.mica_key)
    _require_issued(mica, serca, layout.mica_cert)
    key = new_key()
    cert = make_device_cert(mica, mica_key, key, name)
    write_file(key_path, _key_pem(key), 0o600)
    write_file(cert_path, _pem(cert) + _pem(mica) + _pem(serca), 0o644)
    log.info("issued device certificate %s", cert_path)
    return IssuedCert(name, cert_path, key_path, identity_of(cert))


def _require_issued(cert: x509.Certificate, issuer: x509.Certificate, path: Path) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{path}: not issued by the CA in the same directory ({type(exc).__name__}); "
            "re-run `certs init` with --force to replace every certificate"
        ) from None


def _server_ok(layout: CertsLayout, mica: x509.Certificate, names: Sequence[str]) -> bool:
    cert, _ = _load_pair(layout.server_cert, layout.server_key)
    _require_issued(cert, mica, layout.server_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return all(n.strip() in have for n in names if n.strip())


def load_devices_index(certs_dir: str | Path) -> dict[str, dict[str, object]]:
    """``devices.json`` of a certificates directory: meter_id → {lfdi, sfdi, cert, key}."""
    path = CertsLayout(Path(certs_dir)).devices_index
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run `python -m gtx_ray certs init`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from None
