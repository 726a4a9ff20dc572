"""``python -m gtx_ray`` as a user runs it: exit codes, status lines, SIGTERM, Ray metrics."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from gtx_ray.storage.parquet import read_readings
from tests.conftest import REPO


def gtx(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "gtx_ray", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["--speed", "fast"], {}, "--speed"),
        (["--interval", "7"], {}, "--interval"),
        (["--interval", "abc"], {}, "--interval"),
        (["--meters", "0"], {}, "--meters"),
        (["--duration", "ten minutes"], {}, "--duration"),
        (["--start", "yesterday-ish"], {}, "--start"),
        (["--api-port", "70000"], {}, "--api-port"),
        (["--config-file", "no/such/file.json"], {}, "--config-file"),
        (["--scenario", "no/such/scenario.json"], {}, "--scenario"),
        (["--scenario", "README.md"], {}, "--scenario"),
        (["--scenario", "config/utcc_campus_config.json"], {}, "--scenario"),
        (["--bogus-flag"], {}, "--bogus-flag"),
        (["backfill", "--start", "2024-01-01"], {}, "--duration"),
        ([], {"SIMULATION_INTERVAL": "0"}, "SIMULATION_INTERVAL"),
        ([], {"API_PORT": "http"}, "API_PORT"),
        ([], {"INFLUXDB_ENABLED": "maybe"}, "INFLUXDB_ENABLED"),
        ([], {"IEEE2030_5_PORT": "-1"}, "IEEE2030_5_PORT"),
        ([], {"INFLUXDB_URL": "localhost:8086"}, "INFLUXDB_URL"),
        (["--start", "0001-01-01"], {}, "--start"),
        (["--start", "9999-12-31T23:59:59-14:00"], {}, "--start"),
        (["--duration", "99999y"], {}, "--duration"),
        (["--duration", "9" * 400 + "w"], {}, "--duration"),
        (["--start", "2199-06-01", "--duration", "1y"], {}, "--duration"),
        (["--namespace", ""], {}, "--namespace"),
        (["--namespace", "_ray_internal_x"], {}, "--namespace"),
        (["--data-dir", "/proc/forbidden"], {}, "--data-dir"),
        (["--data-dir", "README.md"], {}, "--data-dir"),
        (["--certs-dir", "/proc/forbidden"], {}, "--certs-dir"),
        (["--certs-dir", "README.md"], {}, "--certs-dir"),
        (["--api-host", "999.1.1.1"], {}, "--api-host"),
        ([], {"API_HOST": "999.1.1.1"}, "API_HOST"),
        (["--api-host", "203.0.113.7"], {}, "--api-host"),  # TEST-NET-3: not this machine
        (["--ieee2030-5-host", "999.1.1.1"], {}, "--ieee2030-5-host"),
        (["--address", "no-port-here"], {}, "--address"),
    ],
)
def test_bad_flags_and_variables_exit_2_with_one_clear_line(args, env, names):
    # --address local: a value that slipped through validation must not join another cluster
    if "--address" not in args:
        args = [*args, "--address", "local"]
    result = gtx(*args, env=env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert names in lines[0]
    assert "Traceback" not in result.stderr
    if names == "--api-host":
        assert "--api-port" not in lines[0]


def test_a_busy_api_port_exits_2_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = gtx("--api-port", str(port), "--data-dir", str(tmp_path), "--address", "local")
    assert result.returncode == 2, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "API_PORT" in result.stderr
    assert "Traceback" not in result.stderr and "started" not in result.stderr
    assert not any(tmp_path.iterdir())  # nothing simulated, nothing written


def test_malformed_config_file_exits_2_naming_the_meter(tmp_path):
    broken = tmp_path / "campus.json"
    text = (REPO / "config" / "utcc_campus_config.json").read_text()
    broken.write_text(text.replace('"capacity_kw": 250.0', '"capacity_kw": "lots"', 1))
    result = gtx("--config-file", str(broken))
    assert result.returncode == 2
    assert "AMI_METER_UTCC_013" in result.stderr and "capacity_kw" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_flags():
    result = gtx("--help")
    assert result.returncode == 0
    for flag in (
        "--config-file",
        "--disable-ieee2030-5",
        "--ieee2030-5-port",
        "--disable-influxdb",
        "--meters",
        "--meters-per-actor",
        "--seed",
        "--interval",
        "--api-port",
        "--start",
        "--speed",
        "--duration",
        "--data-dir",
    ):
        assert flag in result.stdout


class _Collector:
    """Reads a process's stderr in the background."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            self.lines.append(line.rstrip("\n"))

    def stored_rows(self) -> int:
        counts = [
            int(m.group(1).replace(",", ""))
            for line in self.lines
            if (m := re.search(r"stored ([\d,]+) rows", line))
        ]
        return max(counts, default=0)


