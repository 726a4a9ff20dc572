"""A meter group's credentials carried through Ray, so meter actors need no shared filesystem.

The driver reads, from the certificates directory on its machine, each meter's certificate chain
and key and the trust anchor (``CredentialBundle.read``), and hands the bundle to the group's
actor as a creation argument (Ray keeps it for the actor's restarts, on any node). The actor writes
it into a private directory of its own node (``materialize``: mode 0700, files 0600, the layout of
a certificates directory) that the 2030.5 clients load from, and removes it when it ends.

The keys cross the cluster inside Ray's own transport and object store, the same trust boundary
as every other argument; a cluster whose nodes should not hold device keys must not run meters.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gtx_ray.ieee2030_5.pki.authority import write_file
from gtx_ray.ieee2030_5.pki.layout import CertsLayout, device_credentials

TRUST_ANCHOR_FILE = "server-ca.pem"  # an external server's trust anchor, when one is given


@dataclass(frozen=True)
class CredentialBundle:
    """PEM files by their path relative to a certificates directory (``devices/<id>.pem``,
    ``devices/<id>.key``, ``serca.pem``; ``server-ca.pem`` for an external server's anchor)."""

    files: dict[str, bytes]
    has_external_anchor: bool = False

    @classmethod
    def read(
        cls, certs_dir: str | Path, meter_ids: Sequence[str], ca_file: str | Path | None = None
    ) -> CredentialBundle:
        """The credentials of ``meter_ids`` from ``certs_dir`` (ConfigError naming a missing
        file) and ``ca_file``, the external server's trust anchor, when given."""
        root = Path(certs_dir)
        files: dict[str, bytes] = {}
        for meter_id in meter_ids:
            creds = device_credentials(root, meter_id)
            for path in (creds.cert_chain, creds.key):
                files[str(path.relative_to(root))] = path.read_bytes()
        layout = CertsLayout(root)
        files[str(layout.serca_cert.relative_to(root))] = layout.serca_cert.read_bytes()
        if ca_file is not None:
            files[TRUST_ANCHOR_FILE] = Path(ca_file).read_bytes()
        return cls(files, ca_file is not None)

    def materialize(self) -> tuple[Path, Path | None]:
        """Write the files into a new private directory of this node, removed when this process
        exits normally; returns (certificates directory, external trust anchor or None)."""
        root = Path(tempfile.mkdtemp(prefix="gtx_ray-credentials-"))  # mode 0700
        atexit.register(shutil.rmtree, root, True)
        for relative, content in self.files.items():
            write_file(root / relative, content, 0o600)  # inside the 0700 root
        anchor = root / TRUST_ANCHOR_FILE if self.has_external_anchor else None
        return root, anchor


def remove_materialized(root: Path | None) -> None:
    """Remove a directory ``materialize`` wrote (nothing when None or already gone)."""
    if root is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(root)
