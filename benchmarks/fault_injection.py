"""Fault injection against a running campus: every defect of the hardening issue, one row each.

Starts ``python -m gtx_ray`` on the campus (its own local Ray, Parquet output, REST API and
IEEE 2030.5 server on free loopback ports, 15-minute readings at 2 simulated hours per second),
then, while it runs: cross-origin browser requests, a command to a frozen clock, SIGKILL of the
aggregator, the clock and the 2030.5 registry, hostile 2030.5 bodies, the server's certificate as
a client, bad command-line flags; finally SIGTERM. For every fault it reports what was expected,
what was observed, and the readings lost and duplicated in the simulated span the fault covered
(every (meter, interval) must be stored exactly once). Prints a table and writes
``benchmarks/results/fault_injection.md``.

    .venv/bin/python -m benchmarks.fault_injection [--keep DIR]

Only processes this script started are signalled (found in its child's process tree).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.common import table, write_summary

REPO = Path(__file__).resolve().parent.parent
METERS = 25
INTERVAL_S = 900
EVIL = "http://evil.example"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Campus:
    """The simulator as a user runs it, in a subprocess; its output collected line by line."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.api_port, self.sep_port = _free_port(), _free_port()
        self.data_dir, self.certs_dir = workdir / "data", workdir / "certs"
        argv = [
            sys.executable, "-m", "gtx_ray", "--address", "local", "--disable-influxdb",
            "--start", "2025-01-01", "--interval", str(INTERVAL_S), "--speed", "7200",
            "--data-dir", str(self.data_dir), "--certs-dir", str(self.certs_dir),
            "--api-port", str(self.api_port), "--ieee2030-5-port", str(self.sep_port),
            "--namespace", f"faults{os.getpid()}", "--status-every", "5",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip())

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def http(self, method: str, path: str, body: dict | None = None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()
        except OSError:
            return None, {}, b""

    def clock(self) -> dict:
        status, _, body = self.http("GET", "/api/simulation")
        return json.loads(body) if status == 200 else {}

    def wait_running(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the simulator exited:\n" + "\n".join(self.lines[-20:]))
            status, _, body = self.http("GET", "/api/ieee2030_5/status")
            clock = self.clock()
            devices = json.loads(body).get("registered_devices", 0) if status == 200 else 0
            if devices >= METERS and clock.get("intervals_done", 0) > 0:
                return
            time.sleep(1)
        raise RuntimeError("the campus did not start:\n" + "\n".join(self.lines[-20:]))

    def issued_until(self) -> int:
        return int(self.clock().get("next_start_s", 0))

    def wait_progress(self, intervals: int = 8, timeout_s: float = 120) -> bool:
        start = self.issued_until()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.issued_until() >= start + intervals * INTERVAL_S:
                return True
            time.sleep(0.5)
        return False

    def actor_pid(self, class_name: str) -> int | None:
        """The PID of a Ray worker running ``class_name`` under this simulator's process tree."""
        for pid in _descendants(self.process.pid):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if title.startswith(f"ray::{class_name}"):
                return pid
        return None


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (from /proc), children before grandchildren."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def readings_in(data_dir: Path) -> pa.Table:
    from gtx_ray.storage.parquet import read_readings

    table_ = read_readings(data_dir)
    return table_.select(["meter_id", "timestamp"])


def lost_and_duplicated(stored: pa.Table, start_s: int, end_s: int) -> tuple[int, int]:
    """Readings missing and stored more than once for every campus meter in [start_s, end_s)."""
    if end_s <= start_s:
        return 0, 0
    ts = pc.cast(stored.column("timestamp"), pa.int64())
    mask = pc.and_(pc.greater_equal(ts, start_s), pc.less(ts, end_s))
    span = stored.filter(mask)
    keys = pc.binary_join_element_wise(
        span.column("meter_id"),
        pc.cast(pc.cast(span.column("timestamp"), pa.int64()), pa.string()),
        "@",
    )
    unique = len(pc.unique(keys))
    expected = METERS * ((end_s - start_s) // INTERVAL_S)
    return max(0, expected - unique), span.num_rows - unique


def sep_request(
    campus: Campus,
    identity: str,
    method: str,
    path: str,
    body: bytes | None,
    content_type: str | None,
) -> tuple[int | str, bytes]:
    """One 2030.5 request over mutual TLS as ``identity`` (a meter id, or 'server')."""
    from gtx_ray.ieee2030_5.pki import CertsLayout, device_credentials
    from gtx_ray.ieee2030_5.tls import client_context

    layout = CertsLayout(campus.certs_dir)
    if identity == "server":
        context = client_context(
            layout.serca_cert, layout.server_cert, layout.server_key, check_hostname=False
        )
    else:
        creds = device_credentials(campus.certs_dir, identity)
        context = client_context(creds.ca, creds.cert_chain, creds.key, check_hostname=False)
    connection = http.client.HTTPSConnection(
        "127.0.0.1", campus.sep_port, context=context, timeout=15
    )
    headers = {"Accept": "application/sep+xml"}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (ssl.SSLError, OSError) as exc:
        return f"refused ({type(exc).__name__})", b""
    finally:
        connection.close()


Fault = Callable[[Campus], tuple[str, bool]]


def cross_origin_pause(campus: Campus) -> tuple[str, bool]:
    before = campus.clock().get("paused")
    status, _, _ = campus.http("POST", "/api/simulation", {"action": "pause"}, {"Origin": EVIL})
    after = campus.clock().get("paused")
    return f"{status}, paused {before}→{after}", status == 403 and after == before


def cross_origin_preflight(campus: Campus) -> tuple[str, bool]:
    status, headers, _ = campus.http(
        "OPTIONS", "/api/simulation", None,
        {"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )  # fmt: skip
    granted = headers.get("access-control-allow-methods") or headers.get(
        "Access-Control-Allow-Methods"
    )
    return f"{status}, allow-methods {granted!r}", not granted


def command_to_frozen_clock(campus: Campus) -> tuple[str, bool]:
    pid = campus.actor_pid("ClockActor")
    if pid is None:
        return "clock process not found", False
    os.kill(pid, signal.SIGSTOP)
    try:
        status, _, body = campus.http("POST", "/api/simulation", {"action": "pause"})
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(2)
    paused_later = campus.clock().get("paused")
    said = json.loads(body).get("error", "")[:30] if status != 200 else "applied"
    ok = (status == 503 and not paused_later) or (status == 200 and paused_later)
    if paused_later:
        campus.http("POST", "/api/simulation", {"action": "resume"})
    return f"{status} '{said}…', paused later: {paused_later}", ok


def sigkill(class_name: str) -> Fault:
    def fault(campus: Campus) -> tuple[str, bool]:
        pid = campus.actor_pid(class_name)
        if pid is None:
            return f"{class_name} process not found", False
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        new = None
        while time.monotonic() < deadline:
            new = campus.actor_pid(class_name)
            if new is not None and new != pid:
                break
            time.sleep(0.5)
        going = campus.wait_progress(8)
        return f"restarted: {new not in (None, pid)}, run goes on: {going}", going

    return fault


def registry_sigkill(campus: Campus) -> tuple[str, bool]:
    observed, ok = sigkill("RegistryActor")(campus)
    devices = None
    deadline = time.monotonic() + 60
    while devices != METERS and time.monotonic() < deadline:  # the view asks it again
        status, _, body = campus.http("GET", "/api/ieee2030_5/status")
        devices = json.loads(body).get("registered_devices") if status == 200 else None
        time.sleep(1)
    return f"{observed}, devices {devices}", ok and devices == METERS


def huge_integer(campus: Campus) -> tuple[str, bool]:
    body = (
        '<EndDevice xmlns="urn:ieee:std:2030.5:ns"><sFDI>' + "9" * 5000 + "</sFDI>"
        "<changedTime>0</changedTime></EndDevice>"
    ).encode()
    status, _ = sep_request(
        campus, "AMI_METER_UTCC_001", "POST", "/edev", body, "application/sep+xml"
    )
    alive, _ = sep_request(campus, "AMI_METER_UTCC_001", "GET", "/dcap", None, None)
    return f"{status}, then GET /dcap {alive}", status == 400 and alive == 200


def text_plain_body(campus: Campus) -> tuple[str, bool]:
    status, _ = sep_request(campus, "AMI_METER_UTCC_001", "POST", "/edev", b"<x/>", "text/plain")
    return str(status), status == 415


def server_cert_as_client(campus: Campus) -> tuple[str, bool]:
    status, _ = sep_request(campus, "server", "GET", "/dcap", None, None)
    return str(status), status != 200


BAD_FLAGS = [
    ["--start", "0001-01-01"],
    ["--duration", "99999y"],
    ["--namespace", ""],
    ["--data-dir", "/proc/forbidden"],
    ["--api-host", "999.1.1.1"],
    ["--address", "127.0.0.1:1"],
]


def bad_flags(_campus: Campus) -> tuple[str, bool]:
    good = 0
    for flags in BAD_FLAGS:
        done = subprocess.run(
            [sys.executable, "-m", "gtx_ray", *flags], cwd=REPO, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        if done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr:
            good += 1
    return f"{good}/{len(BAD_FLAGS)} one line, exit 2", good == len(BAD_FLAGS)


FAULTS: list[tuple[str, str, Fault, bool]] = [
    # (fault, expected, action, counts readings over its span)
    ("cross-origin POST pause", "403, clock unchanged", cross_origin_pause, False),
    ("cross-origin preflight", "no methods granted", cross_origin_preflight, False),
    ("command to a frozen clock", "applied, or 503 and never later", command_to_frozen_clock, True),
    ("SIGKILL aggregator", "restarted, exactly once", sigkill("AggregatorActor"), True),
    ("SIGKILL clock", "restarted, exactly once", sigkill("ClockActor"), True),
    ("SIGKILL 2030.5 registry", "restarted, devices kept", registry_sigkill, True),
    ("sFDI of 5,000 digits", "400, server keeps serving", huge_integer, False),
    ("text/plain 2030.5 body", "415", text_plain_body, False),
    ("server cert as client", "refused", server_cert_as_client, False),
    ("bad flags (6)", "one line, exit 2 each", bad_flags, False),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="gtx_faults_"))
    workdir.mkdir(parents=True, exist_ok=True)
    campus = Campus(workdir)
    rows: list[list[object]] = []
    spans: list[tuple[int, int, int]] = []  # (row, from, to)
    try:
        campus.wait_running()
        for name, expected, fault, counts in FAULTS:
            began = campus.issued_until()
            observed, ok = fault(campus)
            if counts:
                campus.wait_progress(4)
                spans.append((len(rows), began, campus.issued_until()))
            rows.append([name, expected, observed, "ok" if ok else "FAILED", "-", "-"])
            print(f"{name}: {observed}", flush=True)
        sent = time.monotonic()
        campus.process.send_signal(signal.SIGTERM)
        code = campus.process.wait(timeout=120)
        stop_s = time.monotonic() - sent
    finally:
        if campus.process.poll() is None:
            campus.process.kill()
    (workdir / "simulator.log").write_text("\n".join(campus.lines) + "\n", encoding="utf-8")
    stored = readings_in(campus.data_dir)
    for row, start, end in spans:
        lost, duplicated = lost_and_duplicated(stored, start, end)
        rows[row][4:6] = [lost, duplicated]
    ts = pc.cast(stored.column("timestamp"), pa.int64())
    first, last = pc.min(ts).as_py(), pc.max(ts).as_py() + INTERVAL_S
    lost, duplicated = lost_and_duplicated(stored, first, last)
    rows.append(
        ["SIGTERM (everything on)", "exit 0 within 10 s", f"exit {code} in {stop_s:.1f} s",
         "ok" if code == 0 and stop_s <= 10 else "FAILED", lost, duplicated]
    )  # fmt: skip
    headers = ["fault", "expected", "observed", "verdict", "lost", "duplicated"]
    text = table(headers, rows)
    print(text)
    write_summary(
        "fault_injection",
        "Fault injection against a running campus",
        "python -m benchmarks.fault_injection",
        "The campus (25 meters, 15-minute readings at 2 simulated hours per second, Parquet, REST "
        "API, IEEE 2030.5 server and clients) under each fault in turn; lost/duplicated count "
        "(meter, interval) pairs over the simulated span the fault covered, and over the whole "
        f"run ({stored.num_rows:,} readings) for SIGTERM.",
        text,
    )
    return 0 if all(r[3] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
