"""InfluxSink and replay against a real InfluxDB 1.x (Debian's influxd)."""

from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gtx_ray.errors import ConfigError
from gtx_ray.readings import FIELD_COLUMNS, TAG_COLUMNS
from gtx_ray.storage.influx import InfluxConfig, InfluxError, InfluxSink, influxql, replay_data_dir
from gtx_ray.storage.line_protocol import LineProtocolError
from gtx_ray.storage.parquet import ParquetSink, read_readings
from tests.storage.conftest import ADMIN_PASSWORD, ADMIN_USER, campus_days

FAST = {
    "max_retries": 2,
    "backoff_initial_s": 0.1,
    "backoff_max_s": 0.4,
    "timeout_s": 5.0,
    "recheck_interval_s": 0.5,
}


def config_for(server, database, tmp_path=None, **extra) -> InfluxConfig:
    spool = {"spool_dir": tmp_path / "spool"} if tmp_path is not None else {}
    return InfluxConfig(url=server.url, bucket=database, **{**FAST, **spool, **extra})


def admin(server, database: str = "gtx_ray") -> InfluxConfig:
    return InfluxConfig(
        url=server.url, bucket=database, username=ADMIN_USER, password=ADMIN_PASSWORD
    )


def count(config: InfluxConfig, field: str = "energy_consumed") -> int:
    rows = influxql(config, f"SELECT count({field}) FROM meter_readings")
    return rows[0]["count"] if rows else 0


def stored_points(config: InfluxConfig) -> dict[tuple[str, int], dict]:
    """Every stored point by (meter_id, epoch s), tags and fields (absent fields dropped)."""
    rows = influxql(config, "SELECT * FROM meter_readings GROUP BY *")
    points = {}
    for row in rows:
        key = (row["meter_id"], row["time"])
        assert key not in points, f"point {key} stored twice"
        points[key] = {k: v for k, v in row.items() if v is not None and k != "time"}
    return points


def assert_stored_exactly(config: InfluxConfig, source: pa.Table | pa.RecordBatch) -> None:
    """The database holds exactly the source's readings: same tags, same float values, absent
    fields where the source is null."""
    points = stored_points(config)
    expected = source.to_pylist()
    assert len(points) == len(expected)
    for row in expected:
        point = points[(row["meter_id"], int(row["timestamp"].timestamp()))]
        want = {k: str(row[k]) for k in TAG_COLUMNS}
        want.update({k: row[k] for k in FIELD_COLUMNS if row[k] is not None})
        assert point == want


def test_a_simulated_campus_day_stores_exactly_2400_points_equal_to_the_source(
    influxd, database, campus_day, tmp_path
):
    config = config_for(influxd, database, tmp_path)
    with InfluxSink(config) as sink:
        sink.write(campus_day)
        status = sink.status()
    assert status["api"] == "v1" and status["server_version"].startswith("1.")
    assert status["rows_written"] == 2400 and status["rows_spooled"] == 0
    assert status["healthy"] and status["last_error"] is None
    assert count(config) == 25 * 96
    assert_stored_exactly(config, campus_day)
    has_battery = pc.sum(pc.is_valid(campus_day.column("battery_level"))).as_py()
    assert count(config, "battery_level") == has_battery == 5 * 96
    assert count(config, "solar_generation") == 16 * 96


def test_tag_values_with_spaces_commas_and_equals_signs_round_trip(influxd, database, campus_day):
    names = ["Engineering Building A", "Lab, East=2", "a=b c,d", "Tower  Two "]
    rows = campus_day.slice(0, len(names))
    rows = rows.set_column(
        rows.schema.get_field_index("building"), "building", pa.array(names, pa.string())
    )
    config = config_for(influxd, database)
    with InfluxSink(config) as sink:
        sink.write(rows)
    stored = influxql(config, 'SHOW TAG VALUES FROM meter_readings WITH KEY = "building"')
    assert sorted(r["value"] for r in stored) == sorted(names)
    assert_stored_exactly(config, rows)


def test_influxd_killed_mid_write_and_restarted_keeps_every_point_exactly_once(
    crash_influxd, campus, campus_meters, tmp_path, caplog
):
    """SIGKILL the database while a writer streams 20 campus days (~40 s), keep it down for 30 s,
    restart it: the sink retries, spools, replays, and every reading is stored once."""
    batches = campus_days(campus, campus_meters, days=20)  # 80 batches of 600 readings
    source = pa.Table.from_batches(batches)
    config = config_for(crash_influxd, "crash", tmp_path, batch_points=200)
    caplog.set_level(logging.INFO, logger="gtx_ray.storage.influx")
    sink = InfluxSink(config)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for batch in batches:
                sink.write(batch)
                time.sleep(0.5)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(2.0)
    crash_influxd.kill()
    time.sleep(30.0)
    assert thread.is_alive(), "the writer finished before the database came back"
    crash_influxd.start()
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors
    assert sink.drain(timeout_s=60) == 0
    status = sink.status()
    sink.close()

    assert status["rows_spooled"] > 0, "the outage was not hit"
    assert status["rows_replayed"] == status["rows_spooled"]
    assert status["rows_written"] + status["rows_replayed"] >= source.num_rows
    assert status["healthy"] and status["last_error"] is None
    assert "unreachable" in caplog.text and "takes writes again" in caplog.text
    assert count(config) == source.num_rows
    assert_stored_exactly(config, source)


