"""Benchmark: does a fleet of 10,000 DERs follow a broadcast DER change within one pollRate?

Issue 14's last claim: "a fleet of 10,000 generated DERs follows a broadcast DefaultDERControl
change within one poll period plus the randomisation window". Measured here on loopback:

1. the first ``--meters`` generated meters (``generate_fleet``, seed 7) that have PV and/or a
   battery, each with its own certificate (``pki.init_certs``, in a temporary directory);
2. the built-in TLS server (aiohttp, mutual TLS, in-process registry) in a child process, its
   pollRate ``--poll-rate`` seconds, a DefaultDERControl already set (export limit 100 kW);
3. ``--actors`` client processes, each one ``MeterClients`` (one event loop thread, as a meter
   actor runs them) whose meters carry a DER poller only (``DerPoller``, the poller
   ``MeterFunctionSets`` gives a meter with PV or a battery; post mode ``off``: no readings are
   mirrored). The benchmark's poller is a ``DerPoller`` that also notes the client's wall time
   at which it first holds each DefaultDERControl and DERControl (right after it merged a poll).
   The meters come online evenly over ``--spread`` s (default one pollRate; ``--groups``
   ``MeterClients`` per process started one after the other), as a fleet whose devices were
   switched on at different times: a meter polls at a fixed phase from its registration, so a
   fleet started at once polls in a herd (``--spread 0`` shows it);
4. once every meter is registered and holds the initial default, the operator sets a new
   DefaultDERControl (export limit 0 kW) at t0 (the server's wall time when it applied it).
   Adoption time = (first wall time a meter's poller holds it) − t0, s, per meter;
5. ``--control-after`` s after t0 (default half a pollRate, so both fit in 1.5 pollRates),
   while the fleet is still taking the new default, the operator creates a broadcast
   DERControl (opModMaxLimW 50 %, start = now = t1, one hour, randomizeStart ``--randomize``
   s). Learned = first wall time it is held − t1, s. Each meter's effective start is what the
   model does with the control as its poller learned it
   (``MeterFunctionSets.model_inputs`` → ``model.der.control_window``): start + the meter's own
   randomizeStart draw, which must lie in [start, start + R]. The meter follows the event from
   max(learned, effective start): within pollRate + R of t1 is the claim.

Reported: per phase the distribution of those times (p50, p95, p99, max, s) relative to the
pollRate, how many meters were later than pollRate + ``--slack`` and how many never got it;
server and client CPU (% of one core) and server requests/s meanwhile; the load average. The
claim holds when max ≤ pollRate + slack. Writes ``benchmarks/results/der_fleet.md`` and, with
matplotlib, ``der_fleet_adoption.png`` (CDF of both phases). Loopback only, stops by itself
(every wait is bounded: registration by spread + 180 s, the initial default by a pollRate +
60 s, the change by 1.5 pollRates + slack after it).

    .venv/bin/python benchmarks/der_fleet.py [--meters 10000] [--poll-rate 180] [--actors 4]
        [--spread S] [--groups 8] [--randomize 300] [--slack 10] [--certs-dir DIR (kept,
        reused)] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing as mp
import os
import resource
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    machine,
    process_cpu_s,
    table,
    write_summary,
)

HOST = "127.0.0.1"
SEED = 7
CAMPUS_CONFIG = REPO / "config" / "utcc_campus_config.json"
INITIAL_EXPORT_KW = 100.0
NEW_EXPORT_KW = 0.0
CONTROL_MAX_LIM_PCT = 50.0
CONTROL_DURATION_S = 3600


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def der_fleet(n_der: int):
    """(fleet size, indices): the smallest generated fleet (seed SEED) holding ``n_der`` meters
    with PV and/or a battery, and the indices of its first ``n_der`` such meters."""
    from gtx_ray.fleet import generate_fleet, load_campus

    campus = load_campus(CAMPUS_CONFIG)
    size = int(n_der / 0.6) + 10
    while True:
        fleet = generate_fleet(campus, size, SEED)
        has_der = (fleet.inverter_kw > 0) | ((fleet.battery_kwh > 0) & (fleet.battery_kw > 0))
        found = np.flatnonzero(has_der)
        if len(found) >= n_der:
            return size, found[:n_der]
        size = int(size * 1.1) + 10


# --- server (child process) ------------------------------------------------------------------


def _serve(certs_dir: str, poll_rate_s: int, conn) -> None:
    """The built-in server on its own loop thread; this process's main thread runs the
    operator's commands from ``conn``: ("admin", action name, kwargs) → (server wall time when
    applied, result); ("stats",) → the front's counters; ("stop",)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from gtx_ray.ieee2030_5.server.backend import LocalBackend
    from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config, build_registry
    from gtx_ray.ieee2030_5.server.managers import admin_der
    from gtx_ray.ieee2030_5.server.tls_server import Ieee2030_5Server

    config = Ieee2030_5Config(
        certs_dir=Path(certs_dir), host=HOST, port=0, poll_rate_s=poll_rate_s, post_rate_s=900
    )
    registry = build_registry(config, int(time.time()))
    server = Ieee2030_5Server(config, LocalBackend(registry))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    conn.send(server.port)

    def on_loop(fn, *args, **kwargs):
        async def run():
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(60)

    def admin(name: str, kwargs: dict):
        def apply():
            at = time.time()
            return at, getattr(admin_der, name)(registry, int(at), **kwargs)

        return on_loop(apply)

    while True:
        command = conn.recv()
        if command[0] == "admin":
            conn.send(admin(command[1], command[2]))
        elif command[0] == "stats":
            try:
                stats = on_loop(lambda: {**server.stats(), "devices": len(registry.devices())})
            except TimeoutError:
                stats = {"error": "the server's loop did not answer within 60 s"}
            conn.send(stats)
        else:
            break
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    conn.send("stopped")


