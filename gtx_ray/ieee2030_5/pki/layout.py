"""Where things live in a certificates directory (``CertsLayout``), what a meter loads
(``DeviceCredentials``) and the ``devices.json`` index. The directory's layout::
    serca.pem  serca.key      root CA (self-signed, the trust anchor both sides load)
    mica.pem   mica.key       intermediate CA (pathlen 0), signs the server and every device
    server.pem server.key     server certificate followed by mica.pem (a chain file)
    devices/<meter_id>.pem    device certificate followed by mica.pem (a chain file)
    devices/<meter_id>.key    its private key
    devices.json              meter_id → LFDI, SFDI, file names (written by ``init_certs``)
    issued/<name>.pem         a device certificate for an outside device or test tool, followed
    issued/<name>.key         by mica.pem and serca.pem (``issue_device_cert``), and its key
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from gtx_ray.errors import ConfigError

log = logging.getLogger(__name__)


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


def load_devices_index(certs_dir: str | Path) -> dict[str, dict[str, object]]:
    """``devices.json`` of a certificates directory: meter_id → {lfdi, sfdi, cert, key}."""
    path = CertsLayout(Path(certs_dir)).devices_index
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run `python -m gtx_ray certs init`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from None