def _launch(
    args: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, _Collector]:
    """``python -m gtx_ray ARGS`` from the repository root, its stderr collected."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gtx_ray", *args],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    return process, _Collector(process)


def _ensure_ended(process: subprocess.Popen) -> None:
    """Kill a process a test left running (after a failed assertion)."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def _metrics_text() -> str:
    port = ray.nodes()[0]["MetricsExportPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


SIMULATOR_METRICS = (
    "gtx_readings_generated",
    "gtx_rows_stored",
    "gtx_tick_lag_seconds",
    "gtx_storage_queue_depth",
)


def test_sigterm_flushes_everything_and_exits_0(ray_runtime, tmp_path):
    """A run without an end: status lines appear, SIGTERM stops it, every reading is stored, and
    the simulator's metrics are on Ray's metrics endpoint while it runs."""
    data = tmp_path / "data"
    start = "2025-03-01T00:00:00+07:00"
    process, collector = _launch(
        [
            "--meters",
            "50",
            "--meters-per-actor",
            "25",
            "--interval",
            "60",
            "--speed",
            "1800",
            "--start",
            start,
            "--data-dir",
            str(data),
            "--namespace",
            "gtx_cli_sigterm",
            "--address",  # this session's cluster, not any other Ray running on the host
            ray_runtime.get_runtime_context().gcs_address,
            "--status-every",
            "1",
            "--disable-influxdb",
            "--disable-ieee2030-5",
            "--disable-api",
        ],
    )
    try:
        deadline = time.monotonic() + 180
        while collector.stored_rows() < 50 * 60:
            assert process.poll() is None, "\n".join(collector.lines)
            assert time.monotonic() < deadline, "\n".join(collector.lines)
            time.sleep(0.5)
        metrics_seen = ""
        while time.monotonic() < deadline:  # each process exports its metrics on its own beat
            metrics_seen = _metrics_text()
            if all(metric in metrics_seen for metric in SIMULATOR_METRICS):
                break
            time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, "\n".join(collector.lines)
    finally:
        _ensure_ended(process)
    output = "\n".join(collector.lines)
    assert "Traceback" not in output
    for metric in SIMULATOR_METRICS:
        assert metric in metrics_seen, metric
    assert re.search(r"\| lag \d+\.\d s \|", output), output

    done = re.search(r"done: ([\d,]+) readings stored", output)
    assert done, output
    reported = int(done.group(1).replace(",", ""))
    table = read_readings(data)
    assert table.num_rows == reported > 0
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    intervals = np.unique(ts)
    assert table.num_rows == 50 * len(intervals), "an interval was stored partially"
    first = 1_740_762_000  # 2025-03-01T00:00:00+07:00
    assert np.array_equal(intervals, first + 60 * np.arange(len(intervals))), "gap in the data"
    keys = np.char.add(table.column("meter_id").to_numpy().astype(str), ts.astype(str))
    assert len(np.unique(keys)) == len(keys), "a reading was stored twice"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_full_stack_run_serves_rest_and_ieee2030_5(tmp_path):
    """The README's run: its own Ray, certificates created on first use, the REST API and the
    IEEE 2030.5 server answering, then a clean SIGTERM."""
    import http.client
    import json

    from gtx_ray.ieee2030_5.pki import device_credentials
    from gtx_ray.ieee2030_5.tls import client_context

    api_port, sep_port = _free_port(), _free_port()
    certs = tmp_path / "certs"
    process, collector = _launch(
        [
            "--address",
            "local",
            "--interval",
            "60",
            "--speed",
            "600",
            "--data-dir",
            str(tmp_path / "data"),
            "--certs-dir",
            str(certs),
            "--api-port",
            str(api_port),
            "--ieee2030-5-port",
            str(sep_port),
            "--namespace",
            "gtx_cli_full",
            "--status-every",
            "2",
        ],
    )
    try:
        deadline = time.monotonic() + 240
        status = None
        while time.monotonic() < deadline:
            assert process.poll() is None, "\n".join(collector.lines)
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{api_port}/api/ieee2030_5/status", timeout=5
                ) as response:
                    status = json.loads(response.read())
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{api_port}/health", timeout=5
                ) as response:
                    health = json.loads(response.read())
                if status.get("listening") and health.get("meters_active") == 25:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert status and status["enabled"] and status["listening"], "\n".join(collector.lines)
        assert status["port"] == sep_port

        creds = device_credentials(certs, "AMI_METER_UTCC_007")
        context = client_context(creds.ca, creds.cert_chain, creds.key)
        connection = http.client.HTTPSConnection("127.0.0.1", sep_port, context=context, timeout=10)
        connection.request("GET", "/dcap", headers={"Accept": "application/sep+xml"})
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("application/sep+xml")
        assert b"DeviceCapability" in body and b"urn:ieee:std:2030.5:ns" in body
        connection.close()

        _check_meters_are_clients(f"http://127.0.0.1:{api_port}", certs, collector)
        _exercise_admin_api(f"http://127.0.0.1:{api_port}")

        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, "\n".join(collector.lines)
        stop_s = time.monotonic() - sent
    finally:
        _ensure_ended(process)
    output = "\n".join(collector.lines)
    assert "Traceback" not in output
    assert "certificates: " in output and "created" in output
    # Everything on, SIGTERM: out by itself (every shutdown step has a deadline), with every
    # reading in flight stored (InfluxDB is not running here, so they wait in the spool for it).
    # How fast is measured in benchmarks/startup.py; here only that it is bounded, also on a
    # machine loaded by other work (15 s seen at a load average of 35 on 2 cores).
    assert stop_s <= 60.0, f"SIGTERM took {stop_s:.1f} s"
    done = re.search(r"done: ([\d,]+) readings", output)
    assert done, output
    spooled = sum(
        pq.ParquetFile(part).metadata.num_rows
        for part in (tmp_path / "data" / "spool").rglob("*.parquet")
    )
    assert spooled == int(done.group(1).replace(",", "")) > 0


