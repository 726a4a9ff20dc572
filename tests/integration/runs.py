"""What the simulation tests share: settings for a bounded Parquet run, waiting for stored
windows, finishing a run, and readings in a comparable order."""

from __future__ import annotations

import time
from dataclasses import replace

import pyarrow as pa

from gtx_ray.settings import Settings
from tests.conftest import CAMPUS_CONFIG

JAN_1_2025_BANGKOK = 1_735_664_400


def run_settings(tmp_path, namespace: str = "gtx_ray_tests", **overrides) -> Settings:
    """A one-day, 15-minute, as-fast-as-possible campus run into Parquet under ``tmp_path``."""
    base = Settings(
        config_file=CAMPUS_CONFIG,
        influxdb_enabled=False,
        start_s=JAN_1_2025_BANGKOK,
        interval_s=900,
        speed=None,
        duration_s=86_400,
        data_dir=tmp_path / "data",
        namespace=namespace,
        status_every_s=1.0,
    )
    return replace(base, **overrides)


def wait_stored_windows(simulation, count: int, timeout_s: float = 120.0) -> dict:
    """The simulation's status once ``count`` windows are stored (so a fault lands mid-run)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = simulation.status()
        if status and status["storage"]["windows_stored"] >= count:
            return status
        assert time.monotonic() < deadline, "no windows stored"
        time.sleep(0.2)


def finish(simulation, timeout_s: float = 300.0) -> dict:
    """Wait for the clock to end, then store everything and end the actors."""
    deadline = time.monotonic() + timeout_s
    while not simulation.wait(timeout_s=1.0):
        assert time.monotonic() < deadline, "simulation did not finish in time"
    return simulation.finish()


def by_time(table: pa.Table) -> pa.Table:
    return table.sort_by([("timestamp", "ascending"), ("meter_id", "ascending")])
