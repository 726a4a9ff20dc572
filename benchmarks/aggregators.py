"""Several aggregators: storage throughput of one generated fleet with 1, 2 and 4 aggregators.

    .venv/bin/python -m benchmarks.aggregators [--meters 100000] [--days 3] [--repeat 2]

Each run starts its own local Ray (never a cluster found on the host), runs the fleet as fast as
possible into Parquet (a temp dir), and reports readings stored per wall second between the first
and the last stored window (actor start-up excluded) and the CPU seconds of the aggregators. The
best of ``--repeat`` runs is kept. Writes ``benchmarks/results/aggregators.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import ray

from benchmarks.common import process_cpu_s, table, write_summary
from gtx_ray.runtime import start_simulation
from gtx_ray.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def one_run(meters: int, days: int, aggregators: int, per_actor: int) -> dict:
    """One fleet run with its own Ray: rows/s while storing, aggregator CPU s."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory() as tmp:
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            namespace="bench_aggregators",
            log_to_driver=False,
            _temp_dir=os.path.join(tmp, "ray"),
        )
        try:
            settings = Settings(
                config_file=REPO / "config" / "utcc_campus_config.json",
                influxdb_enabled=False,
                start_s=1_735_664_400,
                interval_s=900,
                speed=None,
                duration_s=days * 86_400,
                data_dir=Path(tmp) / "data",
                namespace="bench_aggregators",
                meters=meters,
                meters_per_actor=per_actor,
                aggregators=aggregators,
            )
            simulation = start_simulation(settings)
            pids = ray.get([a.pid.remote() for a in simulation.aggregators])
            cpu_before = sum(process_cpu_s(pid) for pid in pids)
            first = None
            while not simulation.wait(timeout_s=0.05):
                status = simulation.status(timeout_s=5)
                if first is None and status and status["storage"]["rows_stored"] > 0:
                    first = (time.monotonic(), status["storage"]["rows_stored"])
            ended = time.monotonic()
            cpu = sum(process_cpu_s(pid) for pid in pids) - cpu_before
            final = simulation.finish()
        finally:
            ray.shutdown()
    rows = final["storage"]["rows_stored"]
    if first is None:
        first = (ended, 0)
    span = max(ended - first[0], 1e-3)
    return {"rows": rows, "rows_per_s": (rows - first[1]) / span, "aggregator_cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--counts", default="1,2,4")
    args = parser.parse_args()
    per_actor = max(1, args.meters // 8)  # 8 meter groups: every count below divides them
    load_before = os.getloadavg()
    rows = []
    for count in [int(c) for c in args.counts.split(",")]:
        runs = [one_run(args.meters, args.days, count, per_actor) for _ in range(args.repeat)]
        best = max(runs, key=lambda r: r["rows_per_s"])
        rows.append(
            [
                count,
                best["rows"],
                int(best["rows_per_s"]),
                f"{best['aggregator_cpu_s']:.1f}",
                ", ".join(f"{r['rows_per_s']:,.0f}" for r in runs),
            ]
        )
        print(table(["aggregators", "readings", "readings/s", "agg CPU s", "runs"], rows))
    block = table(["aggregators", "readings", "readings/s", "agg CPU s", "runs (readings/s)"], rows)
    print(block)
    load_after = os.getloadavg()
    intro = (
        f"{args.meters:,} generated meters in 8 groups, {args.days} days of 15-minute readings, "
        "speed max, Parquet into a temp dir, each run on its own local Ray (the CPUs of this "
        "machine). `readings/s`: stored between the first and the last stored window (best of "
        f"{args.repeat}); `agg CPU s`: the aggregators' CPU seconds over the run. Load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after."
    )
    write_summary(
        "aggregators",
        "Several aggregators: storage throughput",
        f"python -m benchmarks.aggregators --meters {args.meters} --days {args.days}",
        intro,
        block,
    )


if __name__ == "__main__":
    main()
