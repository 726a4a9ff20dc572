"""REST API throughput and latency on Ray Serve, next to a plain aiohttp server returning the
same JSON bytes (the ceiling on this machine), measured with wrk at 1, 32 and 128 connections.

The API's Serve replica serves HTTP itself (``gtx_ray.serve.api``); plain ``GET``s of the hot
paths are answered from pre-rendered bytes, and ``/api/readings?offset=0`` shows the same answer
through FastAPI's routing and validation (the path every other endpoint takes).

    apt-get install wrk   # once
    .venv/bin/python -m benchmarks.rest_api [--seconds 10] [--out benchmarks/results]

Prints a table and writes ``rest_api.md`` (the table) and ``rest_api.png`` (requests/s per path and
client count, Serve next to aiohttp) in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine, table, write_summary

PATHS = ("/api/readings", "/api/campus/summary", "/api/readings?offset=0")
CONNECTIONS = (1, 32, 128)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, connections: int, seconds: float) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from wrk --latency."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds:.0f}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  warning: {errors.group(1)} non-2xx responses from {url}", file=sys.stderr)
    return rps, ms("50"), ms("99")


def plain_server(bodies: dict[str, bytes], port: int) -> None:
    """A minimal aiohttp server returning the same bytes, in a background thread."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bodies[request.path], content_type="application/json")

    async def serve() -> None:
        app = web.Application()
        for path in bodies:
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()


def plot(rates: list[tuple[str, int, float, float]], path: Path) -> None:
    """Grouped bars: requests/s per (path, clients), Serve and aiohttp side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [
        f"{p.removeprefix('/api/')}\n{c} client{'s' if c > 1 else ''}" for p, c, _, _ in rates
    ]
    x = np.arange(len(rates))
    fig, ax = plt.subplots(figsize=(11, 4.2))
    ax.bar(x - 0.2, [r[2] for r in rates], 0.4, label="Ray Serve (gtx_ray REST API)")
    ax.bar(x + 0.2, [r[3] for r in rates], 0.4, label="plain aiohttp, same bytes", color="#bbb")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("requests per second")
    ax.set_title(f"REST API on loopback, wrk — {os.cpu_count()} cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


INTRO = """\
The REST API (`gtx_ray.serve.api`, one Ray Serve replica serving HTTP itself) of a running campus
(25 meters, 15-minute interval, speed 900, Parquet, no InfluxDB) measured with `wrk --latency` on
loopback, {seconds:g} s per cell, at 1, 32 and 128 connections (wrk with up to 2 threads, on the
same 2 cores as the server and the campus). Beside each cell, a minimal aiohttp server in the
benchmark process returns the same JSON bytes: the ceiling of a Python HTTP server on this machine.
`/api/readings` and `/api/campus/summary` are answered from pre-rendered bytes;
`/api/readings?offset=0` is the same answer through FastAPI's routing and validation, the path every
other endpoint takes. req/s = requests per second; p50/p99 ms = median and 99th-percentile latency
in milliseconds; Serve/aiohttp = the ratio of the two req/s (1.00 = as fast as the ceiling). Load
average {load:.1f} at the start: other work on the machine lowers every figure.

![requests per second, Serve and aiohttp](rest_api.png)"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk run per cell, s")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for .md and .png")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/rest_api.py needs wrk: apt-get install wrk")
    load_before = os.getloadavg()[0]
    import ray

    from gtx_ray.runtime import connect_ray, start_simulation
    from gtx_ray.serve.api import start_rest_api, stop_rest_api
    from gtx_ray.settings import Settings

    settings = Settings(
        interval_s=900,
        influxdb_enabled=False,
        speed=900.0,
        data_dir=Path(tempfile.mkdtemp()),
        address="local",
        namespace="gtx_bench_api",
    )
    connect_ray(settings)
    simulation = start_simulation(settings)
    api_port, plain_port = free_port(), free_port()
    app_name = start_rest_api(settings, simulation.layout, "127.0.0.1", api_port, None)
    deadline = time.monotonic() + 300
    while True:  # wait for the first readings
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/campus/summary") as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit("the simulation produced no readings in 300 s")
        time.sleep(1)
    bodies = {
        p.split("?")[0]: urllib.request.urlopen(f"http://127.0.0.1:{api_port}{p}").read()
        for p in PATHS
    }
    plain_server(bodies, plain_port)
    time.sleep(0.5)
    rows, rates = [], []
    try:
        for path in PATHS:
            for connections in CONNECTIONS:
                serve_rps, serve_p50, serve_p99 = wrk(
                    f"http://127.0.0.1:{api_port}{path}", connections, args.seconds
                )
                plain_rps, _, plain_p99 = wrk(
                    f"http://127.0.0.1:{plain_port}{path}", connections, args.seconds
                )
                rates.append((path, connections, serve_rps, plain_rps))
                rows.append(
                    [
                        path,
                        connections,
                        f"{serve_rps:,.0f}",
                        f"{serve_p50:.1f}",
                        f"{serve_p99:.1f}",
                        f"{plain_rps:,.0f}",
                        f"{plain_p99:.1f}",
                        f"{serve_rps / plain_rps:.2f}",
                    ]
                )
                print(
                    f"  {path} c={connections}: serve {serve_rps:,.0f}/s, plain {plain_rps:,.0f}/s",
                    file=sys.stderr,
                )
    finally:
        stop_rest_api(app_name)
        simulation.stop()
        simulation.finish()
        ray.shutdown()
    headers = [
        "path",
        "clients",
        "Serve req/s",
        "p50 ms",
        "p99 ms",
        "aiohttp req/s",
        "aiohttp p99 ms",
        "Serve/aiohttp",
    ]
    print(f"machine: {machine()}; wrk, {args.seconds:.0f} s per cell, campus (25 meters)")
    printed = table(headers, rows)
    print(printed)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rates, args.out / "rest_api.png")
    write_summary(
        "rest_api",
        "REST API throughput: Ray Serve next to plain aiohttp",
        f"python -m benchmarks.rest_api --seconds {args.seconds:g}",
        INTRO.format(seconds=args.seconds, load=load_before),
        printed,
        directory=args.out,
    )
    if args.json:
        figures = {"machine": machine(), "seconds_per_cell": args.seconds}
        figures["rows"] = [dict(zip(headers, row, strict=True)) for row in rows]
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
