"""Benchmark the IEEE 2030.5 server: mirror reading POSTs per second over kept-alive mutual TLS,
and full TLS handshakes per second, at 1, 16 and 64 concurrent clients.

Each client is a meter with its own certificate (from a throwaway `certs init`), registered and
with one MirrorUsagePoint before timing starts. "Kept-alive" clients each hold one connection
and POST a MirrorMeterReading with one MirrorReadingSet of ``READINGS_PER_POST`` (4) Readings to
/mup/{id} in a loop (a new set mRID each time; the per-device budget retires old sets).
"Handshake" clients open a new connection (no session resumption) for every request: TCP
connect, TLS 1.2 CCM8 handshake with both certificates, GET /tm, close.

The server runs in a separate process: ``local`` = the aiohttp TLS server with an in-process
registry (in memory: the ceiling); ``ray`` = the real deployment (front actor + registry
actor, batched calls) with the registry in memory; ``durable`` / ``durable-full`` = the same
with the registry's SQLite store (``store``; WAL, synchronous NORMAL / FULL), every batch
committed before its answers leave; ``serve-durable`` = ``durable`` with the front as a Ray Serve
deployment of 2 replicas sharing the port (``serve_front``; ``serve1-durable``: 1 replica);
``-shards2`` = the same with the registry sharded by LFDI over 2 actors (``shards``). Clients
run in this process on one event loop, so on a 2-core machine client and server share the
cores: the figures are a lower bound for the server. Loopback only; every cell stops after
``--seconds`` or ``--max-requests``, whichever comes first.

    .venv/bin/python benchmarks/ieee2030_5_server.py [--backend local,ray,durable,durable-full]
        [--seconds 3] [--no-handshakes]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import ssl
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from gtx_ray.ieee2030_5.codec import NS  # noqa: E402
from gtx_ray.ieee2030_5.pki import (  # noqa: E402
    device_credentials,
    identity_of,
    init_certs,
    load_first_certificate,
)
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config  # noqa: E402
from gtx_ray.ieee2030_5.tls import client_context  # noqa: E402

HOST = "127.0.0.1"  # loopback only
CONCURRENCY = (1, 16, 64)
READINGS_PER_POST = 4
BACKENDS = (
    "local",
    "ray",
    "durable",
    "durable-full",
    "serve-durable",
    "serve1-durable",
    "durable-shards2",
    "serve-durable-shards2",
)
RESULTS = REPO / "benchmarks" / "results" / "ieee2030_5_server.json"


def _serve_local(certs_dir: str, port_queue, stop_event) -> None:
    """Child process: the TLS server with an in-process registry until ``stop_event``."""
    from gtx_ray.ieee2030_5.server.backend import LocalBackend
    from gtx_ray.ieee2030_5.server.config import build_registry
    from gtx_ray.ieee2030_5.server.tls_server import Ieee2030_5Server

    async def main() -> None:
        config = Ieee2030_5Config(certs_dir=Path(certs_dir), host=HOST, port=0)
        server = Ieee2030_5Server(config, LocalBackend(build_registry(config, int(time.time()))))
        await server.start()
        port_queue.put(server.port)
        while not stop_event.is_set():
            await asyncio.sleep(0.2)
        await server.stop()

    asyncio.run(main())


class Meter:
    """One benchmark client: its TLS context, identity and (after setup) mirror location."""

    def __init__(self, certs_dir: Path, meter_id: str) -> None:
        creds = device_credentials(certs_dir, meter_id)
        self.ctx = client_context(creds.ca, creds.cert_chain, creds.key)
        self.identity = identity_of(load_first_certificate(creds.cert_chain.read_bytes()))
        self.mup = ""

    async def setup(self, base: str) -> None:
        headers = {"Content-Type": "application/sep+xml"}
        ed = f'<EndDevice xmlns="{NS}"><sFDI>{self.identity.sfdi}</sFDI></EndDevice>'
        mrid = self.identity.lfdi[:32]
        mup = (
            f'<MirrorUsagePoint xmlns="{NS}"><mRID>{mrid}</mRID><roleFlags>0049</roleFlags>'
            "<serviceCategoryKind>0</serviceCategoryKind><status>1</status>"
            f"<deviceLFDI>{self.identity.lfdi}</deviceLFDI><MirrorMeterReading><mRID>01</mRID>"
            "<ReadingType><accumulationBehaviour>4</accumulationBehaviour><flowDirection>1"
            "</flowDirection><uom>72</uom></ReadingType></MirrorMeterReading></MirrorUsagePoint>"
        )
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ctx)) as s:
            async with s.post(f"{base}/edev", data=ed, headers=headers) as r:
                assert r.status in (201, 409), r.status
            async with s.post(f"{base}/mup", data=mup, headers=headers) as r:
                assert r.status in (201, 204), r.status
                self.mup = r.headers["Location"]


async def kept_alive(meters: list[Meter], base: str, seconds: float, cap: int) -> dict:
    """Each meter POSTs readings on one kept-alive connection until time or cap runs out."""
    deadline = time.perf_counter() + seconds
    done = errors = 0
    latencies: list[float] = []
    headers = {"Content-Type": "application/sep+xml"}

    async def run(m: Meter) -> None:
        nonlocal done, errors
        connector = aiohttp.TCPConnector(ssl=m.ctx, limit=1)
        async with aiohttp.ClientSession(connector=connector) as s:
            t = 1_767_225_600
            while time.perf_counter() < deadline and done + errors < cap:
                t += 900 * READINGS_PER_POST
                readings = "".join(
                    f"<Reading><timePeriod><duration>900</duration><start>{t + 900 * i}</start>"
                    f"</timePeriod><value>{(t + i) % 9973}</value></Reading>"
                    for i in range(READINGS_PER_POST)
                )
                body = (
                    f'<MirrorMeterReading xmlns="{NS}"><mRID>01</mRID><MirrorReadingSet>'
                    f"<mRID>{t:X}</mRID><timePeriod><duration>{900 * READINGS_PER_POST}"
                    f"</duration><start>{t}</start></timePeriod>{readings}</MirrorReadingSet>"
                    "</MirrorMeterReading>"
                )
                started = time.perf_counter()
                async with s.post(base + m.mup, data=body, headers=headers) as r:
                    await r.read()
                    if r.status == 201:
                        done += 1
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(run(m) for m in meters))
    return _cell(done, errors, time.perf_counter() - started, latencies)


async def handshakes(meters: list[Meter], port: int, seconds: float, cap: int) -> dict:
    """Each meter opens a fresh mutual-TLS connection per GET /tm until time or cap runs out."""
    deadline = time.perf_counter() + seconds
    done = errors = 0
    latencies: list[float] = []
    request = b"GET /tm HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

    async def run(m: Meter) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline and done + errors < cap:
            started = time.perf_counter()
            try:
                reader, writer = await asyncio.open_connection(
                    HOST, port, ssl=m.ctx, server_hostname="localhost"
                )
                writer.write(request)
                head = await reader.read(12)
                writer.close()
                ok = head.startswith(b"HTTP/1.1 200")
            except (OSError, ssl.SSLError):
                ok = False
            if ok:
                done += 1
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(run(m) for m in meters))
    return _cell(done, errors, time.perf_counter() - started, latencies)


def _cell(done: int, errors: int, elapsed: float, latencies: list[float]) -> dict:
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "ok": done,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "per_s": round(done / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
    }


async def measure(
    meters: list[Meter], port: int, seconds: float, cap: int, with_handshakes: bool = True
) -> dict:
    base = f"https://localhost:{port}"
    for i in range(0, len(meters), 16):
        await asyncio.gather(*(m.setup(base) for m in meters[i : i + 16]))
    out: dict = {}
    for c in CONCURRENCY:
        out[f"post_keepalive_{c}"] = await kept_alive(meters[:c], base, seconds, cap)
        if with_handshakes:
            out[f"handshake_{c}"] = await handshakes(meters[:c], port, seconds, cap)
    return out


def run_local(
    certs_dir: Path, meters: list[Meter], seconds: float, cap: int, with_handshakes: bool
) -> dict:
    ctx = mp.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve_local, args=(str(certs_dir), port_queue, stop))
    proc.start()
    try:
        port = port_queue.get(timeout=30)
        return asyncio.run(measure(meters, port, seconds, cap, with_handshakes))
    finally:
        stop.set()
        proc.join(15)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


def run_ray(
    certs_dir: Path,
    meters: list[Meter],
    seconds: float,
    cap: int,
    with_handshakes: bool,
    backends: list[str],
) -> dict:
    """Each of ``backends`` (all but local) on one local Ray runtime, in turn."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from gtx_ray.ieee2030_5.server.serve_front import start_ieee2030_5_serve, stop_ieee2030_5_serve
    from gtx_ray.ieee2030_5.server.service import start_ieee2030_5, stop_ieee2030_5

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        namespace="gtx_ray_bench",
        log_to_driver=False,
        _node_ip_address=HOST,
    )
    results: dict[str, dict] = {}
    try:
        for backend in backends:
            with tempfile.TemporaryDirectory(prefix="gtx_bench_state_") as state_dir:
                durable = "durable" in backend
                on_serve = backend.startswith("serve")
                config = Ieee2030_5Config(
                    certs_dir=certs_dir,
                    host=HOST,
                    port=_free_port() if on_serve else 0,
                    state_path=Path(state_dir) / "state.sqlite" if durable else None,
                    state_synchronous="FULL" if backend == "durable-full" else "NORMAL",
                    registry_shards=2 if backend.endswith("-shards2") else 1,
                )
                if on_serve:
                    replicas = 1 if backend.startswith("serve1") else 2
                    handles = start_ieee2030_5_serve(config, replicas=replicas)
                    stop = stop_ieee2030_5_serve
                else:
                    handles = start_ieee2030_5(config)
                    stop = stop_ieee2030_5
                try:
                    results[backend] = asyncio.run(
                        measure(meters, handles.port, seconds, cap, with_handshakes)
                    )
                finally:
                    stop(handles)
    finally:
        ray.shutdown()
    return results


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def store_commits(seconds: float) -> dict:
    """The store alone, in this process: commits/s and ms per commit for batches of 1 and 64
    four-reading POSTs, synchronous NORMAL and FULL (what each acknowledged batch costs)."""
    from gtx_ray.ieee2030_5.identity import DeviceIdentity, sfdi_from_lfdi
    from gtx_ray.ieee2030_5.models import (
        EndDeviceIn,
        MirrorMeterReading,
        MirrorUsagePoint,
        Reading,
        ReadingSet,
        ReadingType,
    )
    from gtx_ray.ieee2030_5.server.config import build_registry
    from gtx_ray.ieee2030_5.server.dispatch import Op, execute
    from gtx_ray.ieee2030_5.server.store import RegistryStore

    out: dict = {}
    for sync in ("NORMAL", "FULL"):
        for batch in (1, 64):
            with tempfile.TemporaryDirectory(prefix="gtx_bench_store_") as tmp:
                store = RegistryStore(Path(tmp) / "state.sqlite", sync)
                reg = build_registry(Ieee2030_5Config(), 0, store)
                who = []
                for d in range(batch):
                    lfdi = f"{d + 1:040X}"
                    me = DeviceIdentity(lfdi, sfdi_from_lfdi(lfdi))
                    mmr = MirrorMeterReading(1, reading_type=ReadingType(uom=72))
                    up = MirrorUsagePoint(d + 1, lfdi, 0x49, 0, 1, meter_readings=(mmr,))
                    execute(reg, [Op("edev.register", me, 0, (EndDeviceIn(sfdi=me.sfdi),))])
                    execute(reg, [Op("mirror.create_or_update", me, 0, (up,))])
                    who.append((me, d + 1))
                store.flush(reg)
                commits, t, started = 0, 1_767_225_600, time.perf_counter()
                while time.perf_counter() - started < seconds:
                    t += 3600
                    rs = ReadingSet(
                        t, t, 3600, tuple(Reading(i, t + 900 * i, 900) for i in range(4))
                    )
                    ops = [
                        Op(
                            "mirror.post_readings",
                            me,
                            t,
                            (mup, (MirrorMeterReading(1, reading_sets=(rs,)),)),
                        )
                        for me, mup in who
                    ]
                    execute(reg, ops)
                    store.flush(reg)
                    commits += 1
                elapsed = time.perf_counter() - started
                store.close()
                out[f"{sync}_{batch}"] = {
                    "commits_per_s": round(commits / elapsed, 1),
                    "ms_per_commit": round(1000 * elapsed / commits, 3),
                    "posts_per_s": round(commits * batch / elapsed, 1),
                }
    return out


