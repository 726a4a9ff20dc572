"""Scale-up: the same generated-fleet workload at 25 → 1,000 → 10,000 → 100,000 meters (and a short
window at 1,000,000), with the meter-actor packing varied, on one Ray node and on a cluster of
three raylets (a head and two workers) on this machine.

    .venv/bin/python -m benchmarks.scale_up            # the full run (~20 min on 2 cores)
    .venv/bin/python -m benchmarks.scale_up --quick --out /tmp/scale_up   # 25 and 1,000 meters

Every configuration (topology × meters × packing, and at the largest fleet 2 aggregators)
starts its own Ray and shuts it down after:
one node is ``ray.init(address="local")`` with a temp dir of its own; the cluster is
``ray.cluster_utils.Cluster`` (head + 2 worker raylets, ``num_cpus`` 1 each, all on this
machine's 2 cores). ``RAY_TMPDIR`` points at that temp dir too, so the address file Ray writes
for a cluster never replaces another run's ``/tmp/ray/ray_current_cluster``. A cluster found on
the host is never joined. Workload: ``gtx_ray.runtime.start_simulation`` with a generated fleet,
Parquet output to a temp dir, InfluxDB, the 2030.5 server and clients, and the REST API off.

For each configuration:

- throughput: speed max, 15-minute intervals; rows stored are sampled every 0.2 s and
  readings/s is the slope between the first and the last change of the stored count (whole
  windows stored in between), so actor start-up and shutdown are excluded; the run is stopped
  after ``--steady-s`` seconds and ``MIN_WINDOWS`` changes of that. CPU seconds of the meter
  actors, the aggregators, the clock and Ray's own processes (raylets, GCS, …) over the same
  span, from /proc.
- memory: RSS (/proc/PID/status VmRSS) of the meter actor processes, summed at each sample;
  the peak sum ÷ meters is the memory per meter. Private memory (RssAnon) beside it, because
  RSS also counts pages of Ray's shared object store a process touched. A bare Ray actor and a
  one-meter MeterActor give the fixed cost of an actor process.
- tick lag: a second run in real time with 1-second intervals (``N`` readings/s offered), the
  clock re-anchored once every meter actor answers (the start-up backlog dropped), then the
  clock's ``lag_s`` (how far stored simulated time trails the wall clock) sampled for
  ``--paced-s`` seconds; CPU and memory of that live run as above.

1,000,000 meters: single node, ``--million-actors`` actors, ``--million-intervals`` 15-minute
intervals at speed max (readings/s, memory, start-up); refused with the measured reason when
the memory the 100,000-meter live runs imply does not fit, stopped when MemAvailable falls
below 1 GiB. ``--quick`` runs this step with 20,000 meters.

Bytes to InfluxDB: readings of 10,000 generated meters from the model, encoded with
``gtx_ray.storage.line_protocol.iter_chunks`` in the 5,000-point requests the writer sends, at
the 15-minute interval (one day), 1-minute (an hour) and 1-second intervals (a minute).

Prints the tables and writes ``scale_up.md`` and ``scale_up.png`` to ``--out`` (default
``benchmarks/results``; ``--json FILE``: the raw figures too). The Markdown ends with the
capacity model (readings/s per core, memory per meter, bytes/s to InfluxDB per 10,000 meters, a
sizing for 10,000,000 meters) that the README quotes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, machine, process_cpu_s, table, write_summary

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "gtx_scale_up"
START_S = 1_735_664_400  # 2025-01-01 00:00 in Bangkok (UTC+7)
FAST_INTERVAL_S = 900
SIZES = (25, 1_000, 10_000, 100_000)
QUICK_SIZES = (25, 1_000)
# meter actors asked for; a packing of more than meters/5 actors is skipped (25 meters: ≤ 5)
PACKINGS = {"single": (1, 2, 6), "cluster": (3, 6)}
QUICK_PACKINGS = {"single": (1, 2), "cluster": (3,)}
# at the largest fleet only: (meter actors, aggregators), the storage split over aggregators
MORE_AGGREGATORS = {"single": ((6, 2),), "cluster": ((6, 2),)}
MIN_WINDOWS = 6  # stored-count changes a throughput span needs (besides --steady-s)
TOPOLOGY_NAMES = {"single": "1 node", "cluster": "3 raylets"}
INTERVAL_NAMES = {900: "15-minute", 60: "1-minute", 1: "1-second"}
CORES = os.cpu_count() or 1
GIB = 2**30
SAMPLE_S = 0.2


# --- processes ---------------------------------------------------------------------------------


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem of a process, bytes (zeros when it is gone)."""
    keys = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")
    found = dict.fromkeys(keys, 0)
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name in found:
                    found[name] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


def parent_pid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def machine_busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


# --- Ray runtimes ------------------------------------------------------------------------------


@dataclass
class Runtime:
    topology: str
    raylet_pids: list[int]  # one per node, node order (head first)
    system_pids: list[int]  # every Ray daemon (GCS, raylets, monitors, …)
    started_s: float  # seconds to bring Ray up


@contextlib.contextmanager
def ray_runtime(topology: str, object_store_bytes: int) -> Iterator[Runtime]:
    """A Ray of this configuration's own (see the module docstring); everything shut down and
    its temp dir removed on exit."""
    import ray
    from ray.cluster_utils import Cluster

    tmp = tempfile.mkdtemp(prefix="gtxsu_", dir="/tmp")  # short: Ray's socket paths must fit
    (Path(tmp) / "ray").mkdir()  # where a Cluster writes its address file
    saved = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = tmp
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    cluster = None
    began = time.monotonic()
    common = {
        "namespace": NAMESPACE,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "configure_logging": False,
    }
    try:
        if topology == "single":
            ray.init(
                address="local",
                num_cpus=CORES,
                object_store_memory=object_store_bytes,
                include_dashboard=False,
                _temp_dir=tmp,
                **common,
            )
            nodes = [ray._private.worker._global_node]
        else:
            cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": 1,
                    "object_store_memory": object_store_bytes,
                    "temp_dir": tmp,
                    "include_dashboard": False,
                },
            )
            for _ in range(2):
                cluster.add_node(num_cpus=1, object_store_memory=object_store_bytes)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, **common)
            nodes = [cluster.head_node, *cluster.worker_nodes]
        raylets = [n.all_processes["raylet"][0].process.pid for n in nodes]
        system = sorted(
            {
                info.process.pid
                for n in nodes
                for infos in n.all_processes.values()
                for info in infos
            }
        )
        yield Runtime(topology, raylets, system, time.monotonic() - began)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved
        shutil.rmtree(tmp, ignore_errors=True)


# --- one configuration -------------------------------------------------------------------------


def base_settings(meters: int, per_actor: int, data_dir: Path):
    from gtx_ray.settings import Settings

    return Settings(
        meters=meters,
        meters_per_actor=per_actor,
        seed=42,
        interval_s=FAST_INTERVAL_S,
        start_s=START_S,
        speed=None,
        duration_s=10 * 365 * 86_400,
        data_dir=data_dir,
        api_enabled=False,
        influxdb_enabled=False,
        ieee2030_5_enabled=False,
        namespace=NAMESPACE,
        address="local",
    )


@dataclass
class Pids:
    meters: list[int]
    aggregators: list[int]  # the leader first
    clock: int


