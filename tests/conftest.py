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


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime for the whole test session, on loopback, usage stats off.

    Tests that need Ray take this fixture; actors they create must be named inside a namespace
    of their own (``ray.init`` here uses the namespace ``gtx_ray_tests``) and be killed by the test.
    """
    import os

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        namespace="gtx_ray_tests",
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    yield ray
    ray.shutdown()
