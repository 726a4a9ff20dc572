"""The live view the REST API answers its read endpoints from.

It holds the latest reading of every meter, the campus summary, the storage status and the
clock's status, with the hot responses pre-rendered to JSON bytes. A background task refreshes it
every ``REFRESH_S`` with two remote calls (aggregator, clock); the readings travel and are
re-rendered only when a newer interval has arrived. A request therefore costs no remote call, and
answers are at most ``REFRESH_S`` plus one refresh old. A request never refreshes it itself (it
would wait on busy actors); each refresh is bounded by ``REMOTE_TIMEOUT_S``. When the simulation
cannot be reached, the last data keep being served and ``problem()`` says why (``/health``
answers 503); when its actors are dead for good, ``gone`` says so and the API removes itself.

Rendering is cheap for the campus (~1 ms) but not for a 100,000-meter fleet (~2 s of CPU for
68 MB of JSON), so readings are re-rendered at most once per ``RENDER_DUTY_FACTOR`` times the
last render's duration: the API never spends more than ~1/10 of a core keeping up with a fleet
at max speed, and big fleets' readings may lag by that much. Status and health stay fresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from ray.exceptions import ActorDiedError

from gtx_ray.fleet import MeterArrays
from gtx_ray.serve import views
from gtx_ray.serve.handles import SimulationHandles

log = logging.getLogger(__name__)

REFRESH_S = 0.5
RENDER_IN_THREAD_ROWS = 2_000  # render bigger fleets off the event loop
RENDER_DUTY_FACTOR = 10.0
REMOTE_TIMEOUT_S = 10.0
STARTING_TIMEOUT_S = 300.0  # no clock by then: the run that deployed the API died starting


class SimulationStarting(RuntimeError):
    """The simulation's actors do not exist yet."""


class SimulationNeverStarted(RuntimeError):
    """The simulation's actors did not appear in time: whoever deployed the API died."""


@dataclass
class Frame:
    """Everything rendered from one latest-readings table. Frames are replaced whole (one
    attribute assignment on the event loop), so a request never mixes two intervals."""

    latest: pa.Table
    readings: list[dict]
    readings_by_meter: dict[str, dict]
    readings_json: bytes
    summary: dict | None
    summary_json: bytes
    etag: bytes  # one opaque validator for every representation rendered from this frame
    meter_json: dict[str, bytes] = field(default_factory=dict)  # filled lazily
    meters_json: bytes = b""  # filled lazily


