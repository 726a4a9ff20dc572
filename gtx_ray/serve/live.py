"""The live view the REST API answers its read endpoints from.

It holds the latest reading of every meter, the campus summary, the storage status and the
clock's status, with the hot responses pre-rendered to JSON bytes. A background task refreshes it
every ``REFRESH_S`` with two remote calls (aggregator, clock); the readings travel and are
re-rendered only when a newer interval has arrived. A request therefore costs no remote call, and
answers are at most ``REFRESH_S`` plus one refresh old. A request that finds the view older than
``MAX_AGE_S`` (the refresher is failing or has not run yet) refreshes it itself first.

Rendering is cheap for the campus (~1 ms) but not for a 100,000-meter fleet (~2 s of CPU for
68 MB of JSON), so readings are re-rendered at most once per ``RENDER_DUTY_FACTOR`` times the
last render's duration: the API never spends more than ~1/10 of a core keeping up with a fleet
at max speed, and big fleets' readings may lag by that much. Status and health stay fresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pyarrow as pa

from gtx_ray.fleet import MeterArrays
from gtx_ray.serve import views

log = logging.getLogger(__name__)

REFRESH_S = 0.5
MAX_AGE_S = 2.0
RENDER_IN_THREAD_ROWS = 2_000  # render bigger fleets off the event loop
RENDER_DUTY_FACTOR = 10.0


class LiveView:
    """The latest readings, summary, storage and clock status of one simulation."""

    def __init__(self, meters: MeterArrays, campus_name: str, aggregator: Any, clock: Any) -> None:
        self.meters = meters
        self.campus_name = campus_name
        self._aggregator = aggregator
        self._clock = clock
        self.phases = {m: int(p) for m, p in zip(meters.meter_id, meters.phases, strict=True)}
        self.index = {m: i for i, m in enumerate(meters.meter_id)}
        self._lock = asyncio.Lock()
        self.taken_at = 0.0  # time.monotonic() of the last refresh
        self.latest = pa.table({})
        self._latest_interval_s: int | None = None  # the interval the readings are from
        self._next_render_at = 0.0
        self.readings: list[dict] = []
        self.readings_by_meter: dict[str, dict] = {}
        self.readings_json = b"[]"
        self.summary: dict | None = None
        self.summary_json = b""
        self.storage: dict = {}
        self.clock_status: dict = {}
        self._meters_json = b""
        self._meter_json: dict[str, bytes] = {}
        self._rendered_for: int | None = None  # interval the lazy renderings belong to

    async def refresh(self) -> None:
        """Fetch the aggregator's snapshot and the clock's status (one refresh at a time)."""
        async with self._lock:
            if time.monotonic() >= self._next_render_at:
                (latest, storage), clock = await asyncio.gather(
                    self._aggregator.snapshot.remote(self._latest_interval_s),
                    self._clock.status.remote(),
                )
            else:  # rendered too recently for this fleet's size: status only
                latest = None
                storage, clock = await asyncio.gather(
                    self._aggregator.status.remote(), self._clock.status.remote()
                )
            if latest is not None:
                started = time.monotonic()
                if latest.num_rows > RENDER_IN_THREAD_ROWS:
                    await asyncio.to_thread(self._render, latest)
                else:
                    self._render(latest)
                finished = time.monotonic()
                self._next_render_at = finished + RENDER_DUTY_FACTOR * (finished - started)
                self._latest_interval_s = storage.get("latest_interval_s")
            self.storage, self.clock_status = storage, clock
            self.taken_at = time.monotonic()

    def _render(self, latest: pa.Table) -> None:
        readings = views.reading_dicts(latest, self.phases)
        summary = (
            views.campus_summary(self.campus_name, self.meters, latest) if latest.num_rows else None
        )
        readings_json = json.dumps(readings).encode()
        summary_json = json.dumps(summary).encode() if summary else b""
        # swap everything at once so a request never mixes two intervals
        self.latest, self.readings, self.summary = latest, readings, summary
        self.readings_by_meter = {r["meter_id"]: r for r in readings}
        self.readings_json, self.summary_json = readings_json, summary_json
        self._meter_json = {}

    async def ensure_fresh(self) -> None:
        """Refresh now if the background refresher has not kept the view younger than
        MAX_AGE_S."""
        if time.monotonic() - self.taken_at >= MAX_AGE_S:
            await self.refresh()

    async def run(self, period_s: float = REFRESH_S) -> None:
        """Refresh forever (the server's background task); failures are logged, not fatal."""
        failing = False
        while True:
            try:
                await self.refresh()
                if failing:
                    log.info("REST API live view refreshing again")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("REST API live view refresh failed: %s", exc)
                failing = True
            await asyncio.sleep(period_s)

    def problem(self) -> str | None:
        """Why the simulation is not producing readings, or None."""
        clock, storage = self.clock_status, self.storage
        if clock.get("error"):
            return f"clock stopped on an error: {clock['error']}"
        if storage.get("last_error"):
            return f"storage failing: {storage['last_error']}"
        if clock.get("finished"):
            return "the simulation has finished"
        if clock.get("paused"):
            return "the simulation is paused"
        if not clock.get("running"):
            return "the clock is not running"
        return None

    def meters_json(self) -> bytes:
        """``GET /api/meters``, rendered on demand once per interval (it carries battery levels)."""
        if self._rendered_for != self._latest_interval_s or not self._meters_json:
            levels = {r["meter_id"]: r["battery_level"] for r in self.readings}
            self._meters_json = json.dumps(views.meter_list(self.meters, levels)).encode()
            self._rendered_for = self._latest_interval_s
        return self._meters_json

    def meter_json(self, meter_id: str) -> bytes | None:
        """One meter's latest reading as JSON, or None when it has none yet."""
        body = self._meter_json.get(meter_id)
        if body is None:
            reading = self.readings_by_meter.get(meter_id)
            if reading is None:
                return None
            body = self._meter_json[meter_id] = json.dumps(reading).encode()
        return body