def simulation_pids(simulation, timeout_s: float = 600.0) -> Pids:
    """The processes of a running simulation; returns once every meter actor has answered (its
    ``pid`` call queues behind its ``__init__`` and the steps issued before it)."""
    import ray

    refs = [a.pid.remote() for a in simulation.meter_actors]
    aggregators = simulation.aggregators or [simulation.aggregator]
    refs += [a.pid.remote() for a in aggregators] + [simulation.clock.pid.remote()]
    values = ray.get(refs, timeout=timeout_s)
    n = len(simulation.meter_actors)
    return Pids(values[:n], values[n:-1], values[-1])


def memory_sum(pids: list[int]) -> dict[str, int]:
    total = {"VmRSS": 0, "VmHWM": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
    for pid in pids:
        for key, value in proc_memory(pid).items():
            total[key] += value
    return total


def cpu_seconds(pids: list[int]) -> float:
    return sum(process_cpu_s(pid) for pid in pids)


def du_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def mark(runtime: Runtime, pids: Pids, rows: int) -> dict[str, Any]:
    """The moment the stored count moved: rows, CPU seconds so far, machine jiffies."""
    return {
        "t": time.monotonic(),
        "rows": rows,
        "meters_cpu": cpu_seconds(pids.meters),
        "aggregator_cpu": cpu_seconds(pids.aggregators),
        "clock_cpu": process_cpu_s(pids.clock),
        "ray_cpu": cpu_seconds(runtime.system_pids),
        "machine": machine_busy_jiffies(),
    }


def span_figures(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """Readings/s and CPU between the first and the last change of the stored count."""
    if len(changes) < 2:
        return {}
    first, last = changes[0], changes[-1]
    span = last["t"] - first["t"]
    rows = last["rows"] - first["rows"]
    busy = last["machine"][0] - first["machine"][0]
    total = last["machine"][1] - first["machine"][1]
    return {
        "windows": len(changes),
        "span_s": span,
        "rows": rows,
        "rows_per_s": rows / span,
        "cpu_s": {
            key: last[key] - first[key]
            for key in ("meters_cpu", "aggregator_cpu", "clock_cpu", "ray_cpu")
        },
        "machine_cores_busy": busy / total * CORES if total else float("nan"),
    }


def throughput_phase(
    runtime: Runtime,
    meters: int,
    per_actor: int,
    steady_s: float,
    interval_limit: int | None = None,
    timeout_s: float = 600.0,
    aggregators: int = 1,
    min_available: int | None = None,
) -> dict[str, Any]:
    """Speed max; see the module docstring. ``interval_limit``: a bounded run of that many
    intervals instead of stopping after ``steady_s``."""
    from gtx_ray.runtime import start_simulation

    with tempfile.TemporaryDirectory(prefix="gtxsu_data_") as tmp:
        settings = replace(base_settings(meters, per_actor, Path(tmp)), aggregators=aggregators)
        if interval_limit is not None:
            settings = replace(settings, duration_s=interval_limit * FAST_INTERVAL_S)
        began = time.monotonic()
        simulation = start_simulation(settings)
        pids = simulation_pids(simulation)
        ready_s = time.monotonic() - began
        changes: list[dict[str, Any]] = []  # a sample each time the stored count moved
        peak = {"VmRSS": 0, "RssAnon": 0}
        aggregator_peak = 0
        last_rows = 0
        while True:
            status = simulation.status()
            now = time.monotonic()
            memory = memory_sum(pids.meters)
            for key in peak:
                peak[key] = max(peak[key], memory[key])
            aggregator_peak = max(aggregator_peak, memory_sum(pids.aggregators)["VmRSS"])
            if min_available is not None and _mem_available() < min_available:
                raise MemoryError(
                    f"stopped: MemAvailable fell below {min_available / GIB:.1f} GiB with "
                    f"{last_rows:,} readings stored (meter actors' RSS {memory['VmRSS'] / GIB:.1f}"
                    f" GiB, the aggregator's {aggregator_peak / GIB:.1f} GiB)"
                )
            if status is not None:
                rows = status["storage"]["rows_stored"]
                if rows != last_rows:
                    last_rows = rows
                    changes.append(mark(runtime, pids, rows))
                if status["clock"]["finished"]:
                    break
            if changes and interval_limit is None:
                spanned = now - changes[0]["t"]
                windows = len(changes) >= MIN_WINDOWS or spanned >= 5 * steady_s
                if spanned >= steady_s and windows and len(changes) >= 3:
                    break
            if now - began > timeout_s:
                raise TimeoutError(f"no end after {timeout_s:.0f} s ({last_rows:,} rows stored)")
            time.sleep(SAMPLE_S)
        high_water = memory_sum(pids.meters)["VmHWM"]
        aggregator_memory = memory_sum(pids.aggregators)
        clock_memory = proc_memory(pids.clock)
        placement = [parent_pid(pid) for pid in pids.meters]
        simulation.stop()
        final = simulation.finish()
        parquet = du_bytes(Path(tmp) / "readings")
    if len(changes) < 2:
        raise RuntimeError(f"only {len(changes)} window(s) stored: no rate")
    nodes = [sum(1 for p in placement if p == raylet) for raylet in runtime.raylet_pids]
    return {
        **span_figures(changes),
        "actors": len(pids.meters),
        "meters_per_actor": per_actor,
        "ready_s": ready_s,
        "rows_total": final["storage"]["rows_stored"],
        "rss_peak": peak["VmRSS"],
        "anon_peak": peak["RssAnon"],
        "hwm_sum": high_water,
        "aggregator_rss_peak": aggregator_peak,
        "aggregator_hwm": aggregator_memory["VmHWM"],
        "clock_rss": clock_memory["VmRSS"],
        "actors_per_node": nodes,
        "parquet_bytes_per_reading": parquet / max(1, final["storage"]["rows_stored"]),
    }


def paced_phase(
    runtime: Runtime,
    meters: int,
    per_actor: int,
    settle_s: float,
    paced_s: float,
    aggregators: int = 1,
) -> dict[str, Any]:
    """Real time, 1-second intervals: the clock's lag (see the module docstring), and the CPU
    and memory of a live run (windows of one interval)."""
    import ray

    from gtx_ray.runtime import start_simulation

    with tempfile.TemporaryDirectory(prefix="gtxsu_data_") as tmp:
        settings = replace(
            base_settings(meters, per_actor, Path(tmp)),
            interval_s=1,
            speed=1.0,
            duration_s=None,
            aggregators=aggregators,
        )
        simulation = start_simulation(settings)
        pids = simulation_pids(simulation)
        ray.get(simulation.clock.set_speed.remote(1.0), timeout=60)  # re-anchor: pace from now
        time.sleep(settle_s)
        began = time.monotonic()
        lags = []
        changes: list[dict[str, Any]] = []
        peak = {"VmRSS": 0, "RssAnon": 0, "aggregator_rss": 0, "aggregator_anon": 0}
        last_rows = None
        while time.monotonic() - began < paced_s:
            status = simulation.status()
            memory = memory_sum(pids.meters)
            aggregator = memory_sum(pids.aggregators)
            for key, value in (
                ("VmRSS", memory["VmRSS"]),
                ("RssAnon", memory["RssAnon"]),
                ("aggregator_rss", aggregator["VmRSS"]),
                ("aggregator_anon", aggregator["RssAnon"]),
            ):
                peak[key] = max(peak[key], value)
            if status is not None:
                lags.append(status["clock"]["lag_s"])
                rows = status["storage"]["rows_stored"]
                if rows != last_rows:
                    if last_rows is not None:
                        changes.append(mark(runtime, pids, rows))
                    last_rows = rows
            time.sleep(SAMPLE_S)
        simulation.stop()
        simulation.finish()
    lags.sort()
    result = {
        "offered_per_s": meters,
        "lag_p50_s": statistics.median(lags) if lags else float("nan"),
        "lag_p95_s": lags[int(0.95 * (len(lags) - 1))] if lags else float("nan"),
        "lag_max_s": lags[-1] if lags else float("nan"),
        "samples": len(lags),
        "rss_peak": peak["VmRSS"],
        "anon_peak": peak["RssAnon"],
        "aggregator_rss_peak": peak["aggregator_rss"],
        "aggregator_anon_peak": peak["aggregator_anon"],
    }
    result.update(span_figures(changes))
    result["stored_per_s"] = result.get("rows_per_s", 0.0)
    return result


STORE_BYTES = {"single": 4 * GIB, "cluster": 3 * GIB}  # object store per node
MILLION_STORE = 6 * GIB


def run_config(
    topology: str, meters: int, actors: int, aggregators: int, args: argparse.Namespace
) -> dict[str, Any]:
    per_actor = math.ceil(meters / actors)
    load = os.getloadavg()[0]
    began = time.monotonic()
    with ray_runtime(topology, STORE_BYTES[topology]) as runtime:
        result = {
            "topology": topology,
            "meters": meters,
            "actors_asked": actors,
            "aggregators": aggregators,
            "load": load,
            "ray_start_s": runtime.started_s,
        }
        result.update(
            throughput_phase(runtime, meters, per_actor, args.steady_s, aggregators=aggregators)
        )
        if args.paced_s > 0:
            result["paced"] = paced_phase(
                runtime, meters, per_actor, args.settle_s, args.paced_s, aggregators
            )
    result["config_s"] = time.monotonic() - began
    paced = result.get("paced", {})
    print(
        f"  {TOPOLOGY_NAMES[topology]}, {meters:,} meters / {result['actors']} actors / "
        f"{aggregators} aggregator(s): "
        f"{result['rows_per_s']:,.0f} readings/s, {result['rss_peak'] / meters / 1024:,.1f} "
        f"KiB/meter, lag p50 {paced.get('lag_p50_s', float('nan')):.2f} s "
        f"({result['config_s']:.0f} s, load {load:.1f})",
        file=sys.stderr,
        flush=True,
    )
    return result


def baseline() -> dict[str, Any]:
    """Memory of a bare Ray actor and of a one-meter MeterActor that has stepped a day."""
    import ray

    from gtx_ray.actors.meter import MeterActor
    from gtx_ray.fleet import load_campus
    from gtx_ray.settings import DEFAULT_CONFIG

    @ray.remote(num_cpus=0)
    class Bare:
        def pid(self) -> int:
            return os.getpid()

    with ray_runtime("single", GIB):
        bare = Bare.remote()
        campus = load_campus(DEFAULT_CONFIG)
        meter = MeterActor.remote(campus, 25, 42, 0, 1, FAST_INTERVAL_S)
        state = meter.initial_state.remote(START_S)
        batch, _ = meter.step.remote(state, 96)
        ray.get(batch)
        pids = ray.get([bare.pid.remote(), meter.pid.remote()])
        time.sleep(1.0)
        bare_memory, meter_memory = proc_memory(pids[0]), proc_memory(pids[1])
    return {
        "bare_rss": bare_memory["VmRSS"],
        "bare_anon": bare_memory["RssAnon"],
        "meter_rss": meter_memory["VmRSS"],
        "meter_anon": meter_memory["RssAnon"],
    }


def million(args: argparse.Namespace, results: list[dict[str, Any]], base: dict) -> dict:
    """A short window at 1,000,000 meters, or why not (see the module docstring)."""
    meters = args.million_meters
    per_actor = math.ceil(meters / args.million_actors)
    largest = [r for r in results if r["topology"] == "single" and r["meters"] == max(SIZES)]
    available = _mem_available()
    outcome: dict[str, Any] = {
        "meters": meters,
        "actors_asked": args.million_actors,
        "intervals": args.million_intervals,
    }
    live = [r for r in largest if r.get("paced") and r.get("aggregators", 1) == 1]
    if live:
        # live (one interval per window, as here), from the 100,000-meter runs: the meter
        # actors' RSS above their fixed cost and the aggregator's RSS, per meter; plus the
        # actors' fixed cost, the driver's fleet and Ray (2 GiB) and the object store
        per_meter = min(
            (
                r["paced"]["rss_peak"]
                - r["actors"] * base["meter_rss"]
                + r["paced"]["aggregator_rss_peak"]
            )
            / r["meters"]
            for r in live
        )
        need = meters * per_meter + args.million_actors * base["meter_rss"]
        need += 2 * GIB + MILLION_STORE
        outcome["estimated_bytes"] = need
        outcome["available_bytes"] = available
        if need > 0.8 * available:
            outcome["error"] = (
                f"not run: the 100,000-meter runs imply {need / GIB:.1f} GiB, "
                f"{available / GIB:.1f} GiB available"
            )
            return outcome
    load = os.getloadavg()[0]
    began = time.monotonic()
    try:
        with ray_runtime("single", MILLION_STORE) as runtime:
            outcome["ray_start_s"] = runtime.started_s
            outcome.update(
                throughput_phase(
                    runtime,
                    meters,
                    per_actor,
                    args.steady_s,
                    interval_limit=args.million_intervals,
                    timeout_s=args.million_timeout_s,
                    min_available=GIB,
                )
            )
    except Exception as exc:  # report, do not drop
        outcome["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    outcome["load"] = load
    outcome["config_s"] = time.monotonic() - began
    said = outcome.get("error") or f"{outcome.get('rows_per_s', 0):,.0f} readings/s"
    print(f"  {meters:,} meters: {said}", file=sys.stderr, flush=True)
    return outcome


def _mem_available() -> int:
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# --- InfluxDB bytes ----------------------------------------------------------------------------


def influx_bytes(meters: int = 10_000) -> list[dict[str, Any]]:
    """Line-protocol bytes per reading as the InfluxDB writer sends them (5,000-point bodies)."""
    from gtx_ray.fleet import generate_fleet, load_campus
    from gtx_ray.model.meters import MeterModel
    from gtx_ray.settings import DEFAULT_CONFIG
    from gtx_ray.storage.line_protocol import iter_chunks

    campus = load_campus(DEFAULT_CONFIG)
    fleet = generate_fleet(campus, meters, 42)
    out = []
    for interval_s, start_s, intervals, what in (
        (900, START_S, 96, "15 min: one day from 2025-01-01 00:00"),
        (60, START_S + 12 * 3600, 60, "1 min: one hour from 2025-01-01 12:00"),
        (1, START_S + 12 * 3600, 60, "1 s: one minute from 2025-01-01 12:00"),
    ):
        model = MeterModel(fleet, campus, 42, interval_s)
        result = model.step(model.initial_state(start_s), intervals)
        began = time.perf_counter()
        body = points = requests = 0
        for chunk in iter_chunks(result.batch, 5_000):
            body += len(chunk.body)
            points += chunk.points
            requests += 1
        encode_s = time.perf_counter() - began
        per_reading = body / points
        arrow = result.batch.nbytes / result.batch.num_rows
        out.append(
            {
                "interval_s": interval_s,
                "sample": what,
                "points": points,
                "requests": requests,
                "bytes_per_reading": per_reading,
                "bytes_per_s_per_10k": per_reading * 10_000 / interval_s,
                "encode_lines_per_s": points / encode_s,
                "arrow_bytes_per_reading": arrow,
            }
        )
        print(
            f"  line protocol at {interval_s} s: {per_reading:.0f} bytes/reading",
            file=sys.stderr,
            flush=True,
        )
    return out


# --- report ------------------------------------------------------------------------------------


def label(r: dict[str, Any]) -> str:
    text = f"{TOPOLOGY_NAMES[r['topology']]}, {r['actors_asked']} actor" + (
        "s" if r["actors_asked"] > 1 else ""
    )
    if r.get("aggregators", 1) > 1:
        text += f", {r['aggregators']} aggregators"
    return text


def kib(value: float) -> str:
    return f"{value / 1024:,.1f}"


def mib(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def speed_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[object]]]:
    headers = [
        "topology",
        "meters",
        "actors",
        "aggregators",
        "per node",
        "readings/s",
        "per core",
        "readings/CPU-s",
        "KiB/meter RSS",
        "KiB/meter private",
        "aggregator MiB",
        "load",
    ]
    rows = []
    for r in results:
        cpu = sum(r["cpu_s"].values())
        rows.append(
            [
                TOPOLOGY_NAMES[r["topology"]],
                r["meters"],
                r["actors"],
                r.get("aggregators", 1),
                "/".join(str(n) for n in r["actors_per_node"]),
                f"{r['rows_per_s']:,.0f}",
                f"{r['rows_per_s'] / CORES:,.0f}",
                f"{r['rows'] / cpu:,.0f}" if cpu else "-",
                kib(r["rss_peak"] / r["meters"]),
                kib(r["anon_peak"] / r["meters"]),
                mib(r["aggregator_rss_peak"]),
                f"{r['load']:.1f}",
            ]
        )
    return headers, rows


def live_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[object]]]:
    headers = [
        "topology",
        "meters",
        "actors",
        "aggregators",
        "offered readings/s",
        "stored readings/s",
        "lag p50 s",
        "lag p95 s",
        "lag max s",
        "CPU µs/reading",
        "KiB/meter RSS",
        "KiB/meter private",
        "aggregator MiB",
    ]
    rows = []
    for r in results:
        live = r.get("paced")
        if not live:
            continue
        cpu = sum(live["cpu_s"].values()) if "cpu_s" in live else float("nan")
        rows.append(
            [
                TOPOLOGY_NAMES[r["topology"]],
                r["meters"],
                r["actors"],
                r.get("aggregators", 1),
                live["offered_per_s"],
                f"{live['stored_per_s']:,.0f}",
                f"{live['lag_p50_s']:.3f}",
                f"{live['lag_p95_s']:.3f}",
                f"{live['lag_max_s']:.3f}",
                f"{cpu / live['rows'] * 1e6:.2f}" if live.get("rows") else "-",
                kib(live["rss_peak"] / r["meters"]),
                kib(live["anon_peak"] / r["meters"]),
                mib(live["aggregator_rss_peak"]),
            ]
        )
    return headers, rows