def test_a_new_sink_replays_the_spool_an_earlier_run_left(
    crash_influxd, campus_day, tmp_path, caplog
):
    config = config_for(crash_influxd, "leftover", tmp_path, max_retries=0)
    crash_influxd.stop()
    with InfluxSink(config) as first:
        first.write(campus_day.slice(0, 1000))
        first.write(campus_day.slice(1000))
        assert first.status()["rows_pending"] == 2400
        assert "unreachable" in first.status()["last_error"]
        assert not first.status()["healthy"]
    crash_influxd.start()
    with InfluxSink(config) as second:
        assert second.drain(timeout_s=30) == 0
        assert second.status()["rows_replayed"] == 2400
    assert_stored_exactly(config, campus_day)
    assert not list((tmp_path / "spool" / "pending").iterdir())


def test_a_wrong_password_is_a_clear_error_data_is_spooled_and_replayed_once_fixed(
    influxd_auth, database, campus_day, tmp_path, caplog
):
    influxql(admin(influxd_auth), f"CREATE DATABASE {database}", None)
    influxql(admin(influxd_auth), "CREATE USER writer_pw WITH PASSWORD 'right'", None)
    influxql(admin(influxd_auth), f"GRANT WRITE ON {database} TO writer_pw", None)
    config = config_for(
        influxd_auth,
        database,
        tmp_path,
        username="writer_pw",
        password="wrong",
        create_bucket=False,
    )
    caplog.set_level(logging.INFO, logger="gtx_ray.storage.influx")
    with InfluxSink(config) as sink:
        sink.write(campus_day)
        status = sink.status()
        assert not status["healthy"]
        assert status["rows_pending"] == 2400 and status["rows_written"] == 0
        assert "rejected the credentials (401): authorization failed" in status["last_error"]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and influxd_auth.url in errors[0].getMessage()
        assert count(admin(influxd_auth, database)) == 0

        influxql(admin(influxd_auth), "SET PASSWORD FOR writer_pw = 'wrong'", None)
        assert sink.drain(timeout_s=30) == 0
        assert sink.status()["healthy"] and sink.status()["rows_replayed"] == 2400
    assert_stored_exactly(admin(influxd_auth, database), campus_day)


def test_a_missing_database_without_create_permission_is_a_clear_error_then_replayed(
    influxd_auth, database, campus_day, tmp_path
):
    influxql(admin(influxd_auth), "CREATE USER writer_db WITH PASSWORD 'pw'", None)
    config = config_for(influxd_auth, database, tmp_path, username="writer_db", password="pw")
    with InfluxSink(config) as sink:
        status = sink.status()
        assert not status["healthy"]
        assert f"has no database '{database}' and gtx_ray may not create it" in status["last_error"]
        assert "requires admin privilege" in status["last_error"]
        sink.write(campus_day)
        assert sink.status()["rows_pending"] == 2400

        influxql(admin(influxd_auth), f"CREATE DATABASE {database}", None)
        influxql(admin(influxd_auth), f"GRANT WRITE ON {database} TO writer_db", None)
        assert sink.drain(timeout_s=30) == 0
        assert sink.status()["api"] == "v1"
    assert_stored_exactly(admin(influxd_auth, database), campus_day)


def test_without_a_spool_bad_credentials_raise_one_clear_line(influxd_auth, database):
    config = config_for(influxd_auth, database, username="nobody", password="x")
    with pytest.raises(InfluxError, match=r"rejected the credentials \(401\)") as caught:
        InfluxSink(config)
    assert "\n" not in str(caught.value)


def test_data_the_server_refuses_is_kept_under_rejected_not_dropped(
    influxd, database, campus_day, tmp_path
):
    """A field type conflict (energy_consumed once written as a string) makes InfluxDB answer 400:
    no retry, no spool loop — the readings land in SPOOL/rejected and writing goes on."""
    config = config_for(influxd, database, tmp_path)
    with InfluxSink(config) as sink:
        first = campus_day.slice(0, 25)
        head = f'meter_readings,meter_id=X energy_consumed="text" {int(first.column(0)[0].value)}'
        _post_v1(config, head)
        sink.write(first)
        status = sink.status()
        assert status["rows_rejected"] == 25 and status["healthy"]
        assert "refused the data (400)" in status["last_error"]
        assert "field type conflict" in status["last_error"]
    rejected = read_readings(tmp_path / "spool" / "rejected")
    assert rejected.equals(pa.Table.from_batches([first]))


