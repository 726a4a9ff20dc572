"""All 2030.5 clients of one meter actor on one asyncio event loop in a background thread.

The meter actor is a plain synchronous Ray actor: its ``step`` must never wait on the network.
``MeterClients`` gives it four calls that return at once (``stop`` within its timeout):

    clients = MeterClients(certs_dir, meter_ids, "https://127.0.0.1:8443", pin=111115,
                           interval_s=15)
    clients.start()              # thread + loop; registration proceeds in the background
    clients.submit(batch)        # enqueue this actor's rows of a reading RecordBatch
    clients.status()             # one dict per meter (see MeterClient.status)
    clients.stop(timeout_s=10)   # post what is queued within the timeout, then close

Sharing: one ``aiohttp.ClientSession`` and one ``TCPConnector`` for the whole actor (one DNS
cache, one bound on connections in use: ``max_connections``, default one per meter). Each meter
passes its own TLS context per request (its own certificate), and aiohttp keys pooled
connections by that context, so every meter keeps its own kept-alive mutual-TLS connection
(``ClientSettings.keepalive_s``; a meter sends one request at a time, so that is one socket per
meter: mind ``ulimit -n`` for thousands of meters per actor); ``limit_per_host`` 2 bounds each
meter's pool. Discoveries (several requests and a TLS handshake
each) run at most ``max_concurrent_discoveries`` at a time so a restart of the server is not met
by every meter at once; back-off jitter spreads them further.

Queues: one per meter, at most ``queue_limit`` intervals (a queued interval is ~0.3 KB: six
integers and a start). ``submit`` drops the oldest intervals of a full queue and counts them
(``readings_dropped``, and ``gaps`` = the dropped [first start, last start, count] runs), never
silently; rows whose values cannot be represented are counted in ``readings_rejected``.

Post modes (``--ieee2030-5-post``):
- ``every``: every interval is mirrored.
- ``sampled``: only intervals whose start is a multiple of ``sample_every`` × ``interval_s``
  (UTC epoch) are queued, i.e. every k-th interval, the same intervals on every meter; the
  energy registers are cumulative, so the sampled register readings still carry the exact
  energy totals; the averages (power, V, A, power factor) are samples. For backfills: HTTPS
  then limits nothing.
- ``off``: nothing is queued or posted (no MirrorUsagePoint either); meters still register
  (EndDevice) and poll, so they show up on the server. Not constructing ``MeterClients`` at all
  switches 2030.5 off entirely.

``submit`` may be called before ``start`` (readings wait in the queues). ``stop`` is final: a
stopped ``MeterClients`` is not started again (make a new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.client.meter_client import MeterClient, load_meter_client
from gtx_ray.ieee2030_5.client.pollers import FunctionSetPoller
from gtx_ray.ieee2030_5.client.quantities import wire_values
from gtx_ray.ieee2030_5.client.settings import ClientSettings, dcap_url
from gtx_ray.ieee2030_5.identity import is_valid_pin

log = logging.getLogger(__name__)

POST_MODES = ("every", "sampled", "off")
START_TIMEOUT_S = 10.0
"""How long ``start`` waits for the loop thread to come up."""
CLOSE_TIMEOUT_S = 3.0
"""How long ``stop`` waits for the connections to close after the clients stopped."""


class MeterClients:
    """The 2030.5 clients of one actor's meters; see the module docstring.

    certs_dir: the ``certs init`` directory (``devices/<meter_id>.pem|.key``, ``serca.pem``).
    meter_ids: this actor's meters. server_url: ``https://host:port[/prefix]`` of the server
    (the built-in one or ``--ieee2030-5-server``). ca_file: trust anchor for the server
    (``--ieee2030-5-ca``; default the directory's ``serca.pem``). pin: the Registration PIN the
    server must report (None: not checked). post_mode: every | sampled | off. queue_limit:
    intervals kept per meter. interval_s: the simulation interval (SIMULATION_INTERVAL, s).
    sample_every: k of ``sampled``. settings: network behaviour (timeouts, back-off, …).
    max_connections: bound on connections in use at once (default: one per meter; a smaller
    bound makes meters wait for a slot, within their request timeout).
    max_concurrent_discoveries: bound on meters discovering/registering at once.
    pollers: called once per meter id, the function sets that meter polls
    (``pollers.FunctionSetPoller``); None: none.
    """

    def __init__(
        self,
        certs_dir: str | Path,
        meter_ids: Sequence[str],
        server_url: str,
        ca_file: str | Path | None = None,
        pin: int | None = None,
        post_mode: str = "every",
        queue_limit: int = 256,
        *,
        interval_s: int = 15,
        sample_every: int = 4,
        settings: ClientSettings | None = None,
        max_connections: int | None = None,
        max_concurrent_discoveries: int = 16,
        pollers: Callable[[str], Sequence[FunctionSetPoller]] | None = None,
    ) -> None:
        if post_mode not in POST_MODES:
            raise ConfigError(
                f"ieee2030_5 post mode must be one of {', '.join(POST_MODES)}, got {post_mode!r}"
            )
        if not isinstance(interval_s, int) or interval_s < 1:
            raise ConfigError(f"ieee2030_5 interval_s must be a positive integer, got {interval_s}")
        if sample_every < 1:
            raise ConfigError(f"ieee2030_5 sample_every must be at least 1, got {sample_every}")
        if queue_limit < 1:
            raise ConfigError(f"ieee2030_5 queue_limit must be at least 1, got {queue_limit}")
        if pin is not None and not is_valid_pin(pin):
            raise ConfigError(f"ieee2030_5 pin {pin!r} is not a PIN with a valid check digit")
        if (max_connections is not None and max_connections < 1) or max_concurrent_discoveries < 1:
            raise ConfigError("ieee2030_5 max_connections and max_concurrent_discoveries >= 1")
        if len(set(meter_ids)) != len(meter_ids):
            raise ConfigError("ieee2030_5 meter ids must be unique")
        dcap_url(server_url)  # validates
        self.server_url = server_url
        self.post_mode = post_mode
        self.interval_s = interval_s
        self.sample_every = sample_every if post_mode == "sampled" else 1
        self.settings = settings or ClientSettings()
        self._max_connections = max_connections or max(1, len(meter_ids))
        self._max_discoveries = max_concurrent_discoveries
        self._lock = threading.Lock()
        self.clients: list[MeterClient] = [
            load_meter_client(
                certs_dir,
                meter_id,
                server_url,
                interval_s,
                ca_file,
                pin=pin,
                post_enabled=post_mode != "off",
                queue_limit=queue_limit,
                settings=self.settings,
                gap_merge_s=interval_s * self.sample_every,
                lock=self._lock,
                pollers=pollers(meter_id) if pollers is not None else (),
            )
            for meter_id in meter_ids
        ]
        self._ids = pa.array(list(meter_ids), pa.string())
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_id: dict[str, int] | None = None  # meter id → index in clients, on first use
        self._stop_event: asyncio.Event | None = None
        self._stop_timeout_s = 10.0
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self.rows_submitted = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the loop thread and every meter's client; returns once the loop runs (the
        meters register in the background)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._thread_main, name="ieee2030_5-clients")
        self._thread.daemon = True
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError("IEEE 2030.5 client loop did not start")
        if self._start_error is not None:
            raise RuntimeError(f"IEEE 2030.5 client loop failed: {self._start_error}")

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # report, never raise out of a thread
            self._start_error = exc
            log.exception("IEEE 2030.5 client loop failed")
            self._started.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        s = self.settings
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=2,
            keepalive_timeout=s.keepalive_s,
            ttl_dns_cache=300,
        )
        http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=s.request_timeout_s, sock_connect=s.connect_timeout_s
            ),
            trust_env=False,
            auto_decompress=False,
        )
        self._stop_event = asyncio.Event()
        slots = asyncio.Semaphore(self._max_discoveries)
        tasks = [
            asyncio.create_task(c.run(http, slots), name=f"2030.5 {c.meter_id}")
            for c in self.clients
        ]
        self._started.set()
        try:
            await self._stop_event.wait()
            for c in self.clients:
                c.request_stop()
            _, pending = await asyncio.wait(tasks, timeout=self._stop_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            with contextlib.suppress(TimeoutError):  # bounded even on a starved machine
                await asyncio.wait_for(http.close(), CLOSE_TIMEOUT_S)
            await asyncio.sleep(0)  # let SSL transports close

    def stop(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Post what is queued (meters that are registered, within ``timeout_s``), then stop
        every client, close the connections and end the thread. Returns the final status; what
        could not be posted stays in ``readings_queued``."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return self.status()
        self._stop_timeout_s = max(0.0, float(timeout_s))
        if self._stop_event is not None:
            loop.call_soon_threadsafe(self._stop_event.set)
        thread.join(self._stop_timeout_s + 5.0)
        if thread.is_alive():
            log.warning("IEEE 2030.5 client thread did not end within %.0f s", timeout_s + 5)
        return self.status()

    def __enter__(self) -> MeterClients:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- readings ----------------------------------------------------------------------------
    def submit(self, batch: pa.RecordBatch) -> int:
        """Queue this actor's rows of ``batch`` (the reading schema); never touches the network.

        Rows of other meters are ignored; in ``sampled`` mode only every k-th interval is kept;
        in ``off`` mode nothing is. Returns the number of intervals queued (before any drop).
        """
        if self.post_mode == "off" or batch.num_rows == 0:
            return 0
        index = pc.index_in(batch.column("meter_id"), value_set=self._ids)
        if index.null_count:
            keep = pc.is_valid(index)
            batch, index = batch.filter(keep), index.filter(keep)
            if batch.num_rows == 0:
                return 0
        starts = (
            batch.column("timestamp")
            .cast(pa.timestamp("s", tz="UTC"))
            .cast(pa.int64())
            .to_numpy(zero_copy_only=False)
        )
        meters = index.to_numpy(zero_copy_only=False).astype(np.int64)
        if self.sample_every > 1:
            sampled = (starts // self.interval_s) % self.sample_every == 0
            if not sampled.any():
                return 0
            batch = batch.filter(pa.array(sampled))
            starts, meters = starts[sampled], meters[sampled]
        values, ok = wire_values(batch)
        if not ok.all():
            for m in np.unique(meters[~ok]):
                bad = starts[~ok & (meters == m)].tolist()
                self.clients[m].reject(bad, "values not finite or outside the Int48 range")
            starts, meters, values = starts[ok], meters[ok], values[ok]
        order = np.lexsort((starts, meters))
        meters_sorted = meters[order]
        starts_list = starts[order].tolist()
        rows = [tuple(r) for r in values[order].tolist()]
        cuts = [0, *(np.flatnonzero(np.diff(meters_sorted)) + 1).tolist(), len(order)]
        for a, b in itertools.pairwise(cuts):
            if a < b:
                m = int(meters_sorted[a])
                self.clients[m].enqueue(list(zip(starts_list[a:b], rows[a:b], strict=True)))
        self.rows_submitted += len(order)
        return len(order)

    def wake(self, meter_ids: Iterable[str]) -> None:
        """Wake these meters' loops (thread-safe; unknown ids ignored): a function set of theirs
        has something to send between polls (``pollers.PushingPoller``)."""
        loop = self._loop
        if loop is None or not meter_ids:
            return
        index = self._index()
        try:
            for meter_id in meter_ids:
                i = index.get(meter_id)
                if i is not None:
                    loop.call_soon_threadsafe(self.clients[i].wake)
        except RuntimeError:  # the loop closed meanwhile (stopped)
            pass

    def _index(self) -> dict[str, int]:
        if self._by_id is None:
            self._by_id = {c.meter_id: i for i, c in enumerate(self.clients)}
        return self._by_id

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Ask every registered meter to post its queue now (ignoring postRate) and wait until
        all queues are empty or ``timeout_s`` passed; True when empty. Blocks the caller: for
        tests, benchmarks and shutdown, not for ``step``."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive() or self.post_mode == "off":
            return self.queued() == 0
        try:
            for c in self.clients:
                loop.call_soon_threadsafe(c.request_flush)
        except RuntimeError:  # the loop closed meanwhile (stopped)
            return self.queued() == 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.queued() == 0:
                return True
            time.sleep(0.02)
        return self.queued() == 0

    def queued(self) -> int:
        """Intervals waiting or in flight, all meters."""
        with self._lock:
            return sum(c.queued for c in self.clients)

    # --- status ------------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """One entry per meter: meter_id, lfdi, sfdi, end_device_href, mirror_usage_point_href,
        registered, state, last_post_time (epoch s), posts_ok, posts_failed, readings_posted,
        readings_queued, readings_dropped, readings_rejected, gaps, registrations, polls,
        requests, post_rate_s, poll_rate_s, clock_offset_s, last_error."""
        return [c.status() for c in self.clients]

    def summary(self) -> dict[str, Any]:
        """Totals over this actor's meters (for ``/api/ieee2030_5/status``)."""
        rows = self.status()
        out: dict[str, Any] = {
            "meters": len(rows),
            "registered": sum(r["registered"] for r in rows),
            "post_mode": self.post_mode,
            "running": self._thread is not None and self._thread.is_alive(),
        }
        for key in (
            "posts_ok",
            "posts_failed",
            "readings_posted",
            "readings_queued",
            "readings_dropped",
            "readings_rejected",
            "requests",
        ):
            out[key] = sum(r[key] for r in rows)
        errors = [f"{r['meter_id']}: {r['last_error']}" for r in rows if r["last_error"]]
        out["errors"] = errors[:10]
        return out

    def wait_registered(self, timeout_s: float = 30.0, count: int | None = None) -> bool:
        """Block until ``count`` meters (default all) are registered or the timeout passes."""
        want = len(self.clients) if count is None else count
        deadline = time.monotonic() + timeout_s
        while True:
            done = sum(c.status()["registered"] for c in self.clients)
            if done >= want:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
