"""Start-up of the campus as a user runs it: command → REST API answering → first stored reading.

Runs ``python -m gtx_ray`` (its own local Ray, real time, 15 s readings, the default services:
REST API, IEEE 2030.5 server and clients, InfluxDB with its spool since none runs here) and
polls the REST API every 0.1 s. Phases, wall seconds from the command:

- ``ray``: the CLI has started its local Ray (its "Ray started locally" line);
- ``api``: the REST API answers at all (503 "starting" counts: it is up);
- ``asked``: the CLI has asked Ray for the aggregator, the meter actors and the clock;
- ``spawned``: Ray has started the last meter actor's worker process (Ray's ``raylet.out``);
- ``meters``: the last meter actor is ready (its creation task finished, Ray's worker logs);
- ``actors``: the REST API sees every actor (meter actors may still be starting);
- ``first``: the first interval is stored (the clock's ``first_stored_at`` on
  ``/api/simulation``: the readings may be stored before the REST API answers);
- ``registered``: all 25 meters are registered IEEE 2030.5 devices.

The first reading cannot come before its 15 s interval has ended on the wall clock (the run
starts at the start of the interval in progress when the command began, so 0–15 s of that wait
is the interval itself; the ``interval_end`` column says when it ended). The runs start at
chosen points of an interval (``PHASES_S``), the first 0.5 s into one: its interval ends 14.5 s
after the command, in the middle of the meter actors' start, the worst case. Until a meter actor is
ready the clock steps its meters itself (``actors.standin``). Ray's logs (the run's own
``RAY_TMPDIR``) also give each meter actor's start: process start → core worker up
(interpreter and ``import ray``) → creation task done (its imports and ``__init__``). When the
REST API first reports a stored interval the benchmark adds up the CPU seconds of every process
of the run by kind (the floor of a start on this machine).
A last table times the imports of one meter actor process (``python -X importtime``). Prints
the tables and writes ``benchmarks/results/startup.md``.

    .venv/bin/python -m benchmarks.startup [--runs 3] [--variant all|no2030] [--python PY ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from benchmarks.common import table, wait_until_idle, write_summary

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "everything on": [],
    "no 2030.5": ["--disable-ieee2030-5"],
}
CLI_LINES = {  # phase → a fragment of the CLI's log line that marks it
    "ray": "Ray started locally",
    "asked": "meter actors, interval",
}
PHASES = ["ray", "api", "asked", "spawned", "meters", "actors", "interval_end", "first"]
PHASES += ["registered"]
INTERVAL_S = 15  # the campus's reading interval
PHASES_S = (0.5, 5.5, 10.5)  # where in an interval run 1, 2, 3 ... begin: 14.5, 9.5, 4.5 s left


INTRO = """Wall seconds from `python -m gtx_ray` (own local Ray, real time, 15 s readings) until
the CLI has started Ray, the REST API answers, the CLI has asked for the meter actors, Ray has
spawned the last meter actor's process, the last meter actor is ready, the REST API sees every
actor, the first 15 s interval has ended on the wall clock, the first interval is stored (until
its actor is ready the clock steps a meter itself: `actors.standin`), and all 25 meters are
registered 2030.5 devices. `venv`: `dev` is the test venv (`scripts/test`; it has pandas, which
pyarrow imports in every meter actor), `runtime` what `scripts/run` installs (`--no-dev`);
`load`: the machine's load average when the run began (each run waits until the CPUs have
been ≥ 90 % idle for 2 s, but the 1-minute average remembers the previous run). Then
each meter actor's start-up (medians, from Ray's logs): its process start to its core worker
(interpreter, `import ray`), then its creation task (the simulator's imports, `__init__`); the
CPU seconds of every process of the run when the REST API first reports a stored interval, by
kind (their sum over 2 cores is the floor of a start); the imports of one meter actor process."""


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


def _watch_lines(process: subprocess.Popen, began: float, marks: dict) -> threading.Thread:
    """Mark each CLI_LINES phase when its line arrives on the CLI's stderr (s from ``began``)."""

    def read() -> None:
        for line in process.stderr:
            for phase, fragment in CLI_LINES.items():
                if fragment in line and marks.get(phase) is None:
                    marks[phase] = time.monotonic() - began

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def one_run(
    extra: list[str], python: str = sys.executable, phase_s: float = 0.5, timeout_s: float = 300.0
) -> dict:
    """Time one start-up with ``python`` (a venv's interpreter), begun ``phase_s`` into a 15 s
    interval; the process is stopped (SIGTERM) afterwards. Returns the phase marks, the meter
    actors' start-up steps and the CPU seconds by process kind."""
    work = Path(tempfile.mkdtemp(prefix="gtx_startup_"))
    api = _free_port()
    argv = [
        python, "-m", "gtx_ray", "--address", "local", "--data-dir", str(work / "data"),
        "--certs-dir", str(work / "certs"), "--api-port", str(api),
        "--ieee2030-5-port", str(_free_port()), "--namespace", f"startup{os.getpid()}", *extra,
    ]  # fmt: skip
    env = {**os.environ, "RAY_TMPDIR": str(work / "r")}  # Ray's logs of this run alone
    wait_until_idle()
    load = os.getloadavg()[0]
    time.sleep((phase_s - time.time() % INTERVAL_S) % INTERVAL_S)
    began = time.monotonic()
    wall0 = time.time()
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    marks: dict[str, float | None] = {"api": None, "actors": None, "first": None}
    marks["registered"] = None if "--disable-ieee2030-5" not in extra else float("nan")
    _watch_lines(process, began, marks)
    cpu: dict[str, list[float]] = {}
    base = f"http://127.0.0.1:{api}"
    try:
        while time.monotonic() - began < timeout_s and any(
            marks[k] is None for k in ("api", "actors", "first", "registered")
        ):
            now = time.monotonic() - began
            status, body = _get(base + "/api/simulation")
            if status is not None and marks["api"] is None:
                marks["api"] = now
            if status == 200 and marks["actors"] is None:
                marks["actors"] = now
            if status == 200 and body.get("intervals_done", 0) >= 1 and marks["first"] is None:
                marks["first"] = body["first_stored_at"] - wall0
                marks["interval_end"] = body["start_s"] + body["interval_s"] - wall0
                cpu = cpu_by_kind(process.pid)
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
    workers = ray_workers(work / "r", wall0)
    meters = [w for w in workers if w["actor"] == "MeterActor"]
    if meters:
        marks["spawned"] = max(w["spawned"] for w in meters)
        marks["meters"] = max((w["ready"] for w in meters if w["ready"]), default=None)
    return {"marks": marks, "meters": meters, "cpu": cpu, "load": load}


def _log_time(line: str) -> float | None:
    """The UTC epoch seconds of a Ray C++ log line (``[2026-12-05 02:39:23,553 I ...``)."""
    match = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
    if not match:
        return None
    moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    return moment.timestamp() + int(match.group(2)) / 1000


def ray_workers(ray_tmp: Path, wall0: float) -> list[dict]:
    """Each Ray worker process of the run from its logs, times in s from the command: the
    actor it hosts, when the raylet started it, when its core worker was up (interpreter and
    ``import ray`` done) and when its actor's creation task finished (imports, ``__init__``)."""
    logs = next(ray_tmp.glob("ray/session_*/logs"), None)
    if logs is None:
        return []
    spawned: dict[str, float] = {}
    for line in (logs / "raylet.out").read_text(errors="replace").splitlines():
        match = re.search(r"Started worker process with pid (\d+)", line)
        if match and _log_time(line) is not None:
            spawned[match.group(1)] = _log_time(line) - wall0
    workers = []
    for out in logs.glob("worker-*.out"):
        pid = out.stem.rsplit("-", 1)[-1]
        actor = re.search(r":actor_name:(\S+)", out.read_text(errors="replace"))
        core = next(logs.glob(f"python-core-worker-*_{pid}.log"), None)
        if pid not in spawned or actor is None or core is None:
            continue
        text = core.read_text(errors="replace").splitlines()
        finished = next((ln for ln in text if "Actor creation task finished" in ln), None)
        workers.append(
            {
                "actor": actor.group(1),
                "spawned": spawned[pid],
                "core": _log_time(text[0]) - wall0 if text and _log_time(text[0]) else None,
                "ready": _log_time(finished) - wall0 if finished else None,
            }
        )
    return workers


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc)."""
    children = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _kind(cmdline: str) -> str:
    """A process's kind: Ray actor processes by their ``ray::`` title, the rest by program."""
    if cmdline.startswith("ray::"):  # ray::MeterActor, ray::MeterActor.step, ray::ServeReplica:…
        return cmdline.split()[0][len("ray::") :].split(":")[0].split(".")[0]
    if "gtx_ray" in cmdline:
        return "driver (python -m gtx_ray)"
    if cmdline.startswith("ray-dashboard-") or "dashboard" in cmdline:
        return "Ray dashboard"
    program = Path(cmdline.split()[0]).name if cmdline else "?"
    if program.startswith("python"):  # Ray's monitor, log monitor, ...
        script = next((a for a in cmdline.split()[1:] if a.endswith(".py")), program)
        return "Ray " + Path(script).stem
    return "Ray " + program


