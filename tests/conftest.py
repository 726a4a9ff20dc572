"""Shared fixtures. Integration fixtures (Ray, InfluxDB) live next to the tests that need them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep Ray on loopback in tests and CI: on Linux Ray binds to the host's primary address unless it
# believes clusters are unsupported, in which case it uses 127.0.0.1. Must be set before Ray loads.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

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
    import ray

    start_local_ray()
    yield ray
    ray.shutdown()


def start_local_ray() -> None:
    """The session's single-node Ray (also started again by tests that set it aside)."""
    import ray

    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        namespace="gtx_ray_tests",
        log_to_driver=False,
    )