def cpu_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[object]]]:
    headers = [
        "topology",
        "meters",
        "actors",
        "aggregators",
        "span s",
        "readings",
        "meter actors CPU-s",
        "aggregator CPU-s",
        "clock CPU-s",
        "Ray daemons CPU-s",
        "machine cores busy",
        "aggregator µs/reading",
        "Parquet B/reading",
        "actors ready s",
        "Ray start s",
    ]
    rows = []
    for r in results:
        c = r["cpu_s"]
        rows.append(
            [
                TOPOLOGY_NAMES[r["topology"]],
                r["meters"],
                r["actors"],
                r.get("aggregators", 1),
                f"{r['span_s']:.1f}",
                r["rows"],
                f"{c['meters_cpu']:.1f}",
                f"{c['aggregator_cpu']:.1f}",
                f"{c['clock_cpu']:.1f}",
                f"{c['ray_cpu']:.1f}",
                f"{r['machine_cores_busy']:.2f}",
                f"{c['aggregator_cpu'] / r['rows'] * 1e6:.2f}",
                f"{r['parquet_bytes_per_reading']:.0f}",
                f"{r['ready_s']:.1f}",
                f"{r.get('ray_start_s', float('nan')):.1f}",
            ]
        )
    return headers, rows


def influx_rows(influx: list[dict[str, Any]]) -> tuple[list[str], list[list[object]]]:
    headers = [
        "interval",
        "sample",
        "points",
        "requests",
        "bytes/reading",
        "bytes/s per 10,000 meters",
        "Arrow bytes/reading",
        "encoded lines/s (1 core)",
    ]
    rows = [
        [
            f"{i['interval_s']} s",
            i["sample"],
            i["points"],
            i["requests"],
            f"{i['bytes_per_reading']:.0f}",
            f"{i['bytes_per_s_per_10k']:,.0f}",
            f"{i['arrow_bytes_per_reading']:.0f}",
            f"{i['encode_lines_per_s']:,.0f}",
        ]
        for i in influx
    ]
    return headers, rows


