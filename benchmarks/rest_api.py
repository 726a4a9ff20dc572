"""REST API throughput and latency on Ray Serve, next to a plain aiohttp server returning the
same JSON bytes (the ceiling on this machine), measured with wrk at 1, 32 and 128 connections.

The API's Serve replica serves HTTP itself (``gtx_ray.serve.api``); plain ``GET``s of the hot
paths are answered from pre-rendered bytes, and ``/api/readings?offset=0`` shows the same answer
through FastAPI's routing and validation (the path every other endpoint takes).

    apt-get install wrk   # once
    .venv/bin/python -m benchmarks.rest_api [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from benchmarks.common import machine, table

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/rest_api.py needs wrk: apt-get install wrk")
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
    rows = []
    try:
        for path in PATHS:
            for connections in CONNECTIONS:
                serve_rps, serve_p50, serve_p99 = wrk(
                    f"http://127.0.0.1:{api_port}{path}", connections, args.seconds
                )
                plain_rps, _, plain_p99 = wrk(
                    f"http://127.0.0.1:{plain_port}{path}", connections, args.seconds
                )
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
    print(table(headers, rows))
    if args.json:
        figures = {"machine": machine(), "seconds_per_cell": args.seconds}
        figures["rows"] = [dict(zip(headers, row, strict=True)) for row in rows]
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