def _exercise_admin_api(base: str) -> None:
    """The operator API for the 2030.5 registry, from loopback (allowed without a token)."""
    import json

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    lfdi = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
    status, body = call("POST", "/api/ieee2030_5/admin/devices", {"lfdi": lfdi})
    assert status == 200, body
    device_id = body["result"]
    assert call("POST", "/api/ieee2030_5/admin/devices", {"lfdi": lfdi})[0] == 409
    assert call("POST", "/api/ieee2030_5/admin/devices", {"lfdi": "xyz"})[0] == 400
    status, body = call("GET", "/api/ieee2030_5/admin/devices")
    assert status == 200 and lfdi in {d["lfdi"] for d in body["result"]}
    assert call("PUT", "/api/ieee2030_5/admin/rates", {"post_rate": 60, "poll_rate": 300})[0] == 200
    assert call("PUT", "/api/ieee2030_5/admin/rates", {"post_rate": 0})[0] == 422
    assert call("DELETE", f"/api/ieee2030_5/admin/devices/{device_id}")[0] == 200
    assert call("DELETE", f"/api/ieee2030_5/admin/devices/{device_id}")[0] == 404
    assert call("DELETE", "/api/ieee2030_5/admin/mirrors")[0] == 200


def _check_meters_are_clients(base: str, certs, collector) -> None:
    """25 meters registered as 25 distinct devices whose LFDIs are their certificates', and
    mirroring readings."""
    import json

    from gtx_ray.ieee2030_5.pki.cli import describe

    deadline = time.monotonic() + 120
    clients: list = []
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/api/ieee2030_5/clients", timeout=30) as response:
                clients = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503 until every meter actor has answered once
            assert exc.code == 503, exc.read()
            time.sleep(1)
            continue
        if len(clients) == 25 and all(c["registered"] and c["posts_ok"] > 0 for c in clients):
            break
        time.sleep(1)
    assert len(clients) == 25, clients
    assert all(c["registered"] and c["posts_ok"] > 0 for c in clients), (
        [c for c in clients if not c["posts_ok"]][:3],
        "\n".join(collector.lines[-20:]),
    )
    assert len({c["lfdi"] for c in clients}) == 25
    for client in clients:
        expected = describe(certs / "devices" / f"{client['meter_id']}.pem")
        assert client["lfdi"].upper() == str(expected["lfdi"]).upper()
        assert str(client["sfdi"]) == str(expected["sfdi"])
        assert client["end_device_href"] and client["mirror_usage_point_href"]
    with urllib.request.urlopen(base + "/api/ieee2030_5/status", timeout=30) as response:
        status = json.loads(response.read())
    assert status["registered_devices"] == 25
    assert status["readings_mirrored"] > 0
    assert status["clients"]["registered"] == 25


