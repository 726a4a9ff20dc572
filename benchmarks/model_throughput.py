"""Simulation core throughput: readings per second on one core, for fleets of 25 to 100,000
meters, stepping one interval or one day (96 × 15 min) per call. Includes building the Arrow batch.

    .venv/bin/python -m benchmarks.model_throughput [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.common import machine, table, write_summary
from gtx_ray.fleet import MeterArrays, generate_fleet, load_campus
from gtx_ray.model.meters import MeterModel
from gtx_ray.settings import DEFAULT_CONFIG

START = 1_735_664_400  # 2025-01-01 00:00 Bangkok


def measure(model: MeterModel, intervals: int, seconds: float) -> float:
    """Readings per second stepping ``intervals`` per call, over at least ``seconds``."""
    state = model.initial_state(START)
    model.step(state, intervals)  # warm-up
    calls, began = 0, time.perf_counter()
    while True:
        result = model.step(state, intervals)
        state = result.state
        calls += 1
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            return calls * intervals * len(model) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement, s")
    parser.add_argument("--sizes", default="25,1000,10000,100000")
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    campus = load_campus(DEFAULT_CONFIG)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        meters = (
            MeterArrays.from_specs(campus.meters)
            if size == 25
            else generate_fleet(campus, size, seed=1)
        )
        model = MeterModel(meters, campus, seed=1, interval_s=900)
        one = measure(model, 1, args.seconds)
        day = measure(model, 96, args.seconds)
        rows.append([size, f"{one / 1e6:.2f} M/s", f"{day / 1e6:.2f} M/s"])
    print(f"machine: {machine()}; pinned to one core")
    printed = table(["meters", "1-interval windows", "1-day windows (96)"], rows)
    print(printed)
    write_summary(
        "model_throughput",
        "Simulation core throughput",
        "python -m benchmarks.model_throughput",
        "Readings per second on one core (the process pinned to it), building the Arrow batch "
        "included, stepping one interval or one day (96 × 15 min) per call.",
        printed,
    )


if __name__ == "__main__":
    main()
