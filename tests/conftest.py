"""Shared fixtures. Integration fixtures (Ray, InfluxDB) live next to the tests that need them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtx_ray.fleet import CampusConfig, MeterArrays, load_campus

REPO = Path(__file__).resolve().parent.parent
CAMPUS_CONFIG = REPO / "config" / "utcc_campus_config.json"


@pytest.fixture(scope="session")
def campus() -> CampusConfig:
    return load_campus(CAMPUS_CONFIG)


@pytest.fixture(scope="session")
def campus_meters(campus: CampusConfig) -> MeterArrays:
    return MeterArrays.from_specs(campus.meters)
