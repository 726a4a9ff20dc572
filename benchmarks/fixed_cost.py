"""The fixed cost of a bounded run: wall time of ``python -m gtx_ray`` outside the simulation.

Runs a bounded generated-fleet simulation as a user would (its own local Ray, REST API on,
Parquet output, no InfluxDB, no 2030.5 server), ``--runs`` times, and splits its wall time,
read from when each log line arrives on the pipe:

- ``start``: command → the "simulating …" line (Ray, Serve, the REST API, the meter actors);
- ``simulation``: "simulating …" → "done: … readings stored" (the clock's run, every reading
  stored);
- ``stop``: "done" → the process has exited (Ray and Serve shut down).

Prints a table and writes ``benchmarks/results/fixed_cost.md``.

    .venv/bin/python -m benchmarks.fixed_cost [--meters 10000] [--duration 1d] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import table, wait_until_idle, write_summary

REPO = Path(__file__).resolve().parent.parent


def one_run(meters: int, duration: str, python: str) -> dict[str, float]:
    """Wall seconds of each phase of one bounded run (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="gtx_fixed_cost_") as tmp:
        command = [
            python,
            "-m",
            "gtx_ray",
            "--meters",
            str(meters),
            "--duration",
            duration,
            "--speed",
            "max",
            "--interval",
            "900",
            "--start",
            "2025-04-09",
            "--disable-influxdb",
            "--disable-ieee2030-5",
            "--address",
            "local",
            "--data-dir",
            str(Path(tmp) / "data"),
        ]
        began = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        simulating = done = None
        assert process.stdout is not None
        for line in process.stdout:
            if simulating is None and " simulating " in line:
                simulating = time.monotonic()
            elif done is None and " done: " in line and "readings stored" in line:
                done = time.monotonic()
        code = process.wait(timeout=600)
        ended = time.monotonic()
    if code != 0 or simulating is None or done is None:
        raise RuntimeError(f"the run failed (exit {code}): {' '.join(command)}")
    return {
        "start_s": simulating - began,
        "simulation_s": done - simulating,
        "stop_s": ended - done,
        "total_s": ended - began,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--duration", default="1d")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.runs <= 20:
        parser.error("--runs must be 1..20")
    rows = []
    for run in range(1, args.runs + 1):
        wait_until_idle()
        load = os.getloadavg()[0]
        r = one_run(args.meters, args.duration, sys.executable)
        fixed = r["start_s"] + r["stop_s"]
        rows.append(
            [
                run,
                f"{load:.1f}",
                f"{r['start_s']:.1f}",
                f"{r['simulation_s']:.1f}",
                f"{r['stop_s']:.1f}",
                f"{fixed:.1f}",
                f"{r['total_s']:.1f}",
            ]
        )
        print(rows[-1], flush=True)
    printed = table(
        ["run", "load", "start s", "simulation s", "stop s", "start + stop s", "total s"], rows
    )
    print(printed)
    command = (
        f"python -m benchmarks.fixed_cost --meters {args.meters} --duration {args.duration} "
        f"--runs {args.runs}"
    )
    write_summary(
        "fixed_cost",
        "Fixed cost of a bounded run",
        command,
        f"`python -m gtx_ray --meters {args.meters} --duration {args.duration} --speed max` "
        "(its own local Ray, REST API on, Parquet output, InfluxDB and the 2030.5 server off), "
        "wall seconds split by when its log lines arrive: start (command → simulating), "
        "simulation (→ every reading stored), stop (→ the process has exited). `load`: the "
        "load average when the run began (each run first waits until the CPUs have been ≥ 90 % "
        "idle for 2 s). The target is start + stop ≤ 10 s.",
        printed,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