class LiveView:
    """The latest readings, summary, storage and clock status of one simulation."""

    def __init__(self, meters: MeterArrays, campus_name: str, handles: SimulationHandles) -> None:
        self.meters = meters
        self.campus_name = campus_name
        self.handles = handles
        self.phases = {m: int(p) for m, p in zip(meters.meter_id, meters.phases, strict=True)}
        self.index = {m: i for i, m in enumerate(meters.meter_id)}
        self._lock = asyncio.Lock()
        self._created_at = time.monotonic()
        self._boot = secrets.token_hex(4)  # ETags of a restarted replica never collide
        self._generation = 0
        self.taken_at = 0.0  # time.monotonic() of the last refresh
        self._latest_interval_s: int | None = None  # the interval the frame is from
        self._next_render_at = 0.0
        # called with every new frame where it is rendered (a worker thread for big fleets),
        # before requests see it; e.g. the dashboard's per-interval aggregates
        self.frame_listeners: list[Callable[[Frame], None]] = []
        self.frame = self._render(pa.table({}))
        self.storage: dict = {}
        self.clock_status: dict = {}
        self.refresh_error: str | None = None  # why the last refresh failed
        self.gone: str | None = None  # set when the simulation's actors died for good

    async def refresh(self, max_age_s: float | None = None) -> None:
        """Fetch the aggregator's snapshot and the clock's status (one refresh at a time; with
        ``max_age_s``, none if another refresh made the view younger than that meanwhile)."""
        async with self._lock:
            if max_age_s is not None and time.monotonic() - self.taken_at < max_age_s:
                return
            if not await asyncio.to_thread(self.handles.resolve):  # may block on the GCS
                if time.monotonic() - self._created_at > STARTING_TIMEOUT_S:
                    raise SimulationNeverStarted(
                        f"its actors were not created within {STARTING_TIMEOUT_S:.0f} s"
                    )
                raise SimulationStarting("its actors are not created yet")
            aggregator, clock_actor = self.handles.aggregator, self.handles.clock
            if time.monotonic() >= self._next_render_at:
                (latest, storage), clock = await asyncio.wait_for(
                    asyncio.gather(
                        aggregator.snapshot.remote(self._latest_interval_s),
                        clock_actor.status.remote(),
                    ),
                    REMOTE_TIMEOUT_S,
                )
            else:  # rendered too recently for this fleet's size: status only
                latest = None
                storage, clock = await asyncio.wait_for(
                    asyncio.gather(aggregator.status.remote(), clock_actor.status.remote()),
                    REMOTE_TIMEOUT_S,
                )
            if latest is not None:
                started = time.monotonic()
                today = storage.get("today")
                if latest.num_rows > RENDER_IN_THREAD_ROWS:
                    self.frame = await asyncio.to_thread(self._render, latest, today)
                else:
                    self.frame = self._render(latest, today)
                finished = time.monotonic()
                self._next_render_at = finished + RENDER_DUTY_FACTOR * (finished - started)
                self._latest_interval_s = storage.get("latest_interval_s")
            self.storage, self.clock_status = storage, clock
            self.refresh_error = None
            self.taken_at = time.monotonic()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.TimeoutError):
            reason = f"no answer from the simulation's actors in {REMOTE_TIMEOUT_S:.0f} s"
        else:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, ActorDiedError | SimulationNeverStarted) and self.gone is None:
            self.gone = reason
            log.warning("the simulation's actors are gone: %s", reason)
        elif self.refresh_error is None and self.taken_at:  # not just the start-up wait
            log.warning("REST API live view refresh failed: %s", reason)
        self.refresh_error = reason

    def _render(self, latest: pa.Table, today: dict | None = None) -> Frame:
        readings = views.reading_dicts(latest, self.phases) if latest.num_columns else []
        summary = None
        if readings:
            summary = views.campus_summary(self.campus_name, self.meters, latest, today)
        self._generation += 1
        frame = Frame(
            latest=latest,
            readings=readings,
            readings_by_meter={r["meter_id"]: r for r in readings},
            readings_json=json.dumps(readings).encode(),
            summary=summary,
            summary_json=json.dumps(summary).encode() if summary else b"",
            etag=f'"{self._boot}-{self._generation}"'.encode(),
        )
        for listener in self.frame_listeners:
            listener(frame)
        return frame

    async def ensure_fresh(self) -> None:
        """Returns at once: a request never waits for the simulation's actors. The background
        refresher keeps the view about ``REFRESH_S`` old; while an actor is too busy to
        answer, requests get the last data (after ``REMOTE_TIMEOUT_S`` without an answer,
        ``problem()`` says so). Waiting here for a refresh used to hold requests for as long
        as a busy aggregator or clock took to answer."""

    async def refresh_now(self) -> None:
        """Refresh at once (after a control command); a failure is recorded, not raised."""
        try:
            await self.refresh()
        except Exception as exc:
            self._failed(exc)

    async def run(self, period_s: float = REFRESH_S) -> None:
        """Refresh forever (the server's background task); failures are recorded, not fatal."""
        while self.gone is None:
            failing = self.refresh_error is not None
            try:
                await self.refresh()
                if failing:
                    log.info("REST API live view refreshing again")
            except Exception as exc:
                self._failed(exc)
            await asyncio.sleep(period_s)

    def problem(self) -> str | None:
        """Why the simulation is not producing readings (or cannot be seen), or None."""
        if self.gone is not None:
            return f"the simulation's actors are gone: {self.gone}"
        if not self.taken_at:
            detail = f" ({self.refresh_error})" if self.refresh_error else ""
            return f"the simulation is starting{detail}"
        if self.refresh_error is not None:
            return f"the simulation cannot be reached: {self.refresh_error}"
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

    def meters_json(self, frame: Frame) -> bytes:
        """``GET /api/meters`` for ``frame``, rendered on first use (it carries battery levels)."""
        if not frame.meters_json:
            levels = {r["meter_id"]: r["battery_level"] for r in frame.readings}
            frame.meters_json = json.dumps(views.meter_list(self.meters, levels)).encode()
        return frame.meters_json

    def meter_json(self, frame: Frame, meter_id: str) -> bytes | None:
        """One meter's latest reading in ``frame`` as JSON, or None when it has none yet."""
        body = frame.meter_json.get(meter_id)
        if body is None:
            reading = frame.readings_by_meter.get(meter_id)
            if reading is None:
                return None
            body = frame.meter_json[meter_id] = json.dumps(reading).encode()
        return body