def cpu_by_kind(root: int) -> dict[str, list[float]]:
    """CPU seconds (user + system) of every process below ``root``, by kind (a list each)."""
    ticks = os.sysconf("SC_CLK_TCK")
    by_kind: dict[str, list[float]] = collections.defaultdict(list)
    for pid in _descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        by_kind[_kind(cmdline.strip())].append((int(fields[11]) + int(fields[12])) / ticks)
    return dict(by_kind)


def meter_actor_imports(python: str = sys.executable) -> list[list[object]]:
    """The biggest top-level imports of a meter actor process (cumulative µs → ms)."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", "import ray, gtx_ray.actors.meter"],
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


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def meter_steps(name: str, run: int, result: dict) -> list[object]:
    """One row: the meter actors' start-up steps (medians, s) and CPU s per meter process."""
    meters = result["meters"]
    interpreter = _median([m["core"] - m["spawned"] for m in meters if m["core"]])
    creation = _median([m["ready"] - m["core"] for m in meters if m["ready"] and m["core"]])
    cpu = result["cpu"].get("MeterActor", [])
    return [
        name, run, len(meters), _fmt(interpreter), _fmt(creation),
        _fmt(statistics.mean(cpu) if cpu else None), _fmt(sum(cpu) if cpu else None),
    ]  # fmt: skip


