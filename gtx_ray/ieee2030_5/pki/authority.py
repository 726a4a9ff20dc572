"""The certificate authority of a certificates directory: ``init_certs`` creates the chain,
the server and one certificate per meter; ``issue_device_cert`` adds one for an outside
device. Keys are written with mode 0600 (atomically); existing files are kept unless ``force``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.pki.certificates import (
    DEFAULT_SERVER_NAMES,
    identity_of,
    load_first_certificate,
    make_device_cert,
    make_mica,
    make_serca,
    make_server_cert,
    new_key,
)
from gtx_ray.ieee2030_5.pki.layout import CertsLayout

log = logging.getLogger(__name__)


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