# --- one client process ("meter actor") ------------------------------------------------------


def _client_proc(
    certs_dir: str, fleet_size: int, indices, url: str, slot: int, slots: int, groups: int, conn
) -> None:
    """The 2030.5 clients of ``indices`` of the fleet, each with a timed DER poller, in
    ``groups`` ``MeterClients`` (this process is ``slot`` of ``slots``). On ("go", at, spread_s)
    group g comes online at ``at + spread_s × (g × slots + slot) / (groups × slots)`` (wall s),
    so the fleet's meters come online evenly over ``spread_s``; then answers the parent's
    questions until ("stop",)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from gtx_ray.fleet import generate_fleet, load_campus
    from gtx_ray.ieee2030_5.client.der import DerPoller, DerRatings
    from gtx_ray.ieee2030_5.client.fleet import MeterClients
    from gtx_ray.ieee2030_5.client.function_sets import MeterFunctionSets
    from gtx_ray.ieee2030_5.client.settings import ClientSettings
    from gtx_ray.ieee2030_5.events import mrid_hex
    from gtx_ray.model.controls import device_category_of
    from gtx_ray.model.der import DerMeters, control_window
    from gtx_ray.model.inputs import ModelInputs

    class TimedDerPoller(DerPoller):
        """A DerPoller that notes when (client wall time, s) it first held each default and
        control, keyed ``default:MRID`` / ``control:MRID``."""

        def __init__(self, *args) -> None:
            super().__init__(*args)
            self.first_held: dict[str, float] = {}

        def _merge(self, seen, default, now) -> None:  # the moment the poller holds them
            super()._merge(seen, default, now)
            at = time.time()
            if default is not None:
                self.first_held.setdefault("default:" + mrid_hex(default[0].mrid), at)
            for mrid in seen:
                self.first_held.setdefault("control:" + mrid_hex(mrid), at)

    campus = load_campus(CAMPUS_CONFIG)
    meters = generate_fleet(campus, fleet_size, SEED).take(np.asarray(indices))
    ids = [str(m) for m in meters.meter_id]
    categories = device_category_of(meters.meter_type)
    sets = MeterFunctionSets(dict(zip(ids, categories.tolist(), strict=True)))
    for i, meter_id in enumerate(ids):
        ratings = DerRatings(
            float(meters.inverter_kw[i]), float(meters.battery_kwh[i]), float(meters.battery_kw[i])
        )
        sets.der[meter_id] = TimedDerPoller(int(categories[i]), ratings)
    bounds = [round(g * len(ids) / groups) for g in range(groups + 1)]
    fleets = [
        MeterClients(
            certs_dir,
            ids[lo:hi],
            url,
            post_mode="off",
            interval_s=900,
            settings=ClientSettings(backoff_base_s=1.0, backoff_cap_s=30.0),
            pollers=lambda meter_id: [sets.der[meter_id]],
        )
        for lo, hi in itertools.pairwise(bounds)
        if hi > lo
    ]
    der_meters = DerMeters(
        meter_id=np.asarray(meters.meter_id, dtype=object),
        key=np.asarray(meters.key, dtype=np.uint64),
        category=categories,
        inverter_kw=meters.inverter_kw,
        battery_kw=np.where(meters.battery_kwh > 0, meters.battery_kw, 0.0),
    )
    conn.send(("ready", os.getpid()))
    _, online_at, spread_s = conn.recv()
    started = time.monotonic()

    def start_groups() -> None:
        for g, group in enumerate(fleets):
            _sleep_until(online_at + spread_s * (g * slots + slot) / (len(fleets) * slots))
            group.start()

    starter = threading.Thread(target=start_groups, daemon=True)
    starter.start()
    while True:
        command = conn.recv()
        if command[0] == "registered":
            conn.send(sum(c.status()["registered"] for f in fleets for c in f.clients))
        elif command[0] == "holding":  # how many pollers hold the key
            conn.send(sum(command[1] in p.first_held for p in sets.der.values()))
        elif command[0] == "cpu":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            conn.send(usage.ru_utime + usage.ru_stime)
        elif command[0] == "times":  # per meter: first time held of each key, nan: never
            conn.send(
                {
                    key: np.array([sets.der[m].first_held.get(key, np.nan) for m in ids])
                    for key in command[1]
                }
            )
        elif command[0] == "window":  # per meter: the model's begin of the control − its start
            wanted = command[1]
            learned = [
                c for c in sets.model_inputs(ModelInputs()).der_controls if c.event_id == wanted
            ]
            if not learned:
                conn.send(None)
                continue
            control = learned[0]
            begin, _ = control_window(control, SEED, der_meters)
            holders = np.array([m in (control.meter_ids or ids) for m in ids])
            conn.send(
                {
                    "offset_s": np.where(holders, begin - control.start_s, np.nan),
                    "randomize_start_s": control.randomize_start_s,
                    "start_s": control.start_s,
                }
            )
        elif command[0] == "status":
            rows = [r for f in fleets for r in f.status()]
            der = [r.get("function_sets", {}).get("der", {}) for r in rows]
            conn.send(
                {
                    "registered": sum(r["registered"] for r in rows),
                    "registrations": sum(r["registrations"] for r in rows),
                    "requests": sum(r["requests"] for r in rows),
                    "der_polls": sum(d.get("polls", 0) for d in der),
                    "der_errors": sum(d.get("errors", 0) for d in der),
                    "responses_posted": sum(d.get("responses_posted", 0) for d in der),
                    "errors": [
                        f"{r['meter_id']}: {r['last_error']}" for r in rows if r["last_error"]
                    ][:3]
                    + [
                        f"{r['meter_id']}: der {d['last_error']}"
                        for r, d in zip(rows, der, strict=True)
                        if d.get("last_error")
                    ][:3],
                    "uptime_s": round(time.monotonic() - started, 1),
                }
            )
        else:
            break
    starter.join(spread_s + 10)
    stoppers = [threading.Thread(target=g.stop, args=(2.0,)) for g in fleets]  # all at once
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(15)
    conn.send("stopped")


def _sleep_until(wall_s: float) -> None:
    delay = wall_s - time.time()
    if delay > 0:
        time.sleep(delay)


# --- the run ---------------------------------------------------------------------------------


class Fleet:
    """The server process and the client processes, driven over pipes."""

    def __init__(
        self,
        certs_dir: Path,
        fleet_size: int,
        indices,
        actors: int,
        groups: int,
        poll_rate_s: int,
    ):
        ctx = mp.get_context("spawn")
        self.server_pipe, child = ctx.Pipe()
        self.server = ctx.Process(target=_serve, args=(str(certs_dir), poll_rate_s, child))
        self.server.start()
        if not self.server_pipe.poll(60):
            raise SystemExit("the server did not start within 60 s")
        self.port = self.server_pipe.recv()
        url = f"https://{HOST}:{self.port}"
        self.pipes, self.procs = [], []
        bounds = [round(i * len(indices) / actors) for i in range(actors + 1)]
        for slot, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_client_proc,
                args=(
                    str(certs_dir),
                    fleet_size,
                    list(indices[lo:hi]),
                    url,
                    slot,
                    actors,
                    groups,
                    child,
                ),
                daemon=True,
            )
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for p in self.pipes:
            if not p.poll(300):
                raise SystemExit("a client process did not start within 300 s")
            p.recv()

    def go(self, spread_s: float) -> float:
        """Bring the meters online evenly over ``spread_s`` from now; returns now (wall s)."""
        at = time.time() + 0.5
        for p in self.pipes:
            p.send(("go", at, spread_s))
        return at

    def ask(self, *command) -> list:
        """Send ``command`` to every client process; their answers in order."""
        for p in self.pipes:
            p.send(command)
        return [p.recv() for p in self.pipes]

    def total(self, *command) -> int:
        return sum(self.ask(*command))

    def admin(self, action: str, **kwargs) -> tuple[float, dict]:
        self.server_pipe.send(("admin", action, kwargs))
        return self.server_pipe.recv()

    def server_stats(self) -> dict:
        self.server_pipe.send(("stats",))
        return self.server_pipe.recv()

    def cpu(self) -> tuple[float, float]:
        """(server, clients) CPU seconds so far."""
        return process_cpu_s(self.server.pid), self.total("cpu")

    def close(self) -> None:
        for p, proc in zip(self.pipes, self.procs, strict=True):
            with contextlib.suppress(OSError, EOFError):
                p.send(("stop",))
                if p.poll(20):
                    p.recv()
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
        with contextlib.suppress(OSError, EOFError):
            self.server_pipe.send(("stop",))
            if self.server_pipe.poll(40):
                self.server_pipe.recv()
        self.server.join(10)
        if self.server.is_alive():
            self.server.terminate()


def wait_for(fleet: Fleet, what: str, command: tuple, n: int, until: float, every_s: float = 2.0):
    """Ask the clients ``command`` every ``every_s`` until the total reaches ``n`` or the wall
    time ``until``; prints progress; returns the last total."""
    last_print = 0.0
    while True:
        done = fleet.total(*command)
        now = time.time()
        if done >= n or now >= until:
            print(f"  {what}: {done:,}/{n:,}", flush=True)
            return done
        if now - last_print >= 15:
            print(f"  {what}: {done:,}/{n:,}", flush=True)
            last_print = now
        time.sleep(min(every_s, max(0.05, until - now)))


def distribution(values_s: np.ndarray) -> dict:
    """p50, p95, p99, max of the finite values, s, and how many are missing (nan)."""
    got = values_s[np.isfinite(values_s)]
    if not len(got):
        return {"count": 0, "never": len(values_s)}
    p50, p95, p99 = np.percentile(got, [50, 95, 99])
    return {
        "count": len(got),
        "never": int(np.isnan(values_s).sum()),
        "min": float(got.min()),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(got.max()),
    }


def phase_usage(fleet: Fleet, before: dict, wall_s: float) -> dict:
    """Server and client CPU (% of one core) and server requests/s since ``before``."""
    server_cpu, client_cpu = fleet.cpu()
    stats = fleet.server_stats()
    return {
        "server_cpu_pct": 100 * (server_cpu - before["server_cpu"]) / wall_s,
        "client_cpu_pct": 100 * (client_cpu - before["client_cpu"]) / wall_s,
        "requests_per_s": (_requests(stats) - _requests(before["stats"])) / wall_s,
        "loadavg": _loadavg(),
    }


def _requests(stats: dict) -> int:
    """Requests the server answered so far (any status)."""
    return int(stats.get("requests", 0))


def snapshot(fleet: Fleet) -> dict:
    server_cpu, client_cpu = fleet.cpu()
    return {"server_cpu": server_cpu, "client_cpu": client_cpu, "stats": fleet.server_stats()}


def run(args, certs_dir: Path, fleet_size: int, indices) -> dict:
    n = len(indices)
    p, slack = args.poll_rate, args.slack
    spread = p if args.spread is None else args.spread
    out: dict = {"meters": n, "poll_rate_s": p, "slack_s": slack, "randomize_s": args.randomize}
    out["spread_s"] = spread
    print(f"server pollRate {p} s; starting the server and {args.actors} client processes")
    fleet = Fleet(certs_dir, fleet_size, indices, args.actors, args.groups, p)
    try:
        _, first = fleet.admin("set_default_der_control", export_limit_kw=INITIAL_EXPORT_KW)
        initial = "default:" + first["mrid"]
        print(f"meters come online over {spread:g} s")
        started = fleet.go(spread)
        got = wait_for(fleet, "registered", ("registered",), n, started + spread + 180)
        out["registration_s"] = round(time.time() - started, 1)
        if got < n:
            out["error"] = f"only {got:,} of {n:,} meters registered"
            return out
        got = wait_for(
            fleet, "hold the initial default", ("holding", initial), n, time.time() + p + 60
        )
        out["ready_s"] = round(time.time() - started, 1)
        if got < n:
            out["error"] = f"only {got:,} of {n:,} meters read the initial default"
            return out
        out["status_before"] = fleet.ask("status")

        # 1. the DefaultDERControl changes at t0
        before = snapshot(fleet)
        t0, new = fleet.admin("set_default_der_control", export_limit_kw=NEW_EXPORT_KW)
        default_key = "default:" + new["mrid"]
        print(f"t0: DefaultDERControl {new['mrid']} (export limit {NEW_EXPORT_KW:g} kW)")
        after = p / 2 if args.control_after is None else args.control_after
        wait_for(fleet, "hold the new default", ("holding", default_key), n, t0 + after)

        # 2. a broadcast DERControl starting now, randomizeStart R, at t1 = t0 + control_after
        t1, control = fleet.admin(
            "create_der_control",
            start=int(time.time()),
            duration_s=CONTROL_DURATION_S,
            max_lim_w_pct=CONTROL_MAX_LIM_PCT,
            randomize_start_s=args.randomize,
        )
        key = "control:" + control["mrid"]
        print(f"t1: DERControl {control['mrid']} start {control['start']}, R {args.randomize} s")
        wait_for(fleet, "hold the new default", ("holding", default_key), n, t0 + 1.5 * p + slack)
        out["default_waited_s"] = round(time.time() - t0, 1)
        wait_for(fleet, "learned the control", ("holding", key), n, t1 + 1.5 * p + slack)
        t = time.time()
        out["usage"] = phase_usage(fleet, before, t - t0)
        out["usage"]["window_s"] = round(t - t0, 1)
        adopted = np.concatenate([a[default_key] for a in fleet.ask("times", [default_key])]) - t0
        out["default"] = distribution(adopted)
        out["default_late"] = int((adopted > p + slack).sum())
        out["control_after_s"] = round(t1 - t0, 1)
        learned = np.concatenate([a[key] for a in fleet.ask("times", [key])]) - t1
        windows = fleet.ask("window", control["mrid"])
        if any(w is None for w in windows):
            out["error"] = "a client process's model did not get the control"
            return out
        offset = np.concatenate([w["offset_s"] for w in windows])
        start_s = control["start"]
        begin = start_s - t1 + offset  # the meter's effective start, s after t1
        follows = np.maximum(learned, begin)  # nan where never learned
        out["learned"] = distribution(learned)
        out["learned_late"] = int((learned > p + slack).sum())
        out["offset"] = distribution(offset)
        out["offset_outside"] = int(
            ((offset < 0) | (offset > args.randomize) | np.isnan(offset)).sum()
        )
        out["follows"] = distribution(follows)
        out["follows_late"] = int((follows > p + args.randomize + slack).sum())
        out["control_waited_s"] = round(t - t1, 1)
        responses = fleet.admin("get_der_control", control_id=control["id"])[1]["responses"]
        out["server_responses"] = responses
        out["status_after"] = fleet.ask("status")
        out["server_stats"] = fleet.server_stats()
        out["adopted_s"] = adopted
        out["learned_s"] = learned
        out["follows_s"] = follows
    finally:
        fleet.close()
    return out


# --- report ----------------------------------------------------------------------------------


def rows_of(out: dict) -> list[list]:
    p, r, slack = out["poll_rate_s"], out["randomize_s"], out["slack_s"]

    def row(name, d, bound, late, ratio=True):
        if not d.get("count"):
            return [name, "-", "-", "-", "-", "-", bound, "-", d.get("never", "-")]
        return [
            name,
            f"{d['p50']:.1f}",
            f"{d['p95']:.1f}",
            f"{d['p99']:.1f}",
            f"{d['max']:.1f}",
            f"{d['max'] / p:.2f}" if ratio else "-",
            bound,
            late,
            d["never"],
        ]

    return [
        row("default change held", out["default"], f"{p} + {slack}", out["default_late"]),
        row("control learned", out["learned"], f"{p} + {slack}", out["learned_late"]),
        row("control start offset", out["offset"], f"[0, {r}]", out["offset_outside"], False),
        row("control followed", out["follows"], f"{p} + {r} + {slack}", out["follows_late"]),
    ]


HEADERS = ["s after the change", "p50", "p95", "p99", "max", "max/pollRate", "bound", "over"]
HEADERS += ["never"]


def usage_rows(out: dict) -> list[list]:
    u = out["usage"]
    return [
        [
            f"t0 .. t0 + {u['window_s']:g} s",
            f"{u['requests_per_s']:.0f}",
            f"{u['server_cpu_pct']:.0f}",
            f"{u['client_cpu_pct']:.0f}",
            u["loadavg"],
        ]
    ]


def plot(out: dict, path: Path) -> bool:
    """CDF of the adoption times of both phases; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, r = out["poll_rate_s"], out["randomize_s"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, key, color in (
        ("new DefaultDERControl held", "adopted_s", "#d8463b"),
        ("DERControl learned", "learned_s", "#3b6fd8"),
        (f"DERControl followed (randomizeStart {r} s)", "follows_s", "#2e9e57"),
    ):
        values = np.sort(out[key][np.isfinite(out[key])])
        ax.plot(values, np.arange(1, len(values) + 1) / len(out[key]), color=color, label=name)
    ax.axvline(p, color="black", linestyle="--", linewidth=0.8, label=f"pollRate {p} s")
    ax.axvline(p + r, color="#2e9e57", linestyle=":", linewidth=0.8, label="pollRate + R")
    ax.set_xlabel("seconds after the operator's change")
    ax.set_ylabel("share of the fleet")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"{out['meters']:,} DERs, IEEE 2030.5 over mutual TLS on loopback")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=10_000, help="DER meters (default 10,000)")
    parser.add_argument("--actors", type=int, default=4, help="client processes (default 4)")
    parser.add_argument(
        "--spread",
        type=float,
        help="s over which the meters come online (default: the pollRate; 0: all at once)",
    )
    parser.add_argument(
        "--groups", type=int, default=8, help="MeterClients per client process (default 8)"
    )
    parser.add_argument("--poll-rate", type=int, default=180, help="server pollRate, s")
    parser.add_argument("--randomize", type=int, default=300, help="randomizeStart R, s")
    parser.add_argument(
        "--control-after",
        type=float,
        help="s after the default change the DERControl is created (default pollRate / 2)",
    )
    parser.add_argument("--slack", type=float, default=10.0, help="processing slack, s")
    parser.add_argument("--certs-dir", type=Path, help="certificates kept here (reused)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    # SIGTERM ends the run like Ctrl-C: the server and client processes are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not 1 <= args.meters <= 16_000 or not 1 <= args.actors <= 16:
        parser.error("--meters 1..16000, --actors 1..16")
    if not 5 <= args.poll_rate <= 900 or not 0 <= args.randomize <= 3600:
        parser.error("--poll-rate 5..900 s, --randomize 0..3600 s")

    from gtx_ray.fleet import generate_fleet, load_campus
    from gtx_ray.ieee2030_5.pki import init_certs

    fleet_size, indices = der_fleet(args.meters)
    fleet = generate_fleet(load_campus(CAMPUS_CONFIG), fleet_size, SEED)
    ids = [str(fleet.meter_id[i]) for i in indices]
    pv = int((fleet.inverter_kw[indices] > 0).sum())
    battery = int((fleet.battery_kwh[indices] > 0).sum())
    print(f"{len(ids):,} DER meters ({pv:,} with PV, {battery:,} with a battery) of {fleet_size:,}")
    load_before = _loadavg()
    with contextlib.ExitStack() as stack:
        if args.certs_dir is None:
            certs_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gtx_der_")))
        else:
            certs_dir = args.certs_dir
        t = time.monotonic()
        init_certs(certs_dir, ids)
        print(f"{len(ids):,} meter certificates in {time.monotonic() - t:.1f} s", flush=True)
        out = run(args, certs_dir, fleet_size, indices)
    if "error" in out:
        print(f"FAILED: {out['error']}")
        for key in ("status_before", "status_after"):
            if key in out:
                print(key, out[key])
        return 1

    p, r, slack = args.poll_rate, args.randomize, args.slack
    holds = out["default"].get("max", np.inf) <= p + slack and out["default"]["never"] == 0
    follows = out["follows"].get("max", np.inf) <= p + r + slack and out["follows"]["never"] == 0
    inside = out["offset_outside"] == 0
    verdict = (
        f"claim: every DER holds the new default within pollRate + slack ({p} + {slack:g} s): "
        f"{'yes' if holds else 'NO'}; follows the DERControl within pollRate + R + slack: "
        f"{'yes' if follows else 'NO'}; every start offset in [0, R]: {'yes' if inside else 'NO'}"
    )
    title = (
        f"{out['meters']:,} DERs ({pv:,} PV, {battery:,} battery), pollRate {p} s, "
        f"randomizeStart R {r} s, {args.actors} client processes; online over "
        f"{out['spread_s']:g} s, all registered after {out['registration_s']} s"
    )
    main_table = table(HEADERS, rows_of(out))
    usage = table(
        ["phase", "server req/s", "server CPU %", "clients CPU %", "load average"],
        usage_rows(out),
    )
    totals = {
        k: sum(s[k] for s in out["status_after"])
        for k in ("registrations", "requests", "der_polls", "der_errors", "responses_posted")
    }
    errors = [e for s in out["status_after"] for e in s["errors"]][:5]
    notes = (
        f"server: {out['server_stats']}\nclients: {totals}\n"
        f"DERControl responses at the server: {out['server_responses']}"
        + (f"\nlast errors: {errors}" if errors else "")
    )
    print()
    print(f"DER fleet — {machine()}")
    print(title)
    print(main_table)
    print(usage)
    print(notes)
    print(verdict)
    if args.no_write:
        return 0
    png = RESULTS_DIR / "der_fleet_adoption.png"
    drawn = plot(out, png)
    argv = sys.argv[1:]  # without --certs-dir and its value (a local path)
    for i, a in enumerate(argv):
        if a == "--certs-dir":
            argv = argv[:i] + argv[i + 2 :]
            break
    argv = [a for a in argv if not a.startswith("--certs-dir=")]
    command = ".venv/bin/python benchmarks/der_fleet.py " + shlex.join(argv)
    intro = INTRO.format(p=p, r=r, slack=slack, load_before=load_before)
    if drawn:
        intro += f"\n\n![CDF of adoption times]({png.name})"
    write_summary(
        "der_fleet",
        "A fleet of 10,000 DERs follows a broadcast DER change",
        command.strip(),
        intro,
        f"{title}\n\n{main_table}\n\n{usage}\n\n{verdict}",
        notes,
    )
    return 0


INTRO = """\
What it measures: see the module docstring of `benchmarks/der_fleet.py`. Times are seconds after
the operator's change (the server's wall time when it applied it) until each meter's DER poller
first held it (the client's wall time right after the poll that read it); same machine, same
clock. "over": meters later than the bound; "never": meters that did not get it before the
benchmark stopped waiting (1.5 × pollRate + slack). The control's start offset is the model's
per-meter randomizeStart draw (`control_window`), "followed" = max(learned, effective start).
pollRate {p} s, randomizeStart R {r} s, slack {slack:g} s. Load average before the run:
{load_before}."""


if __name__ == "__main__":
    sys.exit(main())
