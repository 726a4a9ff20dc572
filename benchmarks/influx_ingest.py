"""InfluxDB 1.x ingest: the raw ceiling versus gtx_ray's simulate + convert + write path, for the
same points on the same throwaway influxd in one run.

(a) ceiling: the points are turned into line protocol ahead of time (written to a temp file) and a
    minimal client (http.client, one keep-alive connection per thread) posts them to ``/write`` at
    each batch size × concurrency; (b) end to end: a generated fleet stepped by MeterModel (one
    window of ``--window`` intervals per call, in a producer thread like the meter actors) and
    handed to InfluxSink.write with the best ceiling's batch size and concurrency. Each run writes
    into a fresh database that is counted (every point must be there) and dropped afterwards.

    .venv/bin/python -m benchmarks.influx_ingest                      # ~2–3 minutes, 1 M points
    .venv/bin/python -m benchmarks.influx_ingest --meters 1000 --days 730 --skip-ceiling  # 70 M

Prints the tables and writes ``influx_ingest.md`` (and ``influx_ingest.png``, points/s of every
ceiling cell and of the end-to-end runs, when the ceiling is measured) in ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import mmap
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from benchmarks.common import RESULTS_DIR, machine, table, write_summary
from gtx_ray.fleet import generate_fleet, load_campus
from gtx_ray.model.meters import MeterModel
from gtx_ray.readings import FIELD_COLUMNS
from gtx_ray.settings import DEFAULT_CONFIG
from gtx_ray.storage.influx import InfluxConfig, InfluxSink, influxql, quote_identifier
from gtx_ray.storage.line_protocol import to_line_protocol
from tests.servers import ServerUnavailable, influxd_server

START_S = 1_704_067_200  # 2024-01-01T00:00:00Z
INTERVAL_S = 900


def make_model(args: argparse.Namespace) -> MeterModel:
    campus = load_campus(DEFAULT_CONFIG)
    return MeterModel(generate_fleet(campus, args.meters, args.seed), campus, args.seed, INTERVAL_S)


def windows(model: MeterModel, days: int, window: int):
    """The benchmark's readings, one RecordBatch per window of ``window`` intervals."""
    state = model.initial_state(START_S)
    left = days * 86_400 // INTERVAL_S
    while left > 0:
        result = model.step(state, min(window, left))
        state = result.state
        left -= result.batch.num_rows // len(model)
        yield result.batch


def prebuild(path: Path, args: argparse.Namespace) -> tuple[mmap.mmap, np.ndarray]:
    """Line protocol of every point in a file, mapped; plus the byte offset after each line."""
    with open(path, "wb") as out:
        for batch in windows(make_model(args), args.days, args.window):
            out.write(to_line_protocol(batch))
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    ends = np.flatnonzero(np.frombuffer(mapped, dtype=np.uint8) == 10) + 1
    return mapped, ends


def post_raw(url: str, db: str, body: mmap.mmap, ends: np.ndarray, batch: int, threads: int):
    """POST the prebuilt lines in requests of ``batch`` lines from ``threads`` connections."""
    parts = urlsplit(url)
    starts = np.r_[0, ends[:-1]]
    chunks = [
        (int(starts[i]), int(ends[min(i + batch, len(ends)) - 1]))
        for i in range(0, len(ends), batch)
    ]
    counter = itertools.count()
    lock = threading.Lock()
    errors: list[str] = []
    view = memoryview(body)
    target = f"/write?db={db}&precision=s"

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        while not errors:
            with lock:
                index = next(counter)
            if index >= len(chunks):
                break
            first, last = chunks[index]
            conn.request(
                "POST", target, body=view[first:last], headers={"Content-Type": "text/plain"}
            )
            response = conn.getresponse()
            data = response.read()
            if response.status != 204:
                errors.append(f"{response.status}: {data[:200]!r}")
        conn.close()

    began = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - began
    view.release()
    if errors:
        raise SystemExit(f"raw client: InfluxDB answered {errors[0]}")
    return elapsed


