"""Benchmark: how many meters can mirror their readings to IEEE 2030.5 in real time here.

Real time means a 15-second interval and every meter posting every interval: the server's
postRate is set to the interval, so N meters need N / 15 reading POSTs per second (each carries
all six quantities of one interval). For each fleet size N (ascending, stopping after the first
size that does not keep up):

1. generated meters (``generate_fleet``) with their own certificates (``pki.init_certs``);
2. the server: ``local`` = the aiohttp TLS server with an in-process registry in a child process,
   or ``ray`` = the real deployment (front actor + registry actor, batched calls);
3. ``--actors`` client processes, each one ``MeterClients`` (one event loop thread, one shared
   connector, per-meter TLS), as the meter actors run them; they register, then every 15 s of
   wall time step their meters' model by one interval and ``submit`` the batch;
4. after ``--warmup`` intervals, ``--intervals`` intervals are measured: readings and POSTs
   accepted by the server, failures, drops, backlog left, CPU seconds of the clients (getrusage
   of each client process: model + submit + HTTPS) and of the server (from /proc).

A size keeps up when, over the measured window, the POSTs achieved are ≥ 95 % of those needed,
nothing failed or was dropped and the backlog at the end is at most two intervals per meter.
Loopback only; every size is bounded in time and the whole run by ``--max-seconds``.

    .venv/bin/python benchmarks/ieee2030_5_clients.py [--backend local|ray] [--sizes 250,500]

Prints a table and writes ``ieee2030_5_clients.md`` (``ieee2030_5_clients_ray.md`` for the ray
backend) with a plot of POSTs/s needed and achieved and CPU per fleet size (``.png``, same name) in
``--out``; the raw figures go to ``benchmarks/results/ieee2030_5_clients.json`` (not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import (  # noqa: E402
    CLK_TCK,
    RESULTS_DIR,
    machine,
    process_cpu_s,
    table,
    write_summary,
)

HOST = "127.0.0.1"
SEED = 7
CAMPUS_CONFIG = REPO / "config" / "utcc_campus_config.json"
RESULTS = REPO / "benchmarks" / "results" / "ieee2030_5_clients.json"


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# --- server (child process for "local") ------------------------------------------------------


def _serve_local(certs_dir: str, interval_s: int, port_queue, stop_event) -> None:
    from gtx_ray.ieee2030_5.server.backend import LocalBackend
    from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config, build_registry
    from gtx_ray.ieee2030_5.server.tls_server import Ieee2030_5Server

    async def main() -> None:
        config = Ieee2030_5Config(
            certs_dir=Path(certs_dir),
            host=HOST,
            port=0,
            post_rate_s=interval_s,
            history_per_mirror=16,
        )
        registry = build_registry(config, int(time.time()))
        server = Ieee2030_5Server(config, LocalBackend(registry))
        await server.start()
        port_queue.put(server.port)
        while not stop_event.is_set():
            await asyncio.sleep(0.2)
        port_queue.put(registry.counts())
        await server.stop()

    asyncio.run(main())


# --- one client process ("meter actor") ------------------------------------------------------


def _client_proc(
    certs_dir: str, n_total: int, lo: int, hi: int, url: str, interval_s: int, conn
) -> None:
    """Registers meters lo..hi-1 of the fleet, then follows the schedule the parent sends."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from gtx_ray.fleet import generate_fleet, load_campus
    from gtx_ray.ieee2030_5.client.fleet import MeterClients
    from gtx_ray.ieee2030_5.client.settings import ClientSettings
    from gtx_ray.model.meters import MeterModel

    campus = load_campus(CAMPUS_CONFIG)
    meters = generate_fleet(campus, n_total, SEED).take(slice(lo, hi))
    model = MeterModel(meters, campus, SEED, interval_s)
    clients = MeterClients(
        certs_dir,
        [str(m) for m in meters.meter_id],
        url,
        interval_s=interval_s,
        queue_limit=64,
        settings=ClientSettings(backoff_base_s=0.5, backoff_cap_s=5.0),
        max_concurrent_discoveries=32,
    )
    model.step(model.initial_state(int(time.time())), 1)  # warm: the first step loads caches
    started = time.monotonic()
    clients.start()
    registered = clients.wait_registered(timeout_s=300)
    conn.send(("registered", registered, round(time.monotonic() - started, 1)))
    t0, ticks, measure_from, measure_to = conn.recv()
    state = model.initial_state(t0)
    snapshots = {}
    for k in range(1, ticks + 1):
        tick_at = t0 + k * interval_s  # the end of interval k-1: its reading is due
        if k in (measure_from, measure_to):
            _sleep_until(tick_at - 0.01)
            snapshots[k] = _snapshot(clients)
        _sleep_until(tick_at)
        window = model.step(state, 1)
        state = window.state
        clients.submit(window.batch)
    final = clients.stop(timeout_s=10)
    conn.send(("done", snapshots, _totals(final)))


