"""The v2 write path (influxdb-client, synchronous) against a real server speaking /api/v2/write:
Debian's VictoriaMetrics. Durability under SIGKILL is tested on influxd (test_influx_v1.py);
VictoriaMetrics loses its last seconds on kill -9, so here the outage is a graceful stop."""

from __future__ import annotations

import json
import threading
import time

import pyarrow as pa
import pytest
import urllib3

from gtx_ray.readings import FIELD_COLUMNS, TAG_COLUMNS
from gtx_ray.storage.influx import InfluxConfig, InfluxSink
from tests.storage.conftest import campus_days

PREFIX = "meter_readings_"


def exported_points(server) -> dict[tuple[str, int], dict]:
    """Every stored sample of the server's meter_readings, regrouped into points keyed by
    (meter_id, epoch s): tags plus one entry per field."""
    urllib3.request("GET", f"{server.url}/internal/force_flush")
    response = urllib3.request(
        "GET", f"{server.url}/api/v1/export", fields={"match[]": f'{{__name__=~"{PREFIX}.+"}}'}
    )
    assert response.status == 200, response.data
    points: dict[tuple[str, int], dict] = {}
    for line in response.data.decode().splitlines():
        series = json.loads(line)
        labels = series["metric"]
        field = labels.pop("__name__").removeprefix(PREFIX)
        for value, stamp_ms in zip(series["values"], series["timestamps"], strict=True):
            point = points.setdefault((labels["meter_id"], stamp_ms // 1000), dict(labels))
            assert field not in point, f"{field} stored twice for {labels['meter_id']} {stamp_ms}"
            point[field] = value
    return points


def assert_exported_exactly(server, source: pa.Table | pa.RecordBatch) -> None:
    points = exported_points(server)
    expected = source.to_pylist()
    assert len(points) == len(expected)
    for row in expected:
        point = points[(row["meter_id"], int(row["timestamp"].timestamp()))]
        want = {k: str(row[k]) for k in TAG_COLUMNS}
        # VictoriaMetrics stores values as decimals of ~12 significant digits, not float64.
        want.update(
            {
                k: pytest.approx(row[k], rel=1e-11, abs=1e-300)
                for k in FIELD_COLUMNS
                if row[k] is not None
            }
        )
        assert point == want


def v2_config(server, bucket: str, tmp_path, **extra) -> InfluxConfig:
    return InfluxConfig(
        url=server.url,
        token="any-token",
        org="gtx_ray",
        bucket=bucket,
        spool_dir=tmp_path / "spool",
        max_retries=1,
        backoff_initial_s=0.1,
        timeout_s=5.0,
        recheck_interval_s=0.5,
        **extra,
    )


def test_the_v2_path_stores_a_campus_day_exactly(victoria, database, campus_day, tmp_path):
    with InfluxSink(v2_config(victoria, database, tmp_path)) as sink:
        sink.write(campus_day)
        status = sink.status()
    assert status["api"] == "v2"  # /ping has no 1.x version header
    assert status["rows_written"] == 2400 and status["rows_spooled"] == 0
    assert_exported_exactly(victoria, campus_day)


def test_rewriting_the_same_points_does_not_double_them(victoria, database, campus_day, tmp_path):
    with InfluxSink(v2_config(victoria, database, tmp_path, api="v2")) as sink:
        sink.write(campus_day)
        sink.write(campus_day)
    assert_exported_exactly(victoria, campus_day)


def test_the_v2_path_spools_while_the_server_is_down_and_replays_in_order(
    victoria, database, campus, campus_meters, tmp_path
):
    batches = campus_days(campus, campus_meters, days=4)  # 16 batches of 600 readings
    sink = InfluxSink(v2_config(victoria, database, tmp_path))
    try:
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                for batch in batches:
                    sink.write(batch)
                    time.sleep(0.1)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.4)
        victoria.stop()
        time.sleep(1.5)
        victoria.start()
        thread.join(timeout=60)
        assert not errors and not thread.is_alive()
        assert sink.drain(timeout_s=30) == 0
        status = sink.status()
    finally:
        sink.close()
    assert status["rows_spooled"] > 0 and status["rows_replayed"] == status["rows_spooled"]
    assert_exported_exactly(victoria, pa.Table.from_batches(batches))