def end_to_end(url: str, db: str, args: argparse.Namespace, batch: int, threads: int, spool: Path):
    """Simulate (producer thread, bounded queue) → InfluxSink.write; return (points, seconds)."""
    config = InfluxConfig(
        url=url, bucket=db, batch_points=batch, max_in_flight=threads, spool_dir=spool
    )
    handoff: queue.Queue = queue.Queue(maxsize=2)
    model = make_model(args)
    next(windows(model, 1, args.window))  # warm-up (calendar and weather caches)

    def produce() -> None:
        for item in windows(model, args.days, args.window):
            handoff.put(item)
        handoff.put(None)

    points = 0
    began = time.perf_counter()
    with InfluxSink(config) as sink:
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        while (item := handoff.get()) is not None:
            sink.write(item)
            points += item.num_rows
        status = sink.status()
    elapsed = time.perf_counter() - began
    if status["rows_spooled"] or status["rows_rejected"]:
        raise SystemExit(f"end-to-end run spooled or rejected readings: {status}")
    return points, elapsed


def offline_rates(args: argparse.Namespace) -> tuple[float, float]:
    """Simulation and line-protocol rates (readings/s, one thread, no database) for context."""
    sim = conv = 0.0
    rows = 0
    model = make_model(args)
    next(windows(model, 1, args.window))  # warm-up
    generator = windows(model, min(args.days, 7), args.window)
    while True:
        began = time.perf_counter()
        batch = next(generator, None)
        if batch is None:
            break
        middle = time.perf_counter()
        to_line_protocol(batch)
        conv += time.perf_counter() - middle
        sim += middle - began
        rows += batch.num_rows
    return rows / sim, rows / conv


def count_and_drop(config: InfluxConfig, expected: int) -> None:
    rows = influxql(config, "SELECT count(energy_consumed) FROM meter_readings")
    stored = rows[0]["count"] if rows else 0
    influxql(config, f"DROP DATABASE {quote_identifier(config.bucket)}", None)
    if stored != expected:
        raise SystemExit(f"database {config.bucket} holds {stored} points, expected {expected}")


def rss_mib(pid: int, kind: str = "VmRSS") -> float:
    """Resident memory of a process, MiB (``RssAnon``: without file mappings such as the
    prebuilt line-protocol file)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(kind + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class PeakRss:
    """Samples the resident memory of some processes every 0.2 s; ``peaks`` in MiB."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.peaks = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self.pids.items():
                kind = "RssAnon" if pid == os.getpid() else "VmRSS"
                self.peaks[name] = max(self.peaks[name], rss_mib(pid, kind))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def raw_run(url: str, body, ends, points: int, size: int, level: int, tag: str) -> float:
    """One ceiling measurement into a fresh database; points/s."""
    db = f"raw_{tag}_{size}_{level}"
    config = InfluxConfig(url=url, bucket=db)
    influxql(config, f"CREATE DATABASE {db}", None)
    seconds = post_raw(url, db, body, ends, size, level)
    count_and_drop(config, points)
    time.sleep(1)
    return points / seconds


def e2e_run(url: str, args, points: int, size: int, level: int, tag: str, spool: Path, pids):
    """One end-to-end measurement into a fresh database; (points/s, peak RSS MiB per process)."""
    db = f"e2e_{tag}"
    with PeakRss(pids) as rss:
        written, seconds = end_to_end(url, db, args, size, level, spool)
    count_and_drop(InfluxConfig(url=url, bucket=db), points)
    time.sleep(1)
    if written != points:
        raise SystemExit(f"end to end wrote {written} points, expected {points}")
    return points / seconds, rss.peaks


def command_options(args: argparse.Namespace) -> str:
    """The options of this run that differ from the defaults, as typed on the command line."""
    defaults = {"meters": 500, "days": 21, "window": 96, "seed": 1}
    text = "".join(
        f" --{k} {getattr(args, k)}" for k, v in defaults.items() if getattr(args, k) != v
    )
    if args.batch_sizes != "5000,10000":
        text += f" --batch-sizes {args.batch_sizes}"
    if args.concurrency != "1,2,4":
        text += f" --concurrency {args.concurrency}"
    if args.pairs != 2:
        text += f" --pairs {args.pairs}"
    if args.skip_ceiling:
        text += " --skip-ceiling"
    if args.batch:
        text += f" --batch {args.batch}"
    if args.in_flight:
        text += f" --in-flight {args.in_flight}"
    return text