def test_the_api_of_a_killed_driver_frees_its_port(ray_runtime, tmp_path):
    """A run joined to a long-lived cluster and SIGKILLed leaves no REST API behind: its actors
    die with the driver, and the API (a detached Serve app) notices and removes itself."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process, _ = _launch(
        [
            *("--meters", "4", "--interval", "60", "--speed", "600"),
            *("--data-dir", str(tmp_path), "--namespace", "gtx_cli_sigkill"),
            *("--address", ray_runtime.get_runtime_context().gcs_address),
            *("--api-port", str(port), "--disable-influxdb", "--disable-ieee2030-5"),
        ]
    )
    url = f"http://127.0.0.1:{port}/api/readings"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, "the run ended early"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if json.loads(response.read()):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the REST API never served readings"
            time.sleep(0.5)
    finally:
        process.kill()
        process.wait(timeout=30)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                pass
        except urllib.error.HTTPError:
            pass  # 503 once the API sees its simulation is unreachable
        except OSError:
            break  # refused: the port is free again
        assert time.monotonic() < deadline, "the dead run's REST API still holds its port"
        time.sleep(1)


def _one_line_no_traceback(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_cluster_address_where_nothing_listens_exits_2_quickly(tmp_path):
    started = time.monotonic()
    result = gtx("--address", "127.0.0.1:1", "--data-dir", str(tmp_path), timeout=120)
    assert result.returncode == 2, result.stderr
    line = _one_line_no_traceback(result)
    assert "--address" in line and ":1" in line and "ray start" in line
    assert time.monotonic() - started < 60  # Ray alone would retry for minutes


def test_a_local_ray_that_cannot_start_is_one_line_not_a_traceback(tmp_path):
    """Ray's own start-up failure (here: its temp dir cannot be created)."""
    result = gtx(
        *("--address", "local", "--data-dir", str(tmp_path)),
        env={"RAY_TMPDIR": "/proc/forbidden"},
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    line = _one_line_no_traceback(result)
    assert "could not start Ray" in line and "/proc/forbidden" in line


def _env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def test_a_cluster_that_refuses_the_token_exits_2_saying_which_variable(ray_runtime, tmp_path):
    """Ray 2.60 turns token authentication on for a local cluster: a wrong token, or none,
    is one line that says how to pass the cluster's token."""
    address = ray_runtime.get_runtime_context().gcs_address
    common = ("--address", address, "--data-dir", str(tmp_path), "--namespace", "gtx_cli_auth")
    wrong = subprocess.run(
        [sys.executable, "-m", "gtx_ray", *common],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 32},
    )
    assert wrong.returncode == 2, wrong.stderr
    line = _one_line_no_traceback(wrong)
    assert address in line and "RAY_AUTH_TOKEN" in line and "token" in line

    unset = subprocess.run(
        [sys.executable, "-m", "gtx_ray", *common],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={  # no token on this machine either (with one, the CLI sends it: next test)
            **_env_without("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"),
            "RAY_AUTH_TOKEN_PATH": str(tmp_path / "no_token"),
        },
    )
    assert unset.returncode == 2, unset.stderr
    line = _one_line_no_traceback(unset)
    assert "RAY_AUTH_MODE=token" in line and "RAY_AUTH_TOKEN" in line


