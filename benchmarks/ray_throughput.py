"""Simulator on Ray: campus start-up time and as-fast-as-possible throughput by fleet size and
actor packing (Parquet output, the default sink when no database runs).

    .venv/bin/python -m benchmarks.ray_throughput [--rows 4000000] [--plot FILE.png]

Start-up: a fresh `python -m gtx_ray --address local` (its own local Ray) on the campus, real time
with a 1 s interval, timed from the command to the first stored reading. Throughput: rows stored per
wall second while the clock runs (actor start-up excluded), speed max, 15-minute intervals.

Prints the tables and writes the plot, its figures (``.json`` beside it) and ``ray_throughput.md``
(the tables, linking the plot) in the plot's directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.common import machine, table, write_summary

REPO = Path(__file__).resolve().parent.parent
CONFIGS = [  # (meters, meters per actor; None = campus, one per actor)
    (25, None),
    (1_000, 1_000),
    (1_000, 250),
    (10_000, 10_000),
    (10_000, 5_000),
    (10_000, 2_500),
    (100_000, 50_000),
    (100_000, 25_000),
]


def startup_seconds(timeout_s: float = 300.0) -> tuple[float, float]:
    """(seconds to 'started' log line, seconds to first stored reading) for a fresh campus run."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        began = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gtx_ray",
                "--interval",
                "1",
                "--status-every",
                "1",
                "--data-dir",
                tmp,
                "--disable-influxdb",
                "--disable-ieee2030-5",
                "--namespace",
                "gtx_bench_startup",
                "--address",
                "local",
            ],
            cwd=REPO,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        started = first = None
        try:
            for line in process.stderr:
                now = time.monotonic() - began
                if started is None and "started 25 meters" in line:
                    started = now
                match = re.search(r"stored ([\d,]+) rows", line)
                if match and int(match.group(1).replace(",", "")) > 0:
                    first = now
                    break
                if now > timeout_s:
                    break
        finally:
            process.terminate()
            process.wait(timeout=120)
        return started or float("nan"), first or float("nan")


def throughput(rows_target: int) -> list[dict]:
    import ray

    from gtx_ray.runtime import connect_ray, start_simulation
    from gtx_ray.settings import Settings

    base = Settings(
        start_s=1_735_664_400,
        interval_s=900,
        speed=None,
        namespace="gtx_bench",
        address="local",  # its own Ray, never another run's cluster on this host
        influxdb_enabled=False,
        ieee2030_5_enabled=False,
    )
    connect_ray(base)
    results = []
    try:
        for meters, per_actor in CONFIGS:
            intervals = max(96, rows_target // meters)
            with tempfile.TemporaryDirectory() as tmp:
                settings = replace(
                    base,
                    meters=None if per_actor is None else meters,
                    meters_per_actor=per_actor,
                    duration_s=intervals * 900,
                    data_dir=Path(tmp),
                )
                simulation = start_simulation(settings)
                while not simulation.wait(timeout_s=1.0):
                    pass
                final = simulation.finish()
                elapsed = final["clock"]["wall_elapsed_s"]
                rows = final["storage"]["rows_stored"]
                results.append(
                    {
                        "meters": meters,
                        "actors": len(simulation.meter_actors),
                        "rows": rows,
                        "seconds": elapsed,
                        "rows_per_s": rows / elapsed,
                    }
                )
                print(
                    f"  {meters} meters / {len(simulation.meter_actors)} actors: "
                    f"{rows / elapsed:,.0f} rows/s",
                    file=sys.stderr,
                )
    finally:
        ray.shutdown()
    return results


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{r['meters']:,}\n{r['actors']} actor{'s' if r['actors'] > 1 else ''}" for r in results
    ]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(labels, [r["rows_per_s"] / 1e6 for r in results], color="#3b7dd8")
    ax.set_ylabel("readings stored per second (millions)")
    ax.set_title(f"gtx_ray as fast as possible, Parquet output — {os.cpu_count()} cores")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=4_000_000, help="readings per fleet run")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks/results/ray_throughput.png")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    load_before = os.getloadavg()[0]
    blocks = []
    if not args.skip_startup:
        started, first = startup_seconds()
        blocks.append(
            table(
                ["campus start-up", "seconds"],
                [
                    ["command → 25 actors requested", f"{started:.1f}"],
                    ["command → first reading stored", f"{first:.1f}"],
                ],
            )
        )
        print(blocks[-1])
    results = throughput(args.rows)
    blocks.append(
        table(
            ["meters", "actors", "readings", "seconds", "readings/s"],
            [
                [
                    r["meters"],
                    r["actors"],
                    r["rows"],
                    f"{r['seconds']:.1f}",
                    f"{r['rows_per_s']:,.0f}",
                ]
                for r in results
            ],
        )
    )
    print(blocks[-1])
    plot(results, args.plot)
    (args.plot.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    print(f"plot: {args.plot}")
    command = "python -m benchmarks.ray_throughput"
    if args.rows != 4_000_000:
        command += f" --rows {args.rows}"
    if args.skip_startup:
        command += " --skip-startup"
    write_summary(
        args.plot.stem,
        "Simulator on Ray: campus start-up and fleet throughput",
        command,
        INTRO.format(rows=args.rows, load=load_before, png=args.plot.name),
        *blocks,
        directory=args.plot.parent,
    )


INTRO = """\
Start-up: a fresh `python -m gtx_ray` on the campus (25 meters, one actor each; real time, 1 s
interval, Parquet, no InfluxDB, no 2030.5 server; its own local Ray), timed in seconds from the
command to its log line that the 25 meter actors are requested and to the first reading stored.
Throughput: one local Ray in the benchmark process; for each fleet size and packing (meters per
actor) a bounded run at maximum speed, 15-minute intervals, about {rows:,} readings (at least 96
intervals) written to Parquet; readings/s = readings stored per wall second while the clock runs
(actor start-up and shutdown excluded). Simulation, Parquet writing and Ray share the same cores,
so more actors than cores adds scheduling without adding compute. Load average {load:.1f} at the
start (the machine is shared: other work lowers the figures).

![readings stored per second by fleet size and actors]({png})"""


if __name__ == "__main__":
    main()