def _post_v1(config: InfluxConfig, body: str) -> None:
    import urllib3

    response = urllib3.request(
        "POST", f"{config.url}/write?db={config.bucket}&precision=s", body=body.encode()
    )
    assert response.status == 204, response.data


def test_replay_data_dir_is_idempotent(influxd, database, campus_day, tmp_path):
    data_dir = tmp_path / "data"
    parquet = ParquetSink(data_dir, rows_per_file=1000)
    for start in range(0, 2400, 300):
        parquet.write(campus_day.slice(start, 300))
    parquet.flush()  # 2 Parquet parts plus an open journal of 400 readings
    config = config_for(influxd, database, batch_points=500)
    seen: list[tuple[int, int]] = []
    assert replay_data_dir(data_dir, config, progress=lambda d, t: seen.append((d, t))) == 2400
    assert seen[-1] == (2400, 2400) and len(seen) >= 5
    assert replay_data_dir(data_dir, config) == 2400
    parquet.close()
    assert count(config) == 2400
    assert_stored_exactly(config, campus_day)


def test_replay_data_dir_errors_are_clear(influxd, tmp_path):
    with pytest.raises(ConfigError, match="no readings directory"):
        replay_data_dir(tmp_path / "nothing", InfluxConfig(url=influxd.url))
    (tmp_path / "data" / "readings").mkdir(parents=True)
    dead = InfluxConfig(url="http://127.0.0.1:9", max_retries=0, timeout_s=1)
    with pytest.raises(InfluxError, match="unreachable"):
        replay_data_dir(tmp_path / "data", dead)


def test_bad_input_and_bad_config_are_clear_errors(influxd, database, campus_day, tmp_path):
    with pytest.raises(ConfigError, match="must look like http"):
        InfluxConfig(url="localhost:8086")
    with pytest.raises(ConfigError, match="batch_points"):
        InfluxConfig(batch_points=0)
    with pytest.raises(ConfigError, match="api"):
        InfluxConfig(api="v3")  # type: ignore[arg-type]
    config = config_for(influxd, database, tmp_path, batch_points=500)
    with InfluxSink(config) as sink:
        with pytest.raises(LineProtocolError, match="lacks column"):
            sink.write(campus_day.drop_columns(["meter_id"]))
        buildings = campus_day.column("building").to_pylist()
        buildings[-1] = "Annex\\B"  # only the last row is bad: the whole batch is refused
        bad_tail = campus_day.set_column(
            campus_day.schema.get_field_index("building"), "building", pa.array(buildings)
        )
        with pytest.raises(LineProtocolError, match="backslash"):
            sink.write(bad_tail)
        with pytest.raises(TypeError, match="RecordBatch"):
            sink.write([1, 2])  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="in use by another"):
            InfluxSink(config)
    assert count(config) == 0


class FaultyProxy:
    """A loopback HTTP proxy in front of the real influxd that answers the next /write requests
    from a script ("503", "401", "slow" = stall past the client's timeout) before forwarding."""

    def __init__(self, target: str, script: list[str], stall_s: float = 3.0):
        import http.server

        import urllib3

        self.script = list(script)
        self.writes: list[str] = []
        pool = urllib3.PoolManager(retries=False)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = "pass"
                if self.path.startswith("/write") and body:
                    action = proxy.script.pop(0) if proxy.script else "pass"
                    proxy.writes.append(action)
                if action == "slow":
                    time.sleep(stall_s)
                if action in ("503", "401"):
                    payload = b'{"error":"injected ' + action.encode() + b'"}'
                    self.send_response(int(action))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = pool.request(
                    self.command,
                    target + self.path,
                    body=body or None,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                self.send_response(upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.data)))
                self.end_headers()
                self.wfile.write(upstream.data)

            do_GET = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("fault", ["503", "slow"])