def test_a_backfill_while_influxdb_is_down_says_what_it_waits_for(ray_runtime, tmp_path):
    """InfluxDB is down for the whole run: the status line counts readings as spooled, not
    stored; at the end the CLI says what it waits for and until when, with progress lines; once
    InfluxDB is back the spool is written, the count check passes and 'done' says all stored."""
    from tests.servers import ServerUnavailable, influxd_server

    try:
        influxd = influxd_server(tmp_path / "influxd").start()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    influxd.stop()  # the port and data dir stay: start() brings it back on the same URL
    expected = 20 * 2 * 96
    process, collector = _launch(
        [
            "backfill",
            *("--meters", "20", "--interval", "900", "--start", "2024-01-01"),
            *("--duration", "2d", "--speed", "43200", "--status-every", "1"),
            *("--drain-timeout", "150", "--data-dir", str(tmp_path / "data")),
            *("--namespace", "gtx_cli_spool", "--disable-api", "--disable-ieee2030-5"),
            *("--address", ray_runtime.get_runtime_context().gcs_address),
        ],
        env={**os.environ, "INFLUXDB_URL": influxd.url, "INFLUXDB_BUCKET": "spool_e2e"},
    )

    def wait_for(pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(collector.lines):
                if found := re.search(pattern, line):
                    return found
            assert process.poll() is None, "\n".join(collector.lines)
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(collector.lines))

    try:
        waiting = wait_for(
            r"waiting up to 150 s for InfluxDB at (\S+) to take ([\d,]+) spooled readings "
            r"\(until \d\d:\d\d:\d\d\)",
            240,
        )
        assert waiting.group(1) == influxd.url
        assert int(waiting.group(2).replace(",", "")) == expected
        progress = wait_for(r"still ([\d,]+) readings spooled, \d+ s left: (.*)", 60)
        assert int(progress.group(1).replace(",", "")) == expected
        assert "unreachable" in progress.group(2)
        influxd.start()
        assert process.wait(timeout=180) == 0, "\n".join(collector.lines)
    finally:
        _ensure_ended(process)
        influxd.stop()
    output = "\n".join(collector.lines)
    assert "Traceback" not in output
    status_lines = [line for line in collector.lines if "intervals" in line and "| sim " in line]
    assert any(
        re.search(r"stored 0 rows \| [\d,]+ spooled", line) and "unreachable" in line
        for line in status_lines
    ), output
    assert f"count check: InfluxDB holds all {expected:,} readings" in output
    done = re.search(r"done: ([\d,]+) readings stored for 20 meters", output)
    assert done and int(done.group(1).replace(",", "")) == expected, output