def markdown(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown pipe table (numbers right-aligned)."""
    cells = [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], big: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.8))
    series: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        series.setdefault(label(r), []).append(r)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, points), colour in zip(series.items(), colours, strict=False):
        points.sort(key=lambda r: r["meters"])
        style = "-" if points[0]["topology"] == "single" else "--"
        x = [r["meters"] for r in points]
        kw = {"color": colour, "marker": "o"}
        axes[0].plot(x, [r["rows_per_s"] for r in points], style, label=name, **kw)
        axes[1].plot(x, [r["rss_peak"] / r["meters"] / 1024 for r in points], style, **kw)
        live = [r for r in points if r.get("paced")]
        lx = [r["meters"] for r in live]
        axes[1].plot(
            lx,
            [r["paced"]["rss_peak"] / r["meters"] / 1024 for r in live],
            ":",
            color=colour,
            marker="o",
            markerfacecolor="none",
        )
        axes[2].plot(lx, [r["paced"]["lag_p50_s"] for r in live], style, **kw)
        axes[2].plot(lx, [r["paced"]["lag_max_s"] for r in live], "x", color=colour)
    if big and "rows_per_s" in big:
        name = f"1 node, {big['meters']:,} meters, {big['actors']} actors (short window)"
        axes[0].plot([big["meters"]], [big["rows_per_s"]], "k*", markersize=12, label=name)
        axes[1].plot([big["meters"]], [big["rss_peak"] / big["meters"] / 1024], "k*", markersize=12)
    axes[0].set_title("readings stored per second (speed max)")
    axes[1].set_title(
        "meter actors' RSS per meter, KiB\n(filled: speed max; open, dotted: real time)"
    )
    axes[2].set_title("tick lag, s (real time, 1 s intervals)\n(line: p50; x: max)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("meters")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylim(bottom=0)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    fig.legend(loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(
        f"gtx_ray scale-up on one {CORES}-core machine: one Ray node (solid) vs 3 raylets "
        "(dashed; head + 2 workers sharing the same cores)"
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# --- capacity ----------------------------------------------------------------------------------


def capacity(
    results: list[dict[str, Any]],
    big: dict[str, Any] | None,
    base: dict[str, Any],
    influx: list[dict[str, Any]],
) -> dict[str, Any]:
    """The capacity model's figures, from the largest fleet measured on each topology."""
    from gtx_ray.runtime import READING_BYTES, STORE_SHARE

    largest = max(r["meters"] for r in results)
    model: dict[str, Any] = {"meters": largest}
    for topology in ("single", "cluster"):
        runs = [r for r in results if r["topology"] == topology and r["meters"] == largest]
        if not runs:
            continue
        best = max(runs, key=lambda r: r["rows_per_s"])
        live = [r["paced"] for r in runs if r.get("paced", {}).get("rows")]
        split = {}
        for n_aggregators in sorted({r.get("aggregators", 1) for r in runs}):
            same = [
                r
                for r in runs
                if r.get("aggregators", 1) == n_aggregators and r["actors_asked"] == 6
            ]
            if same:
                r = same[0]
                split[n_aggregators] = {
                    "rows_per_s": r["rows_per_s"],
                    "aggregator_cores": r["cpu_s"]["aggregator_cpu"] / r["span_s"],
                    "per_cpu_s": r["rows"] / sum(r["cpu_s"].values()),
                }
        model[topology] = {
            "split": split,
            "aggregators": best.get("aggregators", 1),
            "actors": best["actors"],
            "rows_per_s": best["rows_per_s"],
            "per_core": best["rows_per_s"] / CORES,
            "per_cpu_s": best["rows"] / sum(best["cpu_s"].values()),
            "aggregator_us": best["cpu_s"]["aggregator_cpu"] / best["rows"] * 1e6,
            "aggregator_cores": best["cpu_s"]["aggregator_cpu"] / best["span_s"],
            "ray_us": best["cpu_s"]["ray_cpu"] / best["rows"] * 1e6,
            "meter_us": best["cpu_s"]["meters_cpu"] / best["rows"] * 1e6,
            "live_us": max(
                (sum(p["cpu_s"].values()) / p["rows"] * 1e6 for p in live), default=float("nan")
            ),
            "live_aggregator_us": max(
                (p["cpu_s"]["aggregator_cpu"] / p["rows"] * 1e6 for p in live),
                default=float("nan"),
            ),
            "lag_p50_s": max((p["lag_p50_s"] for p in live), default=float("nan")),
            "lag_max_s": max((p["lag_max_s"] for p in live), default=float("nan")),
        }
    single = [r for r in results if r["topology"] == "single" and r.get("paced")]
    at_largest = [r for r in single if r["meters"] == largest] or single
    chosen = min(at_largest, key=lambda r: r["paced"]["anon_peak"])
    live = chosen["paced"]
    marginal = (live["anon_peak"] - chosen["actors"] * base["meter_anon"]) / chosen["meters"]
    # the aggregator's private memory against meters, live, from the two largest single-node
    # fleets of the same packing (its window buffers and latest readings grow with the fleet)
    sizes = sorted({r["meters"] for r in single})
    slope = intercept = float("nan")
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if len(sizes) >= 2:
        small = [r for r in single if r["meters"] == sizes[-2]]
        large = [r for r in single if r["meters"] == sizes[-1]]
        pairs = [
            (a, b)
            for a in small
            for b in large
            if a["actors_asked"] == b["actors_asked"]
            and a.get("aggregators", 1) == b.get("aggregators", 1) == 1
        ]
        if pairs:
            slopes = [
                (b["paced"]["aggregator_anon_peak"] - a["paced"]["aggregator_anon_peak"])
                / (b["meters"] - a["meters"])
                for a, b in pairs
            ]
            slope = statistics.median(slopes)
            intercept = statistics.median(
                b["paced"]["aggregator_anon_peak"] - slope * b["meters"] for _, b in pairs
            )
    best_speed = max(
        (r for r in results if r["topology"] == "single" and r["meters"] == largest),
        key=lambda r: r["rows_per_s"],
    )
    model["memory"] = {
        "speed_rss_per_meter": best_speed["rss_peak"] / best_speed["meters"],
        "speed_actors": best_speed["actors"],
        "live_rss_per_meter": live["rss_peak"] / chosen["meters"],
        "live_marginal_per_meter": max(0.0, marginal),
        "live_actors": chosen["actors"],
        "actor_rss": base["meter_rss"],
        "actor_anon": base["meter_anon"],
        "aggregator_slope": slope,
        "aggregator_intercept": intercept,
        "million_aggregator_rss": (big or {}).get("aggregator_rss_peak"),
        "million_meters": (big or {}).get("meters"),
    }
    # live CPU (cores busy) against readings/s: a fixed part (the clock's loop, the aggregator's
    # checkpoints, Ray, this benchmark's status polls) and a part per reading, from the two
    # largest single-node fleets of each packing
    fits = []
    for a, b in pairs:
        pa_, pb = a["paced"], b["paced"]
        if not (pa_.get("rows") and pb.get("rows")):
            continue
        fit = []
        for cpu_of in (lambda c: sum(c.values()), lambda c: c["aggregator_cpu"]):
            ca, cb = (cpu_of(x["cpu_s"]) / x["span_s"] for x in (pa_, pb))
            per_reading = (cb - ca) / (pb["rows_per_s"] - pa_["rows_per_s"])
            fit += [per_reading, cb - per_reading * pb["rows_per_s"]]
        fits.append(fit)

    def median_of(k: int) -> float:
        return statistics.median(f[k] for f in fits) if fits else float("nan")

    model["live_cpu"] = {
        "us_per_reading": median_of(0) * 1e6,
        "fixed_cores": median_of(1),
        "aggregator_us_per_reading": median_of(2) * 1e6,
        "aggregator_fixed_cores": median_of(3),
        "fits": len(fits),
        "sizes": sizes[-2:],
    }
    model["influx"] = {i["interval_s"]: i for i in influx}
    # memory of 10,000,000 meters: scaled from the 1,000,000-meter run when it ran (actors of
    # 200,000 meters and windows of one interval, as sized here), else from the live runs
    target = 10_000_000
    actors = math.ceil(target / 200_000)
    memory = model["memory"]
    if big and big.get("rss_peak"):
        live_largest = [
            r["paced"]["aggregator_rss_peak"]
            for r in results
            if r["topology"] == "single"
            and r["meters"] == largest
            and r.get("paced")
            and r.get("aggregators", 1) == 1
        ]
        grows = (big["aggregator_rss_peak"] - statistics.median(live_largest)) / (
            big["meters"] - largest
        )
        memory["aggregator_growth_big"] = grows
        meter_memory = big["rss_peak"] * target / big["meters"]
        meter_private = big["anon_peak"] * target / big["meters"]
        aggregator_memory = big["aggregator_rss_peak"] + grows * (target - big["meters"])
        memory["basis"] = "million"
    else:
        meter_memory = actors * base["meter_rss"] + target * memory["live_marginal_per_meter"]
        meter_private = actors * base["meter_anon"] + target * memory["live_marginal_per_meter"]
        aggregator_memory = intercept + slope * target
        memory["basis"] = "live"
    sizing = []
    single_model = model["single"]
    for interval_s in (900, 60):
        meters = target
        rate = meters / interval_s
        sizing.append(
            {
                "interval_s": interval_s,
                "readings_per_s": rate,
                "cores_speed": rate / single_model["per_core"],
                "cores_live": model["live_cpu"]["fixed_cores"]
                + rate * model["live_cpu"]["us_per_reading"] / 1e6,
                "actors": actors,
                "meter_memory": meter_memory,
                "meter_private": meter_private,
                # one interval of the whole fleet at the best one-node speed-max rate measured
                "interval_store_s": meters / single_model["rows_per_s"],
                "aggregator_memory": aggregator_memory,
                "aggregator_cores": model["live_cpu"]["aggregator_fixed_cores"]
                + rate * model["live_cpu"]["aggregator_us_per_reading"] / 1e6,
                "influx_bytes_per_s": rate * model["influx"][interval_s]["bytes_per_reading"],
                # runtime.window_budget: one 1-interval window in flight (and one queued) fits
                # the byte budget when STORE_SHARE × store ≥ 2 × meters × READING_BYTES
                "home_store": 2 * meters * READING_BYTES / STORE_SHARE,
                "window_bytes": meters * READING_BYTES,
            }
        )
    model["sizing"] = sizing
    return model


def sizing_rows(model: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """The sizing table (see SIZING_INTRO)."""
    headers = [
        "10,000,000 meters at",
        "readings/s",
        "cores (live fit)",
        "cores (speed-max rate/core)",
        "meter actors of 200,000",
        "meter actors' RSS (private) GiB",
        "aggregator RSS GiB",
        "aggregator cores",
        "home object store GiB",
        "s to store one interval",
        "to InfluxDB MB/s",
        "to InfluxDB GB/day",
    ]
    rows = []
    for s in model["sizing"]:
        rows.append(
            [
                f"{INTERVAL_NAMES[s['interval_s']]} intervals",
                f"{s['readings_per_s']:,.0f}",
                f"{s['cores_live']:.2f}",
                f"{s['cores_speed']:.2f}",
                s["actors"],
                f"{s['meter_memory'] / GIB:.1f} ({s['meter_private'] / GIB:.1f})",
                f"{s['aggregator_memory'] / GIB:.1f}",
                f"{s['aggregator_cores']:.2f}",
                f"{s['home_store'] / GIB:.0f}",
                f"{s['interval_store_s']:.1f}",
                f"{s['influx_bytes_per_s'] / 1e6:.2f}",
                f"{s['influx_bytes_per_s'] * 86_400 / 1e9:,.0f}",
            ]
        )
    return headers, rows


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="25 and 1,000 meters, short phases")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures")
    parser.add_argument("--steady-s", type=float, default=None, help="throughput span (8; 3)")
    parser.add_argument("--paced-s", type=float, default=None, help="lag sampling (20; 5)")
    parser.add_argument("--settle-s", type=float, default=2.0)
    parser.add_argument("--no-million", action="store_true")
    parser.add_argument("--million-meters", type=int, default=None, help="1,000,000; 20,000")
    parser.add_argument("--million-actors", type=int, default=5)
    parser.add_argument("--million-intervals", type=int, default=None, help="6; 200")
    parser.add_argument("--million-timeout-s", type=float, default=300.0)
    args = parser.parse_args()
    if args.steady_s is None:
        args.steady_s = 3.0 if args.quick else 8.0
    if args.paced_s is None:
        args.paced_s = 5.0 if args.quick else 20.0
    if args.million_meters is None:
        args.million_meters = 20_000 if args.quick else 1_000_000
    if args.million_intervals is None:
        args.million_intervals = 200 if args.quick else 6
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    sizes = QUICK_SIZES if args.quick else SIZES
    packings = QUICK_PACKINGS if args.quick else PACKINGS
    print(f"machine: {machine()}", flush=True)
    load_before = os.getloadavg()
    began = time.monotonic()
    args.code = git_state()  # actors import the simulator from the work tree as they start

    influx = influx_bytes()
    base = baseline()
    print(
        f"  actor baseline: bare {mib(base['bare_rss'])} MiB, one-meter MeterActor "
        f"{mib(base['meter_rss'])} MiB RSS",
        file=sys.stderr,
        flush=True,
    )
    results = []
    for topology, asked in packings.items():
        for meters in sizes:
            configs = [(actors, 1) for actors in asked if actors * 5 <= meters]
            if meters == max(sizes):
                configs += MORE_AGGREGATORS[topology]
            for actors, aggregators in configs:
                results.append(run_config(topology, meters, actors, aggregators, args))
    big = None if args.no_million else million(args, results, base)
    load_after = os.getloadavg()
    wall_s = time.monotonic() - began
    if git_state() != args.code:
        args.code += f" (at the end: {git_state()})"

    model = capacity(results, big, base, influx)
    for headers, rows in (
        speed_rows(results),
        cpu_rows(results),
        live_rows(results),
        influx_rows(influx),
        sizing_rows(model),
    ):
        print(table(headers, rows))

    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "scale_up.png"
    plot(results, big, png)
    raw = {
        "machine": machine(),
        "load_before": load_before,
        "load_after": load_after,
        "wall_s": wall_s,
        "baseline": base,
        "influx": influx,
        "results": results,
        "million": big,
        "capacity": model,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    command = "python -m benchmarks.scale_up" + (" --quick" if args.quick else "")
    for flag, value, default in (
        ("--steady-s", args.steady_s, 3.0 if args.quick else 8.0),
        ("--paced-s", args.paced_s, 5.0 if args.quick else 20.0),
    ):
        if value != default:
            command += f" {flag} {value:g}"
    if args.no_million:
        command += " --no-million"
    for flag, value, default in (
        ("--million-meters", args.million_meters, 20_000 if args.quick else 1_000_000),
        ("--million-actors", args.million_actors, 5),
        ("--million-intervals", args.million_intervals, 200 if args.quick else 6),
    ):
        if value != default:
            command += f" {flag} {value}"
    write_summary(
        "scale_up",
        "Scale-up: 25 to 1,000,000 meters, one node and three raylets",
        command,
        report(results, big, base, influx, model, load_before, load_after, wall_s, args),
        directory=args.out,
    )
    return 0


def report(
    results: list[dict[str, Any]],
    big: dict[str, Any] | None,
    base: dict[str, Any],
    influx: list[dict[str, Any]],
    model: dict[str, Any],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    wall_s: float,
    args: argparse.Namespace,
) -> str:
    loads = [r["load"] for r in results]
    top = max([*loads, load_before[0], load_after[0]])
    high = top > CORES
    packings = QUICK_PACKINGS if args.quick else PACKINGS
    asked = "; ".join(
        TOPOLOGY_NAMES[t] + ": " + ", ".join(str(a) for a in p) for t, p in packings.items()
    )
    code = getattr(args, "code", None) or git_state()
    before = ", ".join(f"{v:.1f}" for v in load_before)
    after = ", ".join(f"{v:.1f}" for v in load_after)
    return f"""\
Load average (1, 5, 15 min) {before} before the run and {after} after it;
{min(loads):.1f}–{max(loads):.1f} when each configuration began (`load` below). Whole run
{wall_s / 60:.1f} min, on {code}. {(LOADED if high else QUIET).format(top=top, cores=CORES)}

**What runs.** `gtx_ray.runtime.start_simulation` on a generated fleet (the 35/45/20 consumer /
prosumer / hybrid mix, seed 42), Parquet output to a temp dir; InfluxDB, the REST API and the
IEEE 2030.5 server and clients off. Each configuration has **its own Ray**, shut down after it:
`1 node` is `ray.init(address="local", num_cpus={CORES})`; `3 raylets` is
`ray.cluster_utils.Cluster` with a head and two worker raylets (`num_cpus` 1 each). **The three
raylets share this one machine's {CORES} cores**: their rows show the mechanics and the overhead
of several raylets (readings moved between three object stores over loopback, three raylets'
bookkeeping), not more hardware. Meter actors are placed by the runtime as it stands
(`per node`: meter actors on head / worker / worker, from each actor process's parent raylet);
the clock and the aggregators are pinned to the home node, the driver's (the head). Object store:
{mib(STORE_BYTES["single"])} MiB on one node, {mib(STORE_BYTES["cluster"])} MiB per raylet; the
runtime keeps windows on their way to storage within a quarter of the home node's. Packings
asked ({asked} meter actors, skipping more than meters ÷ 5; at the largest fleet also 6 actors
with 2 aggregators, `--aggregators 2`); `actors` is what that gives,
`ceil(meters / ceil(meters / asked))`.

![readings/s, memory per meter and tick lag by fleet size](scale_up.png)

## Speed max: readings/s and memory

15-minute intervals, speed max (windows of up to ~200,000 rows per actor call). `readings/s`:
readings stored between the first and the last change of the stored count, sampling every
{SAMPLE_S} s, over at least {args.steady_s:g} s and {MIN_WINDOWS} changes (or
{5 * args.steady_s:g} s) (actor start-up and shutdown excluded). `per core` = readings/s ÷ {CORES}
cores (whatever else ran on them); `readings/CPU-s` = readings ÷ CPU seconds of the meter
actors, the aggregators, the clock and Ray's daemons over the same span, which the machine's
other load does not lower. `KiB/meter RSS`: the peak of the meter actor processes' summed RSS
(/proc VmRSS) ÷ meters; `private`: the same with RssAnon (RSS also counts the object-store pages
an actor wrote its windows into, and shared libraries). For scale: a bare Ray actor is
{mib(base["bare_rss"])} MiB RSS ({mib(base["bare_anon"])} MiB private), a MeterActor with one
meter that stepped a day {mib(base["meter_rss"])} MiB ({mib(base["meter_anon"])} MiB private), so
small fleets are all fixed cost. `aggregator MiB`: the aggregators' peak RSS.

{markdown(*speed_rows(results))}

Where the CPU went over each span (`machine cores busy`: every process on the machine, of
{CORES}; `aggregator µs/reading`: the aggregators' CPU per reading; one aggregator is one
process, so it caps a run near 1,000,000 ÷ that readings/s however many meter actors and nodes
are added):

{markdown(*cpu_rows(results))}

## Real time: tick lag

A second run of each fleet and packing in real time with 1-second intervals (meters = readings/s
offered, one interval per window). Once every meter actor answered, the clock is re-anchored
(`set_speed(1)`: the start-up backlog dropped); {args.settle_s:g} s later its `lag_s` (the wall
clock minus the time the window's end was due, taken when the aggregator acknowledges the
window) is sampled every {SAMPLE_S} s for {args.paced_s:g} s. `stored readings/s` is measured as
above; `CPU µs/reading`: meter actors, aggregators, clock and Ray's daemons per stored reading;
memory columns as above, for this live run.

{markdown(*live_rows(results))}

{million_text(big)}

## Bytes to InfluxDB

Readings of 10,000 generated meters from the model, encoded by
`gtx_ray.storage.line_protocol.iter_chunks` into the 5,000-point bodies the InfluxDB writer
POSTs (uncompressed: the writer sends no Content-Encoding; HTTP headers, a few hundred bytes per
5,000 points, not counted). `bytes/s per 10,000 meters` = bytes/reading × 10,000 ÷ interval.

{markdown(*influx_rows(influx))}

## Capacity model

{capacity_text(model)}
"""


def git_state() -> str:
    """The commit measured, and the simulator's files changed in the work tree, if any."""
    import subprocess

    def git(*arguments: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *arguments], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "an unknown commit"
    status = git("status", "--porcelain", "--", "gtx_ray").splitlines()
    changed = [line.split(None, 1)[-1] for line in status if line.strip()]
    text = f"commit {head}"
    if changed:
        text += " with uncommitted changes to " + ", ".join(f"`{c}`" for c in changed)
    return text


LOADED = """\
**The load average exceeded the {cores} cores at times** (up to {top:.1f}): other engineers'
test suites shared them, so read readings/s and lags as lower bounds; `readings/CPU-s` and the
CPU columns are less affected."""
QUIET = "The load average stayed at or below the {cores} cores (at most {top:.1f})."


def million_text(big: dict[str, Any] | None) -> str:
    if big is None:
        return "## 1,000,000 meters\n\nNot run (`--no-million`)."
    meters = big["meters"]
    head = (
        f"## {meters:,} meters\n\nOne node, {big['actors_asked']} meter actors asked "
        f"({math.ceil(meters / big['actors_asked']):,} meters each), speed max, a bounded "
        f"run of {big['intervals']} 15-minute intervals (up to 200,000 readings per actor "
        "call)"
    )
    if "error" in big:
        extra = ""
        if "estimated_bytes" in big:
            extra = (
                " (estimate from the 100,000-meter live runs: "
                f"{big['estimated_bytes'] / GIB:.1f} GiB; available "
                f"{big['available_bytes'] / GIB:.1f} GiB)"
            )
        return f"{head}: **{big['error']}**{extra}."
    headers = [
        "readings/s",
        "windows",
        "readings stored",
        "KiB/meter RSS",
        "KiB/meter private",
        "meter actors' VmHWM sum GiB",
        "aggregator MiB",
        "Ray start s",
        "actors ready s",
        "whole config s",
        "load",
    ]
    row = [
        f"{big['rows_per_s']:,.0f}",
        big["windows"],
        big["rows_total"],
        kib(big["rss_peak"] / big["meters"]),
        kib(big["anon_peak"] / big["meters"]),
        f"{big['hwm_sum'] / GIB:.2f}",
        mib(big["aggregator_rss_peak"]),
        f"{big['ray_start_s']:.1f}",
        f"{big['ready_s']:.1f}",
        f"{big['config_s']:.0f}",
        f"{big['load']:.1f}",
    ]
    return (
        f"{head}:\n\n{markdown(headers, [row])}\n\n`actors ready`: from `start_simulation` "
        f"until every meter actor answered (each actor generates the whole {meters:,}-meter "
        "fleet and keeps its slice; the driver generates it too). `readings/s` spans the windows "
        "after the first, so with this few windows it is coarse. The tick lag was not "
        "measured at this size (a short window only)."
    )


def actors_text(n: int) -> str:
    return f"{n} meter actor{'' if n == 1 else 's'}"


def aggregators_text(n: int) -> str:
    return f"{n} aggregator{'' if n == 1 else 's'}"


def sizing_intro(model: dict[str, Any]) -> str:
    memory = model["memory"]
    if memory["basis"] == "million":
        basis = (
            f"meter actors' RSS = 10 × that of the {memory['million_meters']:,}-meter run (actors "
            "of 200,000 meters, windows of one interval, as here); the aggregator's RSS = the "
            f"{memory['million_meters']:,}-meter run's + {kib(memory['aggregator_growth_big'])} "
            f"KiB per meter beyond it (its growth from the {model['meters']:,}-meter live runs to "
            "that run, extrapolated tenfold)"
        )
    else:
        basis = (
            "meter actors' memory = actors × one actor's RSS + meters × the private KiB per meter "
            "(live); the aggregator's from its live per-meter growth (extrapolated a hundredfold)"
        )
    return f"""\
Sizing for 10,000,000 meters, live, in 50 meter actors of 200,000 meters. Cores = the fixed
cores + readings/s × the live µs per reading (the speed-max column divides by the readings/s per
core instead); the aggregator's cores from its own live fit; {basis}; the home node's object
store that holds one single-interval window in flight and one queued within the runtime's byte
budget (`runtime.window_budget`: a quarter of that store, 256 bytes a reading; smaller, and Ray
spills); InfluxDB bytes at that interval's line-protocol size (GB/day uncompressed, before
InfluxDB's own compression on disk); `s to store one interval`: the whole fleet's readings of
one interval ÷ the best one-node readings/s at speed max (a window's burst, the floor of the tick
lag at this size). The 1-minute row extrapolates the live CPU fit beyond the largest live rate
measured ({model["meters"]:,} readings/s)."""


def signed_share(value: float, reference: float) -> str:
    """``12% below`` / ``8% above`` ``reference``."""
    share = value / reference - 1
    return f"{abs(share):.0%} {'below' if share < 0 else 'above'}"


def split_text(split: dict[int, dict[str, Any]]) -> str:
    if len(split) < 2:
        return ""
    parts = [
        f"{n} aggregator{'s' if n > 1 else ''}: {v['rows_per_s']:,.0f} readings/s, "
        f"{v['aggregator_cores']:.2f} cores busy storing"
        for n, v in sorted(split.items())
    ]
    return "; ".join(parts)


def capacity_text(model: dict[str, Any]) -> str:
    single = model["single"]
    cluster = model.get("cluster")
    memory = model["memory"]
    influx = model["influx"]
    live_cpu = model["live_cpu"]
    overhead = ""
    if cluster:
        overhead = (
            f"; on three raylets {cluster['per_core']:,.0f} ({cluster['rows_per_s']:,.0f}/s, "
            f"{actors_text(cluster['actors'])}, {aggregators_text(cluster['aggregators'])}, "
            f"{cluster['per_cpu_s']:,.0f} per CPU-second: "
            f"{signed_share(cluster['rows_per_s'], single['rows_per_s'])} one node on the same "
            f"cores; Ray's daemons spent {cluster['ray_us']:.2f} µs per reading against "
            f"{single['ray_us']:.2f} on one node, moving windows between object stores)"
        )
    splits = [
        f"{TOPOLOGY_NAMES[t]}, 6 meter actors: {split_text(model[t]['split'])}"
        for t in ("single", "cluster")
        if t in model and split_text(model[t]["split"])
    ]
    slope = memory["aggregator_slope"]
    million_note = (
        f"; {mib(memory['million_aggregator_rss'])} MiB RSS at {memory['million_meters']:,} "
        "meters at speed max"
        if memory["million_aggregator_rss"]
        else ""
    )
    lines = [
        f"Figures from the {model['meters']:,}-meter rows above (best configuration per topology):",
        "",
        f"- **Readings/s per core** (speed max): {single['per_core']:,.0f} on one node "
        f"({single['rows_per_s']:,.0f}/s ÷ {CORES} cores, {actors_text(single['actors'])}, "
        f"{aggregators_text(single['aggregators'])}; {single['per_cpu_s']:,.0f} readings per "
        f"CPU-second of the simulator and Ray){overhead}. Live (real time, one interval per "
        f"window) the CPU grows by {live_cpu['us_per_reading']:.2f} µs per reading/s above a "
        f"fixed {live_cpu['fixed_cores']:.2f} cores (clock, aggregator, Ray and this benchmark's "
        f"status polls; fitted on the {live_cpu['sizes'][0]:,}- and "
        f"{live_cpu['sizes'][-1]:,}-meter one-node runs of each packing), "
        f"i.e. {1e6 / live_cpu['us_per_reading']:,.0f} readings/s per extra busy core.",
        f"- **Storage costs the most CPU**: per reading at speed max the meter actors spend "
        f"{single['meter_us']:.2f} CPU-µs and storage {single['aggregator_us']:.2f} µs (live: "
        f"{live_cpu['aggregator_us_per_reading']:.2f} µs per reading/s). An aggregator is one "
        "process, so its CPU alone bounds one aggregator near "
        f"{1e6 / single['aggregator_us']:,.0f} readings/s (Parquet; it was "
        f"{single['aggregator_cores']:.2f} cores busy at the {single['rows_per_s']:,.0f}/s "
        "measured) however many meter actors and nodes are added. `--aggregators N` splits "
        "storage over N actors, all on the home node"
        + (f" ({'; '.join(splits)})" if splits else "")
        + ": on 2 cores a second aggregator only competes for them; beyond one home node's "
        "cores, split the fleet into separate runs.",
        f"- **Memory per meter**: at speed max the meter actors' RSS is "
        f"{kib(memory['speed_rss_per_meter'])} KiB per meter "
        f"({actors_text(memory['speed_actors'])}; window buffers and object-store pages, bounded "
        "per actor by the ~200,000-row call); "
        f"live it is {kib(memory['live_rss_per_meter'])} KiB RSS per meter "
        f"({actors_text(memory['live_actors'])}), of which "
        f"{kib(memory['live_marginal_per_meter'])} KiB private once the "
        f"{mib(memory['actor_anon'])} MiB private of each actor process is taken out (each "
        f"actor process: {mib(memory['actor_rss'])} MiB RSS). The aggregator's private memory "
        f"grows by {slope / 1024:,.2f} KiB per meter live ({live_cpu['sizes'][0]:,} → "
        f"{live_cpu['sizes'][-1]:,} meters{million_note}):"
        " it holds whole windows (one interval of every meter, 256 bytes a reading) on their way "
        "to storage, and reads each Parquet part's rows back from its journal to write the "
        "part (every 1,000,000 rows, or one whole window when a window is larger).",
        "- **Bytes/s to InfluxDB per 10,000 meters**: "
        + ", ".join(
            f"{influx[k]['bytes_per_s_per_10k']:,.0f} B/s at {INTERVAL_NAMES[k]} intervals "
            f"({influx[k]['bytes_per_reading']:.0f} bytes a reading)"
            for k in (900, 60, 1)
            if k in influx
        )
        + ".",
        "",
        sizing_intro(model),
        "",
        markdown(*sizing_rows(model)),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
