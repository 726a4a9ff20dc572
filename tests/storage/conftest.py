"""Real throwaway database servers for the storage tests (see tests/servers.py).

A missing server binary fails the test with the command that installs it; it never skips.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyarrow as pa
import pytest

from gtx_ray.fleet import CampusConfig, MeterArrays
from gtx_ray.model.meters import MeterModel
from gtx_ray.storage.influx import InfluxConfig, influxql
from tests.servers import Server, ServerUnavailable, influxd_server, victoria_metrics_server

DAY_START_S = 1_704_067_200  # 2024-01-01T00:00:00Z
INTERVAL_S = 900
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret"


def _started(make, *args, **kwargs) -> Server:
    try:
        return make(*args, **kwargs).start()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def influxd(tmp_path_factory) -> Iterator[Server]:
    """One InfluxDB 1.x for the session (no auth); tests use a database of their own."""
    server = _started(influxd_server, tmp_path_factory.mktemp("influxd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxd_auth(tmp_path_factory) -> Iterator[Server]:
    """InfluxDB 1.x with ``auth-enabled = true`` and an admin user ADMIN_USER/ADMIN_PASSWORD."""
    server = _started(influxd_server, tmp_path_factory.mktemp("influxd_auth"), auth_enabled=True)
    influxql(
        InfluxConfig(url=server.url),
        f"CREATE USER {ADMIN_USER} WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES",
        None,
    )
    yield server
    server.stop()


@pytest.fixture
def crash_influxd(tmp_path) -> Iterator[Server]:
    """An InfluxDB 1.x of the test's own, free to be killed and restarted."""
    server = _started(influxd_server, tmp_path / "influxd")
    yield server
    server.stop()


@pytest.fixture
def victoria(tmp_path) -> Iterator[Server]:
    """A VictoriaMetrics of the test's own: it ignores the v2 bucket (no ``db`` label on /api/v2
    writes), so tests sharing one would see each other's points. Starts in well under a second."""
    server = _started(victoria_metrics_server, tmp_path / "victoria")
    yield server
    server.stop()


@pytest.fixture
def database(request) -> str:
    """A database/bucket name unique to the test."""
    return "t_" + re.sub(r"\W+", "_", request.node.name)[:60]


def campus_model(campus: CampusConfig, meters: MeterArrays) -> MeterModel:
    return MeterModel(meters, campus, seed=42, interval_s=INTERVAL_S)


@pytest.fixture(scope="session")
def campus_day(campus: CampusConfig, campus_meters: MeterArrays) -> pa.RecordBatch:
    """One simulated campus day: 25 meters × 96 intervals of 15 minutes."""
    model = campus_model(campus, campus_meters)
    return model.step(model.initial_state(DAY_START_S), 96).batch


def campus_days(campus: CampusConfig, meters: MeterArrays, days: int, per_batch: int = 24):
    """``days`` campus days as batches of ``per_batch`` intervals (25 × per_batch rows each)."""
    model = campus_model(campus, meters)
    state = model.initial_state(DAY_START_S)
    batches = []
    for _ in range(days * 96 // per_batch):
        result = model.step(state, per_batch)
        batches.append(result.batch)
        state = result.state
    return batches