def store_reload(devices: int = 2_000) -> dict:
    """A state file of ``devices`` full devices (6 mirrored quantities, sets of 4 readings posted
    until the budget retires old ones): its size and how long a restarted registry takes to
    load it, seconds."""
    from gtx_ray.ieee2030_5.identity import DeviceIdentity, sfdi_from_lfdi
    from gtx_ray.ieee2030_5.models import (
        EndDeviceIn,
        MirrorMeterReading,
        MirrorUsagePoint,
        Reading,
        ReadingSet,
        ReadingType,
    )
    from gtx_ray.ieee2030_5.server.config import build_registry
    from gtx_ray.ieee2030_5.server.managers import edev, mirror
    from gtx_ray.ieee2030_5.server.store import RegistryStore

    config = Ieee2030_5Config()
    with tempfile.TemporaryDirectory(prefix="gtx_bench_reload_") as tmp:
        path = Path(tmp) / "state.sqlite"
        store = RegistryStore(path)
        reg = build_registry(config, 0, store)
        t0 = 1_767_225_600
        for d in range(devices):
            lfdi = f"{d + 1:040X}"
            me = DeviceIdentity(lfdi, sfdi_from_lfdi(lfdi))
            edev.register(reg, me, t0, EndDeviceIn(sfdi=me.sfdi))
            qs = tuple(MirrorMeterReading(q, reading_type=ReadingType(uom=72)) for q in range(6))
            up = MirrorUsagePoint(d + 1, lfdi, 0x49, 0, 1, meter_readings=qs)
            mup = int(mirror.create_or_update(reg, me, t0, up).location.rsplit("/", 1)[1])
            for p in range(10):
                t = t0 + 3600 * p
                sets = tuple(
                    MirrorMeterReading(
                        q,
                        reading_sets=(
                            ReadingSet(
                                (p << 8) + q,
                                t,
                                3600,
                                tuple(Reading(i, t + 900 * i, 900) for i in range(4)),
                            ),
                        ),
                    )
                    for q in range(6)
                )
                mirror.post_readings(reg, me, t, mup, sets)
            if d % 50 == 49:
                store.flush(reg)
        store.flush(reg)
        rows = store.counts()
        store.close()
        started = time.perf_counter()
        loaded = build_registry(config, 0, RegistryStore(path))
        seconds = time.perf_counter() - started
        assert loaded.counts() == reg.counts()
        return {
            "devices": devices,
            **rows,
            "readings_kept": reg.counts()["readings_mirrored"] - reg.counts()["readings_dropped"],
            "file_mib": round(sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20, 1),
            "load_s": round(seconds, 2),
        }


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{ssl.OPENSSL_VERSION}, aiohttp {aiohttp.__version__}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        default="local,ray,durable",
        help=f"comma-separated, of {', '.join(BACKENDS)} (default local,ray,durable)",
    )
    parser.add_argument("--no-handshakes", action="store_true", help="kept-alive POSTs only")
    parser.add_argument(
        "--store", action="store_true", help="also time the SQLite store alone (NORMAL vs FULL)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell (default 3)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per cell")
    args = parser.parse_args()
    if not 0.5 <= args.seconds <= 60:
        parser.error("--seconds must be 0.5..60")
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        parser.error(
            f"--backend: {', '.join(unknown) or 'none'}; choose from {', '.join(BACKENDS)}"
        )
    with_handshakes = not args.no_handshakes

    with tempfile.TemporaryDirectory(prefix="gtx_bench_certs_") as tmp:
        certs_dir = Path(tmp)
        ids = [f"BENCH_{i:03d}" for i in range(max(CONCURRENCY))]
        init_certs(certs_dir, ids)
        meters = [Meter(certs_dir, m) for m in ids]
        results: dict[str, dict] = {}
        if "local" in backends:
            results["local"] = run_local(
                certs_dir, meters, args.seconds, args.max_requests, with_handshakes
            )
        on_ray = [b for b in backends if b != "local"]
        if on_ray:
            results.update(
                run_ray(certs_dir, meters, args.seconds, args.max_requests, with_handshakes, on_ray)
            )

    print(f"IEEE 2030.5 server benchmark — {machine()}")
    print("TLS 1.2 ECDHE-ECDSA-AES128-CCM8, mutual auth, P-256; clients in one process")
    if args.store:
        results["store_only"] = store_commits(args.seconds)
        for name, cell in results["store_only"].items():
            sync, batch = name.split("_")
            print(
                f"store alone, synchronous={sync:6} {batch:>2} POSTs/commit: "
                f"{cell['commits_per_s']:>8.1f} commits/s {cell['ms_per_commit']:>7.3f} ms/commit "
                f"{cell['posts_per_s']:>9.1f} POSTs/s"
            )
        results["store_reload"] = store_reload()
        print(f"store reload: {results['store_reload']}")
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    head = ("server", "test", "clients", "ok/s", "p50 ms", "p99 ms", "err")
    print(
        f"{head[0]:12} {head[1]:28} {head[2]:>7} {head[3]:>9} {head[4]:>8} {head[5]:>8}"
        f" {head[6]:>5}"
    )
    for backend, cells in results.items():
        if backend.startswith("store_"):
            continue
        for c in CONCURRENCY:
            for name, label in (
                (f"post_keepalive_{c}", f"{READINGS_PER_POST}-reading POST, kept-alive"),
                (f"handshake_{c}", "full handshake + GET /tm"),
            ):
                cell = cells.get(name)
                if cell is None:
                    continue
                print(
                    f"{backend:12} {label:28} {c:>7} {cell['per_s']:>9.1f} {cell['p50_ms']:>8.2f}"
                    f" {cell['p99_ms']:>8.2f} {cell['errors']:>5}"
                )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    out = {"machine": machine(), "load_average": os.getloadavg(), "results": results}
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