def plot(sweep: list[tuple[int, int, float]], e2e: list[float], size, level, path: Path) -> None:
    """Bars: points/s of each ceiling cell, then each end-to-end run at the chosen setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{b:,} lines\n{c} in flight" for b, c, _ in sweep]
    labels += [f"end to end {i + 1}\n{size:,} / {level}" for i in range(len(e2e))]
    values = [r / 1e3 for _, _, r in sweep] + [e / 1e3 for e in e2e]
    colours = ["#bbb"] * len(sweep) + ["#3b7dd8"] * len(e2e)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(labels, values, color=colours)
    ax.set_ylabel("points written per second (thousands)")
    ax.set_title(
        f"InfluxDB 1.x ingest: raw ceiling (grey) and gtx_ray end to end — {os.cpu_count()} cores"
    )
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


INTRO = """\
How fast readings reach InfluxDB 1.x ({server}, loopback), and how much of that gtx_ray's own path
keeps. Every run writes the same {points:,} points ({meters} generated meters × {days} days ×
96 15-minute intervals, {fields} float fields and 4 tags each) into a fresh database, counts them
(every point must be there) and drops it. (a) The ceiling: the points turned into line protocol
beforehand and posted by a minimal client (http.client, one keep-alive connection per request in
flight) at each batch size × concurrency. (b) End to end: the same fleet stepped by `MeterModel`
({window} intervals per call, in a producer thread as in a meter actor), converted to line protocol
and written by `InfluxSink.write` at the best ceiling setting, alternating with the ceiling so both
see the same machine. points/s = points stored per wall second; the ratio is end to end / ceiling
(100 % = gtx_ray adds nothing). Peak RSS is resident memory in MiB (the benchmark's anonymous
memory, without the mapped line-protocol file). InfluxDB, the client and the simulation share the
same cores; load average {load:.1f} at the start."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=500, help="generated meters (default 500)")
    parser.add_argument("--days", type=int, default=21, help="simulated days (default 21)")
    parser.add_argument("--window", type=int, default=96, help="intervals per model step")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-sizes", default="5000,10000", help="lines per request")
    parser.add_argument("--concurrency", default="1,2,4", help="requests in flight")
    parser.add_argument(
        "--pairs", type=int, default=2, help="ceiling/end-to-end pairs at the best setting"
    )
    parser.add_argument("--skip-ceiling", action="store_true", help="end to end only")
    parser.add_argument("--batch", type=int, help="batch size to compare (default: best sweep)")
    parser.add_argument("--in-flight", type=int, help="in flight to compare (default: best)")
    parser.add_argument("--url", help="use this InfluxDB 1.x instead of a throwaway influxd")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for .md and .png")
    args = parser.parse_args()
    if min(args.meters, args.days, args.window, args.pairs) < 1:
        parser.error("--meters, --days, --window and --pairs must be at least 1")
    try:
        sizes = [int(s) for s in args.batch_sizes.split(",")]
        levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error("--batch-sizes and --concurrency take comma-separated whole numbers")
    points = args.meters * args.days * 86_400 // INTERVAL_S

    with tempfile.TemporaryDirectory(prefix="gtx_influx_bench_") as tmp:
        work = Path(tmp)
        server = None
        if args.url is None:
            try:
                server = influxd_server(work / "influxd").start()
            except ServerUnavailable as exc:
                raise SystemExit(str(exc)) from None
        url = args.url or server.url
        pids = {"benchmark (anonymous)": os.getpid()}
        if server is not None and server.pid:
            pids["influxd"] = server.pid
        try:
            print(f"machine: {machine()}")
            load_before = os.getloadavg()[0]
            print(f"load average before: {load_before:.2f} (other work skews the figures)")
            print(
                f"points per run: {points:,} ({args.meters} meters × {args.days} days × "
                f"{86_400 // INTERVAL_S} intervals, {len(FIELD_COLUMNS)} float fields, 4 tags)"
            )
            sim_rate, conv_rate = offline_rates(args)
            offline = (
                f"offline, one thread: simulate {sim_rate:,.0f} readings/s, "
                f"line protocol {conv_rate:,.0f} readings/s"
            )
            print(offline)
            blocks = [offline]
            sweep_rates: list[tuple[int, int, float]] = []
            results: dict[str, object] = {"points": points, "machine": machine()}
            best = (0.0, args.batch or sizes[0], args.in_flight or levels[0])
            body = ends = None
            if not args.skip_ceiling:
                body, ends = prebuild(work / "points.lp", args)
                if len(ends) != points:
                    raise SystemExit(f"prebuilt {len(ends)} lines, expected {points}")
                rows = []
                for size in sizes:
                    for level in levels:
                        rate = raw_run(url, body, ends, points, size, level, "sweep")
                        rows.append([size, level, f"{rate:,.0f}"])
                        sweep_rates.append((size, level, rate))
                        best = max(best, (rate, size, level))
                sweep = "(a) raw ceiling sweep: prebuilt line protocol, minimal client\n\n"
                sweep += table(["lines/request", "requests in flight", "points/s"], rows)
                print("\n" + sweep)
                blocks.append(sweep)
                results["sweep"] = [
                    {"batch": r[0], "in_flight": r[1], "points_per_s": float(r[2].replace(",", ""))}
                    for r in rows
                ]
            size = args.batch or best[1]
            level = args.in_flight or best[2]
            compare = (
                f"(b) at {size} lines/request, {level} in flight, alternating: raw ceiling, then "
                "gtx_ray end to end (simulate + convert + InfluxSink.write)\n\n"
            )
            print("\n" + compare, end="")
            pairs, peaks = [], {}
            for i in range(args.pairs):
                raw = (
                    raw_run(url, body, ends, points, size, level, f"pair{i}")
                    if body is not None
                    else None
                )
                e2e, peak = e2e_run(url, args, points, size, level, str(i), work / "spool", pids)
                peaks = {k: max(v, peaks.get(k, 0.0)) for k, v in peak.items()}
                pairs.append((raw, e2e))
            table_rows = [
                [
                    i + 1,
                    f"{raw:,.0f}" if raw else "-",
                    f"{e2e:,.0f}",
                    f"{e2e / raw:.1%}" if raw else "-",
                ]
                for i, (raw, e2e) in enumerate(pairs)
            ]
            pair_table = table(
                ["pair", "ceiling points/s", "end to end points/s", "end to end / ceiling"],
                table_rows,
            )
            print(pair_table)
            e2e_best = max(e for _, e in pairs)
            compare += pair_table
            if body is not None:
                raw_best = max(best[0], *(r for r, _ in pairs))
                ratio = float(np.median([e / r for r, e in pairs]))
                headline = (
                    f"best ceiling {raw_best:,.0f} points/s; best end to end {e2e_best:,.0f} "
                    f"points/s = {e2e_best / raw_best:.1%} of it; median pair ratio {ratio:.1%}"
                )
                print(headline)
                compare += "\n\n" + headline
                results.update(
                    ceiling_points_per_s=raw_best,
                    best_ratio=e2e_best / raw_best,
                    median_pair_ratio=ratio,
                )
                body.close()
            memory = "peak RSS during end to end: " + ", ".join(
                f"{k} {v:,.0f} MiB" for k, v in peaks.items()
            )
            print(memory)
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            blocks += [compare, memory]
            args.out.mkdir(parents=True, exist_ok=True)
            picture = ""
            if sweep_rates:
                e2e_rates = [e for _, e in pairs]
                plot(sweep_rates, e2e_rates, size, level, args.out / "influx_ingest.png")
                picture = "\n\n![points/s, raw ceiling and end to end](influx_ingest.png)"
            write_summary(
                "influx_ingest",
                "InfluxDB 1.x ingest: raw ceiling against gtx_ray end to end",
                "python -m benchmarks.influx_ingest" + command_options(args),
                INTRO.format(
                    points=points,
                    meters=args.meters,
                    days=args.days,
                    fields=len(FIELD_COLUMNS),
                    window=args.window,
                    server="a throwaway Debian `influxd`" if server else "the InfluxDB at --url",
                    load=load_before,
                )
                + picture,
                *blocks,
                directory=args.out,
            )
            results.update(
                end_to_end_points_per_s=e2e_best,
                pairs=[{"ceiling": r, "end_to_end": e} for r, e in pairs],
                batch=size,
                in_flight=level,
                peak_rss_mib=peaks,
            )
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
