"""Start-up of the campus as a user runs it: command → REST API answering → first stored reading.

Runs ``python -m gtx_ray`` (its own local Ray, real time, 15 s readings, the default services:
REST API, IEEE 2030.5 server and clients, InfluxDB with its spool since none runs here) and
polls the REST API every 0.1 s. Phases, wall seconds from the command:

- ``api``: the REST API answers at all (503 "starting" counts: it is up);
- ``actors``: the clock exists (every meter actor has been created);
- ``first``: the first interval is stored (``intervals_done`` ≥ 1 on ``/api/simulation``);
- ``registered``: all 25 meters are registered IEEE 2030.5 devices.

The first reading cannot come before its 15 s interval has ended on the wall clock (the run
starts at the current interval's start, so 0–15 s of that wait is the interval itself; the
``interval_end`` column says when it ended). A second table times the imports of one meter
actor process (``python -X importtime``), the per-actor cost paid 25 times. Prints both and
writes ``benchmarks/results/startup.md``.

    .venv/bin/python -m benchmarks.startup [--runs 3] [--variant all|no2030]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchmarks.common import table, write_summary

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "everything on": [],
    "no 2030.5": ["--disable-ieee2030-5"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int | None, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}
    except (OSError, ValueError):
        return None, {}


def one_run(extra: list[str], timeout_s: float = 300.0) -> dict[str, float | None]:
    """Time one start-up; the process is stopped (SIGTERM) afterwards."""
    work = Path(tempfile.mkdtemp(prefix="gtx_startup_"))
    api = _free_port()
    argv = [
        sys.executable, "-m", "gtx_ray", "--address", "local", "--data-dir", str(work / "data"),
        "--certs-dir", str(work / "certs"), "--api-port", str(api),
        "--ieee2030-5-port", str(_free_port()), "--namespace", f"startup{os.getpid()}", *extra,
    ]  # fmt: skip
    began = time.monotonic()
    wall0 = time.time()
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marks: dict[str, float | None] = {"api": None, "actors": None, "first": None}
    marks["registered"] = None if "--disable-ieee2030-5" not in extra else float("nan")
    base = f"http://127.0.0.1:{api}"
    try:
        while time.monotonic() - began < timeout_s and any(v is None for v in marks.values()):
            now = time.monotonic() - began
            status, body = _get(base + "/api/simulation")
            if status is not None and marks["api"] is None:
                marks["api"] = now
            if status == 200 and marks["actors"] is None:
                marks["actors"] = now
            if status == 200 and body.get("intervals_done", 0) >= 1 and marks["first"] is None:
                marks["first"] = now
                start_s = body["start_s"]
                marks["interval_end"] = start_s + body["interval_s"] - wall0
            if marks["registered"] is None and marks["api"] is not None:
                status, body = _get(base + "/api/ieee2030_5/status")
                if status == 200 and body.get("registered_devices", 0) >= 25:
                    marks["registered"] = time.monotonic() - began
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return marks


def meter_actor_imports() -> list[list[object]]:
    """The biggest top-level imports of a meter actor process (cumulative µs → ms)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import ray, gtx_ray.actors.meter"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if cumulative.isdigit() and not name.startswith(" ") and "." not in name.strip():
            rows.append([name.strip(), int(cumulative) / 1000])
    rows.sort(key=lambda r: -r[1])
    return [[name, f"{ms:.0f}"] for name, ms in rows[:10]]


def _fmt(value: float | None) -> str:
    if value is None:
        return "timeout"
    if value != value:  # NaN: not applicable
        return "-"
    return f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", choices=["all", "no2030"], default="all")
    args = parser.parse_args()
    variants = VARIANTS if args.variant == "all" else {"no 2030.5": VARIANTS["no 2030.5"]}
    rows = []
    for name, extra in variants.items():
        for run in range(args.runs):
            marks = one_run(extra)
            print(name, run + 1, {k: _fmt(v) for k, v in marks.items()}, flush=True)
            rows.append(
                [name, run + 1, *(_fmt(marks.get(k)) for k in ("api", "actors", "interval_end",
                                                              "first", "registered"))]
            )  # fmt: skip
    headers = ["services", "run", "api s", "actors s", "interval end s", "first stored s",
               "25 registered s"]  # fmt: skip
    phases = table(headers, rows)
    imports = table(["module (meter actor)", "import ms, cumulative"], meter_actor_imports())
    print(phases)
    print(imports)
    write_summary(
        "startup",
        "Campus start-up",
        "python -m benchmarks.startup",
        "Wall seconds from `python -m gtx_ray` (own local Ray, real time, 15 s readings) until the "
        "REST API answers, the meter actors exist, the first 15 s interval has ended on the wall "
        "clock, the first interval is stored, and all 25 meters are registered 2030.5 devices; "
        "then the imports of one meter actor process (paid by each of the 25), cumulative ms.",
        phases,
        imports,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