def cpu_rows(results: list[dict]) -> list[list[object]]:
    """CPU seconds by process kind at the first stored reading, averaged over the runs."""
    totals: dict[str, list[float]] = collections.defaultdict(list)
    counts: dict[str, int] = {}
    for result in results:
        for kind, values in result["cpu"].items():
            totals[kind].append(sum(values))
            counts[kind] = len(values)
    rows = [[k, counts[k], statistics.mean(v)] for k, v in totals.items()]
    rows.sort(key=lambda r: -r[2])
    everything = sum(r[2] for r in rows)
    rows = [[k, n, f"{s:.1f}"] for k, n, s in rows]
    return [*rows, ["all", sum(counts.values()), f"{everything:.1f}"]]


def venv_label(python: str) -> str:
    """``dev`` when ``python``'s venv has pandas (the test group's: pyarrow then imports it in
    every meter actor, ~0.3 CPU s each), else ``runtime`` (what ``scripts/run`` installs)."""
    probe = "import importlib.util as u; print(u.find_spec('pandas') is not None)"
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    return "dev" if done.stdout.strip() == "True" else "runtime"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", choices=["all", "no2030"], default="all")
    parser.add_argument(
        "--python",
        action="append",
        help="the interpreter of a venv to run (repeatable; default this one), e.g. of a "
        "runtime-only venv like scripts/run's: UV_PROJECT_ENVIRONMENT=DIR uv sync --frozen "
        "--no-dev --compile-bytecode",
    )
    args = parser.parse_args()
    pythons = {venv_label(p): p for p in args.python or [sys.executable]}
    variants = VARIANTS if args.variant == "all" else {"no 2030.5": VARIANTS["no 2030.5"]}
    rows, steps, cpu = [], [], {}
    for venv, python in pythons.items():
        for name, extra in variants.items():
            for run in range(1, args.runs + 1):
                result = one_run(extra, python, PHASES_S[(run - 1) % len(PHASES_S)])
                marks = result["marks"]
                print(venv, name, run, {k: _fmt(marks.get(k)) for k in PHASES}, flush=True)
                load = f"{result['load']:.1f}"
                rows.append([venv, name, run, load, *(_fmt(marks.get(k)) for k in PHASES)])
                steps.append([venv, *meter_steps(name, run, result)])
                cpu.setdefault(f"{venv} venv, {name}", []).append(result)
    headers = ["venv", "services", "run", "load", "ray s", "api s", "asked s", "spawned s",
               "meters s", "actors s", "interval end s", "first stored s",
               "25 registered s"]  # fmt: skip
    phases = table(headers, rows)
    meter_table = table(
        ["venv", "services", "run", "meter actors", "interpreter+ray s", "imports+init s",
         "CPU s each", "CPU s all"],
        steps,
    )  # fmt: skip
    cpu_tables = [
        f"{name}: CPU s at the first stored reading (mean of {len(results)} runs)\n"
        + table(["process kind", "processes", "CPU s"], cpu_rows(results))
        for name, results in cpu.items()
    ]
    imports = [
        f"{venv} venv\n"
        + table(["module (meter actor)", "import ms, cumulative"], meter_actor_imports(python))
        for venv, python in pythons.items()
    ]
    for block in (phases, meter_table, *cpu_tables, *imports):
        print(block)
    write_summary(
        "startup",
        "Campus start-up",
        "python -m benchmarks.startup",
        INTRO,
        phases,
        meter_table,
        *cpu_tables,
        *imports,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