def test_5xx_and_timeouts_are_retried_with_backoff_and_nothing_is_spooled(
    influxd, database, campus_day, tmp_path, fault
):
    proxy = FaultyProxy(influxd.url, [fault, fault], stall_s=2.5)
    try:
        config = InfluxConfig(
            url=proxy.url,
            bucket=database,
            spool_dir=tmp_path / "spool",
            batch_points=1000,
            max_in_flight=1,
            max_retries=3,
            backoff_initial_s=0.2,
            timeout_s=1.0,
        )
        started = time.monotonic()
        with InfluxSink(config) as sink:
            sink.write(campus_day)
            status = sink.status()
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
    assert proxy.writes[:2] == [fault, fault] and len(proxy.writes) == 2 + 3
    assert status["rows_written"] == 2400 and status["rows_spooled"] == 0
    assert elapsed >= 0.1 + 0.2  # two backoffs: 0.5–1 × 0.2 s, then 0.5–1 × 0.4 s
    assert_stored_exactly(InfluxConfig(url=influxd.url, bucket=database), campus_day)


def test_a_4xx_is_not_retried_and_the_batch_is_spooled(influxd, database, campus_day, tmp_path):
    proxy = FaultyProxy(influxd.url, ["401"])
    try:
        config = InfluxConfig(
            url=proxy.url,
            bucket=database,
            spool_dir=tmp_path / "spool",
            batch_points=1000,
            max_in_flight=1,
            recheck_interval_s=0.3,
        )
        with InfluxSink(config) as sink:
            sink.write(campus_day)
            assert proxy.writes == ["401"], "a 401 must not be retried"
            assert "rejected the credentials (401): injected 401" in sink.status()["last_error"]
            assert sink.status()["rows_spooled"] == 2400
            assert sink.drain(timeout_s=20) == 0  # the proxy passes everything from now on
    finally:
        proxy.close()
    assert_stored_exactly(InfluxConfig(url=influxd.url, bucket=database), campus_day)


def test_a_full_spool_blocks_the_writer_until_the_database_takes_the_readings(
    crash_influxd, campus_day, tmp_path
):
    """spool_max_rows bounds the spool: a write beyond it waits (backpressure), not grows."""
    config = config_for(crash_influxd, "bounded", tmp_path, max_retries=0, spool_max_rows=1000)
    crash_influxd.stop()
    with InfluxSink(config) as sink:
        sink.write(campus_day.slice(0, 1200))  # spool empty: accepted, now over the limit
        done = threading.Event()
        writer = threading.Thread(target=lambda: (sink.write(campus_day.slice(1200)), done.set()))
        writer.start()
        assert not done.wait(1.5), "the write should wait while the spool is full"
        assert sink.status()["rows_pending"] == 1200
        crash_influxd.start()
        assert done.wait(30)
        writer.join()
        assert sink.drain(timeout_s=30) == 0
    assert_stored_exactly(config, campus_day)


def test_one_sink_rides_out_repeated_outages(crash_influxd, campus_day, tmp_path):
    config = config_for(crash_influxd, "repeated", tmp_path, max_retries=0)
    with InfluxSink(config) as sink:
        for part in range(3):
            rows = campus_day.slice(part * 800, 800)
            crash_influxd.stop()
            sink.write(rows)
            assert not sink.status()["healthy"]
            crash_influxd.start()
            assert sink.drain(timeout_s=30) == 0, f"outage {part + 1} not replayed"
            sink.write(rows)  # healthy again: straight to the database, no duplicates
        status = sink.status()
    assert status["rows_spooled"] == status["rows_replayed"] == 2400
    assert status["rows_written"] == 2400
    assert_stored_exactly(config, campus_day)


def test_status_tells_stored_from_spooled_and_clears_the_error_once_the_database_answers(
    crash_influxd, campus_day, tmp_path
):
    """While the database is down, spooled readings are not counted as stored; once it is back
    the error goes with the first replayed part, not after the whole spool."""
    config = config_for(
        crash_influxd, "status_fields", tmp_path, max_retries=0, spool_rows_per_file=1200
    )
    with InfluxSink(config) as sink:
        sink.write(campus_day)
        assert sink.status()["rows_stored"] == 2400 and sink.status()["rows_pending"] == 0
        crash_influxd.stop()
        for _ in range(40):  # 96,000 readings in 80 spooled parts: replay takes a while
            sink.write(campus_day)
        down = sink.status()
        assert not down["healthy"] and not down["last_attempt_ok"]
        assert "unreachable" in down["last_error"]
        assert down["rows_stored"] == 2400 and down["rows_pending"] == 40 * 2400

        crash_influxd.start()
        replaying = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = sink.status()
            if status["healthy"]:
                break
            if status["rows_replayed"]:
                replaying.append(status)
            time.sleep(0.002)
        assert status["healthy"], status
        assert replaying, "never saw the replay in progress"
        for seen in replaying:
            assert seen["last_error"] is None and seen["last_attempt_ok"], seen
            assert seen["rows_stored"] + seen["rows_pending"] == 41 * 2400, seen
        final = sink.status()
    assert final["rows_stored"] == 41 * 2400 and final["rows_pending"] == 0
    assert final["last_error"] is None and final["last_attempt_ok"]