def _sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        time.sleep(delay)


def _snapshot(clients) -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": time.time(), "cpu_s": usage.ru_utime + usage.ru_stime, **clients.summary()}


def _totals(status: list[dict]) -> dict:
    keys = ("posts_ok", "posts_failed", "readings_posted", "readings_dropped", "readings_queued")
    return {k: sum(s[k] for s in status) for k in keys}


# --- one fleet size --------------------------------------------------------------------------


def run_size(args, certs_dir: Path, n: int, url: str, server_pids: list[int]) -> dict:
    ctx = mp.get_context("spawn")
    actors = min(args.actors, n)
    bounds = [round(i * n / actors) for i in range(actors + 1)]
    pipes, procs = [], []
    for lo, hi in itertools.pairwise(bounds):
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_client_proc,
            args=(str(certs_dir), n, lo, hi, url, args.interval, child),
            daemon=True,
        )
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        reg = [p.recv() if p.poll(330) else ("registered", False, None) for p in pipes]
        if not all(r[1] for r in reg):
            return {"meters": n, "error": "not every meter registered within 300 s"}
        registration_s = max(r[2] for r in reg)
        interval = args.interval
        t0 = (int(time.time()) // interval + 1) * interval
        measure_from = 1 + args.warmup
        measure_to = measure_from + args.intervals
        ticks = measure_to + 1
        for p in pipes:
            p.send((t0, ticks, measure_from, measure_to))
        _sleep_until(t0 + measure_from * interval - 0.01)
        server_cpu_0 = sum(process_cpu_s(pid) for pid in server_pids)
        machine_0 = _machine_cpu()
        _sleep_until(t0 + measure_to * interval - 0.01)
        server_cpu_1 = sum(process_cpu_s(pid) for pid in server_pids)
        machine_1 = _machine_cpu()
        load_after = _loadavg()
        deadline = t0 + ticks * interval + 60
        done = [p.recv() if p.poll(max(1.0, deadline - time.time())) else None for p in pipes]
    finally:
        for proc in procs:
            proc.join(15)
            if proc.is_alive():
                proc.terminate()
    if any(d is None for d in done):
        return {"meters": n, "error": "a client process did not finish"}
    a = [d[1][measure_from] for d in done]
    b = [d[1][measure_to] for d in done]
    wall = max(x["wall"] for x in b) - min(x["wall"] for x in a)

    def delta(key: str) -> float:
        return sum(y[key] for y in b) - sum(x[key] for x in a)

    needed = n / interval
    achieved = delta("posts_ok") / wall
    failed = delta("posts_failed")
    dropped = delta("readings_dropped")
    backlog = sum(y["readings_queued"] for y in b)
    keeps_up = achieved >= 0.95 * needed and failed == 0 and dropped == 0 and backlog <= 2 * n
    ours = delta("cpu_s") + server_cpu_1 - server_cpu_0
    machine_busy = machine_1[0] - machine_0[0]
    return {
        "meters": n,
        "actors": actors,
        "registration_s": registration_s,
        "window_s": round(wall, 1),
        "posts_needed_per_s": round(needed, 1),
        "posts_achieved_per_s": round(achieved, 1),
        "readings_per_s": round(delta("readings_posted") / wall, 1),
        "posts_failed": int(failed),
        "readings_dropped": int(dropped),
        "backlog_end": int(backlog),
        "client_cpu_pct": round(100 * delta("cpu_s") / wall, 1),
        "server_cpu_pct": round(100 * (server_cpu_1 - server_cpu_0) / wall, 1),
        "client_cpu_ms_per_post": round(1000 * delta("cpu_s") / max(1, delta("posts_ok")), 2),
        "server_cpu_ms_per_post": round(
            1000 * (server_cpu_1 - server_cpu_0) / max(1, delta("posts_ok")), 2
        ),
        "machine_busy_pct": round(100 * machine_busy / wall, 1),
        "other_processes_cpu_pct": round(100 * max(0.0, machine_busy - ours) / wall, 1),
        "loadavg_after": load_after,
        "keeps_up": keeps_up,
        "final": [d[2] for d in done],
    }


# --- servers ---------------------------------------------------------------------------------


class LocalServer:
    def __init__(self, certs_dir: Path, interval: int) -> None:
        ctx = mp.get_context("spawn")
        self.queue, self.stop_event = ctx.Queue(), ctx.Event()
        self.proc = ctx.Process(
            target=_serve_local, args=(str(certs_dir), interval, self.queue, self.stop_event)
        )
        self.proc.start()
        self.port = self.queue.get(timeout=60)
        self.pids = [self.proc.pid]

    def close(self) -> dict:
        self.stop_event.set()
        counts = self.queue.get(timeout=30)
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.terminate()
        return counts


class RayServer:
    def __init__(self, certs_dir: Path, interval: int) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
        from gtx_ray.ieee2030_5.server.service import start_ieee2030_5

        self.ray = ray
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            namespace="gtx_ray_bench_clients",
            log_to_driver=False,
            _node_ip_address=HOST,
        )
        config = Ieee2030_5Config(
            certs_dir=certs_dir, host=HOST, port=0, post_rate_s=interval, history_per_mirror=16
        )
        self.handles = start_ieee2030_5(config)
        self.port = self.handles.port
        self.pids = [
            ray.get(actor.__ray_call__.remote(lambda self: os.getpid()), timeout=30)
            for actor in (self.handles.front, self.handles.registry)
        ]

    def close(self) -> dict:
        from gtx_ray.ieee2030_5.server.service import status_ieee2030_5, stop_ieee2030_5

        status = status_ieee2030_5(self.handles)
        stop_ieee2030_5(self.handles)
        self.ray.shutdown()
        keys = ("registered_devices", "mirror_usage_points", "readings_mirrored")
        return {k: status.get(k) for k in keys}


