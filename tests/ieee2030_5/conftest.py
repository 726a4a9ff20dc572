"""Fixtures for the 2030.5 tests: certificates from `certs init`, the official schema, servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtx_ray.ieee2030_5.pki.cli import certs_main
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from tests.ieee2030_5.helpers import Sep2Client, ThreadedServer
from tests.ieee2030_5.sep_schema import load_csip_schema, load_sep_schema

REPO = Path(__file__).resolve().parents[2]
CAMPUS_CONFIG = REPO / "config" / "utcc_campus_config.json"


@pytest.fixture(scope="session")
def sep_schema():
    """The official schema; a failure to obtain it fails the tests that need it (no skip)."""
    return load_sep_schema()


@pytest.fixture(scope="session")
def csip_schema():
    """The CSIP-AUS 1.2 schema over the official one (DER documents with the csipaus
    extensions); a failure to obtain it fails the tests that need it."""
    return load_csip_schema()


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory) -> Path:
    """A certificates directory made by `certs init` for the UTCC campus's 25 meters."""
    path = tmp_path_factory.mktemp("certs")
    assert certs_main(["init", "--dir", str(path), "--config-file", str(CAMPUS_CONFIG)]) == 0
    return path


@pytest.fixture(scope="session")
def meter_ids(campus) -> list[str]:
    return [m.meter_id for m in campus.meters]


@pytest.fixture(scope="session")
def other_ca_dir(tmp_path_factory) -> Path:
    """A second, unrelated certificate chain (for 'certificate from another CA')."""
    path = tmp_path_factory.mktemp("other_ca")
    assert (
        certs_main(
            ["init", "--dir", str(path), "--config-file", str(CAMPUS_CONFIG), "--meters", "1"]
        )
        == 0
    )
    return path


@pytest.fixture(scope="module")
def server(certs_dir):
    """A 2030.5 server on a free loopback port with an in-process registry."""
    srv = ThreadedServer(Ieee2030_5Config(certs_dir=certs_dir, port=0, history_per_mirror=5))
    yield srv
    srv.stop()


@pytest.fixture()
def client_for(server, certs_dir, sep_schema):
    """Make a schema-checking client for a meter id; closed at the end of the test."""
    made: list[Sep2Client] = []

    def make(meter_id: str) -> Sep2Client:
        c = Sep2Client(server.port, certs_dir, meter_id, sep_schema)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