def test_keep_serving_leaves_the_results_browsable_until_sigterm(tmp_path):
    """A bounded run with --keep-serving: after its 'done' line the REST API and the dashboard
    still answer with the run's last readings and stored history; SIGTERM ends it, exit 0."""
    import json

    api_port = _free_port()
    process, collector = _launch(
        [
            "--address",
            "local",
            "--disable-influxdb",
            "--disable-ieee2030-5",
            "--start",
            "2025-01-01",
            "--duration",
            "2h",
            "--interval",
            "900",
            "--speed",
            "max",
            "--data-dir",
            str(tmp_path / "data"),
            "--api-port",
            str(api_port),
            "--namespace",
            "gtx_cli_keep",
            "--keep-serving",
        ],
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 240
        while not any("until Ctrl-C" in line for line in collector.lines):
            assert process.poll() is None, "\n".join(collector.lines)
            assert time.monotonic() < deadline, "\n".join(collector.lines)
            time.sleep(0.5)
        assert any(re.search(r"done: 200 readings", line) for line in collector.lines)
        time.sleep(2.0)  # still up after the run
        assert process.poll() is None
        with urllib.request.urlopen(base + "/api/readings", timeout=30) as response:
            latest = json.loads(response.read())
        assert len(latest) == 25
        assert {r["timestamp"] for r in latest} == {
            "2024-12-31T18:45:00Z"
        }  # last of 07:00–09:00 +07
        url = base + "/api/meters/AMI_METER_UTCC_001/readings?start=0&end=1900000000"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert len(json.loads(response.read())) == 8
        with urllib.request.urlopen(base + "/", timeout=30) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "\n".join(collector.lines)
    finally:
        _ensure_ended(process)
    assert "Traceback" not in "\n".join(collector.lines)


def test_the_2030_5_front_on_two_serve_replicas_serves_the_campus(tmp_path):
    """--ieee2030-5-replicas 2: the TLS front runs as two Ray Serve replicas sharing the port;
    the 25 meters register and mirror through them; SIGTERM ends everything, exit 0."""
    import json

    api_port, sep_port = _free_port(), _free_port()
    process, collector = _launch(
        [
            "--address", "local", "--disable-influxdb",
            "--interval", "60", "--speed", "600", "--data-dir", str(tmp_path / "data"),
            "--certs-dir", str(tmp_path / "certs"), "--api-port", str(api_port),
            "--ieee2030-5-port", str(sep_port), "--ieee2030-5-replicas", "2",
            "--namespace", "gtx_cli_serve_front",
        ],
    )  # fmt: skip
    status: dict = {}
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert process.poll() is None, "\n".join(collector.lines)
            try:
                url = f"http://127.0.0.1:{api_port}/api/ieee2030_5/status"
                with urllib.request.urlopen(url, timeout=5) as response:
                    status = json.loads(response.read())
            except (OSError, ValueError):
                status = {}
            if status.get("registered_devices") == 25 and status.get("readings_mirrored", 0) > 0:
                break
            time.sleep(1)
        assert status.get("replicas") == 2 and status.get("front") == "ray_serve", status
        assert status["registered_devices"] == 25 and status["port"] == sep_port, status
        assert status["readings_mirrored"] > 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "\n".join(collector.lines)
    finally:
        _ensure_ended(process)
    output = "\n".join(collector.lines)
    assert "Traceback" not in output and "2 Ray Serve replicas" in output


def test_ray_start_head_then_python_m_gtx_ray_joins_it(tmp_path):
    """The README's cluster path: `ray start --head` (token authentication on, Ray 2.60's
    default), then `python -m gtx_ray --address HOST:PORT` as a new user types it, with no Ray
    variables set: it sends this user's token and the run completes."""
    import shutil
    import tempfile

    port = _free_port()
    ray_temp = tempfile.mkdtemp(prefix="gtxray", dir="/tmp")  # Unix socket paths must be short
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "GTX_RAY_TOKEN_RETRY")
    }
    head = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port),
            "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
            "--temp-dir", ray_temp, "--block",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its GCS and raylet are stopped with it, by process group
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "no Ray head"
                time.sleep(0.5)
        done = subprocess.run(
            [
                sys.executable, "-m", "gtx_ray", "--address", f"127.0.0.1:{port}",
                "--disable-influxdb", "--disable-ieee2030-5", "--disable-api", "--meters", "100",
                "--start", "2025-01-01", "--duration", "1d", "--interval", "900",
                "--speed", "max", "--data-dir", str(tmp_path / "data"), "--namespace", "joined",
            ],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert re.search(r"done: 9,600 readings stored", done.stderr), done.stderr[-2000:]
    assert read_readings(tmp_path / "data").num_rows == 9_600