SERVERS = {
    "local": "the aiohttp TLS server with an in-process registry, in a child process",
    "ray": "the real deployment on a local Ray (front actor + registry actor, batched calls)",
}

INTRO = """\
How many meters can mirror their readings to the IEEE 2030.5 server in real time on this machine:
every meter posts one MirrorMeterReading (all six quantities of an interval) every {interval} s
(postRate = interval), so N meters need N / {interval} POSTs per second. Meters are generated with
their own certificates (mutual TLS, one connection each); the server is {backend}; {actors} client
processes each run one `MeterClients` (as the meter actors do), step their meters' model every
interval of wall time and submit the readings. After {warmup} warm-up intervals, {intervals} are
measured. A size keeps up ("real time" yes) when the POSTs/s achieved are at least 95 % of those
needed, none failed or was dropped, and the backlog left is at most two intervals per meter; sizes
run in ascending order and stop after the first that does not. CPU % is of one core (200 % = both
cores), over the measured window: the client processes (model + submit + HTTPS), the server, and
every other process on the machine meanwhile ("others": the machine is shared, and their load
takes cores from the benchmark). "register s" is the time for every meter to register (TLS
handshake, discovery, mirror usage point). Load average at the start {load}; per size (1, 5, 15
min) {loads}."""


def command_line(args: argparse.Namespace) -> str:
    """This run's command with the options that differ from the defaults."""
    defaults = {
        "backend": "local",
        "sizes": "500,1000,2000,4000,8000",
        "actors": 2,
        "interval": 15,
        "warmup": 2,
        "intervals": 3,
        "max_seconds": 1200,
    }
    text = "python benchmarks/ieee2030_5_clients.py"
    for key, default in defaults.items():
        value = getattr(args, key)
        if value != default:
            text += f" --{key.replace('_', '-')} {value:g}" if key == "max_seconds" else ""
            text += "" if key == "max_seconds" else f" --{key.replace('_', '-')} {value}"
    return text


def plot(results: list[dict], path: Path) -> None:
    """POSTs/s needed and achieved per fleet size (bars), client and server CPU % (right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(results))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(
        x - 0.2,
        [r["posts_needed_per_s"] for r in results],
        0.4,
        label="POSTs/s needed",
        color="#bbb",
    )
    ax.bar(
        x + 0.2,
        [r["posts_achieved_per_s"] for r in results],
        0.4,
        label="POSTs/s achieved",
        color=["#3b7dd8" if r["keeps_up"] else "#d83b3b" for r in results],
    )
    ax.set_xticks(x, [f"{r['meters']:,} meters" for r in results])
    ax.set_ylabel("reading POSTs per second")
    cpu = ax.twinx()
    cpu.plot(x, [r["client_cpu_pct"] for r in results], "o-", color="#e08a00", label="client CPU %")
    cpu.plot(
        x, [r["server_cpu_pct"] for r in results], "s--", color="#2a9d3a", label="server CPU %"
    )
    cpu.set_ylabel("CPU % of one core")
    cpu.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    more = cpu.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="upper left")
    ax.set_title(f"IEEE 2030.5 clients in real time (red: falls behind) — {os.cpu_count()} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--sizes", default="500,1000,2000,4000,8000", help="meters, ascending")
    parser.add_argument("--actors", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--interval", type=int, default=15, help="seconds (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="intervals before measuring")
    parser.add_argument("--intervals", type=int, default=3, help="intervals measured")
    parser.add_argument("--max-seconds", type=float, default=1200, help="whole run bound")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for .md and .png")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not sizes or sizes[0] < 1 or sizes[-1] > 16000:
        parser.error("--sizes must be 1..16000 meters (a socket each on both sides)")
    if not 1 <= args.actors <= 16 or not 5 <= args.interval <= 900:
        parser.error("--actors 1..16, --interval 5..900")

    from gtx_ray.fleet import generate_fleet, load_campus
    from gtx_ray.ieee2030_5.pki import init_certs

    started = time.monotonic()
    load_start = _loadavg()
    rows, results = [], []
    stopped_early = ""
    with tempfile.TemporaryDirectory(prefix="gtx_bench_clients_") as tmp:
        certs_dir = Path(tmp)
        ids = [str(m) for m in generate_fleet(load_campus(CAMPUS_CONFIG), sizes[-1], SEED).meter_id]
        t = time.monotonic()
        init_certs(certs_dir, ids)
        print(f"{len(ids)} meter certificates in {time.monotonic() - t:.1f} s", flush=True)
        for n in sizes:
            per_size = 60 + (args.warmup + args.intervals + 2) * args.interval + n / 20
            if time.monotonic() - started + per_size > args.max_seconds:
                stopped_early = f"stopping before {n} meters: --max-seconds {args.max_seconds:.0f}"
                print(stopped_early + " reached")
                break
            server_class = RayServer if args.backend == "ray" else LocalServer
            server = server_class(certs_dir, args.interval)
            load = _loadavg()
            try:
                result = run_size(args, certs_dir, n, f"https://{HOST}:{server.port}", server.pids)
            finally:
                result_server = server.close()
            result["server_counts"] = result_server
            result["loadavg_before"] = load
            results.append(result)
            print(json.dumps(result), flush=True)
            if "error" in result:
                rows.append([n, "-", "-", "-", "-", "-", "-", "-", result["error"]])
                break
            rows.append(
                [
                    n,
                    result["posts_needed_per_s"],
                    result["posts_achieved_per_s"],
                    result["client_cpu_pct"],
                    result["server_cpu_pct"],
                    result["other_processes_cpu_pct"],
                    result["registration_s"],
                    result["backlog_end"],
                    "yes" if result["keeps_up"] else "NO",
                ]
            )
            if not result["keeps_up"]:
                break

    print()
    print(f"IEEE 2030.5 clients in real time — {machine()}")
    print(
        f"server: {args.backend}; {args.actors} client processes; interval {args.interval} s, "
        f"postRate = interval; {args.intervals} intervals measured after {args.warmup} warm-up"
    )
    headers = ["meters", "posts/s needed", "achieved", "client CPU %", "server CPU %"]
    headers += ["others CPU %", "register s", "backlog", "real time"]
    printed = table(headers, rows)
    print(printed)
    print(
        "CPU % is of one core (200 % = both cores of this machine); 'others' is what other "
        "processes used meanwhile (a shared machine's load skews the figures)."
    )
    name = "ieee2030_5_clients" + ("_ray" if args.backend == "ray" else "")
    args.out.mkdir(parents=True, exist_ok=True)
    measured = [r for r in results if "error" not in r]
    if measured:
        plot(measured, args.out / f"{name}.png")
    loads = "; ".join(
        f"{r['meters']:,} meters: {r.get('loadavg_before', '?')} before, "
        f"{r.get('loadavg_after', '?')} after"
        for r in results
    )
    write_summary(
        name,
        f"IEEE 2030.5 clients in real time ({args.backend} server)",
        command_line(args),
        INTRO.format(
            backend=SERVERS[args.backend],
            actors=args.actors,
            interval=args.interval,
            warmup=args.warmup,
            intervals=args.intervals,
            load=load_start,
            loads=loads or "-",
        )
        + (f"\n\n{stopped_early} reached." if stopped_early else "")
        + (f"\n\n![POSTs/s and CPU by fleet size]({name}.png)" if measured else ""),
        printed,
        directory=args.out,
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    out = {"machine": machine(), "args": options, "results": results}
    previous = {}
    if RESULTS.exists():
        try:
            previous = json.loads(RESULTS.read_text())
        except ValueError:
            previous = {}
    previous[args.backend] = out
    RESULTS.write_text(json.dumps(previous, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
