"""ClockActor: owns simulated time and drives the meter actors window by window.

Modes: real time (``speed`` 1: an interval is issued once it has ended on the wall clock),
accelerated (``speed`` X simulated seconds per wall second) and as fast as possible
(``speed`` None: windows of many intervals, back to back). At most ``max_in_flight`` windows are
between the clock and storage; the clock waits for the aggregator before issuing more
(backpressure). Each group's ``MeterState`` travels as an object reference from one window's step
to the next, so a restarted meter actor resumes exactly where its group stood.

The clock survives its own death: Ray restarts it and retries ``run``, which resumes from the
run's checkpoint (the meters' states at a stored window's end and the clock's speed, pause and
pacing anchor, kept by the aggregator with the stored readings). Windows between the checkpoint
and the end of storage are generated again and the aggregator drops the rows it has, so the run
goes on with every (meter, interval) stored exactly once.

While a paced run starts, the clock steps each meter group whose actor is not ready yet itself,
from the same state and with the same model, and hands the state over once the actor is up
(``standin``): the first interval is stored when it ends, not when 25 processes have started.

The clock also survives the loss of the windows in flight: when a meter actor's node dies, Ray
restarts its actors on the surviving nodes and retries their calls, and rebuilds lost readings
from their lineage. When that fails (``PIPELINE_LOST``: an object or actor Ray could not bring
back), the clock drops the windows in flight and resumes from the run's checkpoint, exactly as
after its own restart; each such recovery is counted and described in ``status``.

Operator commands carry a deadline: a command that reaches the clock after it is refused and
never applied, so a caller that gave up waiting can say truthfully that it was not applied.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray
from ray.util import metrics

from gtx_ray.ray_connect import one_line

if TYPE_CHECKING:  # the model is imported only by a clock that stands in for meters
    from gtx_ray.actors.standin import StandInPlan

log = logging.getLogger(__name__)

ACTIONS = ("pause", "resume", "stop")


PIPELINE_LOST = (
    ray.exceptions.RayActorError,  # a meter actor (or the aggregator) died and could not be
    ray.exceptions.ObjectLostError,  # reached, or readings/states were lost with their node
)
"""Failures of the window pipeline the clock recovers from by resuming at the checkpoint. A
``RayTaskError`` (the model or storage raised) is not one: it ends the run with its cause."""
MAX_RECOVERIES_IN_A_ROW = 5  # without a window stored in between: the run ends on the error
RECOVERY_PAUSE_S = 1.0  # times the recoveries in a row: Ray is still restarting actors
EARLY_S = 5.0
"""While the clock stands in for every meter group (start-up), it hands a paced run's next
window to the aggregators this long (wall s) before it ends, to be stored when it has: while 25
processes start on 2 cores, a call between two actors can take a second; the aggregator's own
timer does not. A stop or pause waits at most this long for such a window (it is in flight)."""


class CommandExpired(RuntimeError):
    """An operator command reached the clock after its deadline; it was not applied."""


@dataclass(frozen=True)
class ClockPlan:
    """When and how fast to run. Times are UTC epoch seconds aligned to the interval."""

    start_s: int
    interval_s: int
    end_s: int | None  # None: forever
    speed: float | None  # simulated s per wall s; None: as fast as possible
    window_intervals: int  # most intervals per step call in paced modes
    fast_window_intervals: int  # most intervals per step call as fast as possible
    max_in_flight: int
    rows_per_interval: int  # meters in the fleet
    # Wall time (UTC epoch s) at which simulated ``start_s`` is due in paced modes; None: when
    # ``run`` begins. A real-time run from "now" sets ``start_s`` here, so simulated time is the
    # wall clock and an interval is issued as soon as it has ended, however long the actors took
    # to start (else the first reading waited a whole interval after they were up).
    wall_anchor_s: float | None = None


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class ClockActor:
    """See the module docstring."""

    def __init__(
        self,
        plan: ClockPlan,
        meter_actor_names: list[str],
        aggregator_names: list[str],
        namespace: str,
        aggregator_of: list[int] | None = None,
        standin: StandInPlan | None = None,
    ):
        """``aggregator_of``: the index in ``aggregator_names`` of each meter group's aggregator
        (None: the first one stores every group). ``standin``: step the groups whose actors are
        still starting here (see ``actors.standin``); None: wait for the actors.

        The meter actors may be created after the clock (they are looked up by name when
        needed), the aggregators must exist before it."""
        # Names, not handles: the arguments stay small and inline, so Ray can restart this actor
        # without depending on objects its creator holds.
        self._plan = plan
        self._namespace = namespace
        self._meter_names = meter_actor_names
        self._meters: list = [None] * len(meter_actor_names)  # handles, once the actors exist
        self._ready: list = [None] * len(meter_actor_names)  # futures of their start
        self._standins = None
        self._standin_wall_s = 0.0
        if standin is not None:
            from gtx_ray.actors.standin import StandIns  # the model: only a clock that needs it

            self._standins = StandIns(standin)
            self._standin_wall_s = standin.max_wall_s
        self._standing_in: dict[int, Any] = {}  # group → its MeterState, stepped here
        self._caught_up: dict[int, list] = {}  # group → (window end s, batch) its clients lack
        self._prepared: dict[int, tuple] = {}  # group → (from s, intervals, its next window)
        self._handed_over: set[int] = set()
        self._standin_until = 0.0
        self._aggregators = [ray.get_actor(name, namespace=namespace) for name in aggregator_names]
        owner = aggregator_of or [0] * len(self._meters)
        self._groups_of = [
            [g for g, a in enumerate(owner) if a == k] for k in range(len(self._aggregators))
        ]
        # where each aggregator's groups stand: after a resume some may be ahead of the clock
        self._aggregator_next_s = [plan.start_s] * len(self._aggregators)
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()  # stop, resume or a new speed: wake a sleeping clock
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._speed = plan.speed
        self._next_start_s = plan.start_s
        self._issued_intervals = 0
        self._stored_intervals = 0
        self._in_flight = 0
        self._lag_s = 0.0
        self._run_began = 0.0
        self._wall_start = 0.0
        self._running = False
        self._finished = False
        self._error: str | None = None
        self._recoveries: list[dict[str, Any]] = []  # pipeline losses recovered from, oldest first
        self._recoveries_in_a_row = 0
        self._readings_metric = metrics.Counter(
            "gtx_readings_generated", description="Readings generated by the meter actors."
        )
        self._lag_metric = metrics.Gauge(
            "gtx_tick_lag_seconds",
            description="How far stored simulated time trails the wall clock (paced modes), s.",
        )
        self._inflight_metric = metrics.Gauge(
            "gtx_windows_in_flight", description="Windows issued but not yet queued for storage."
        )

    def _due_wall(self, sim_s: float) -> float:
        """Wall time at which simulated time ``sim_s`` is reached (paced modes)."""
        assert self._speed is not None
        return self._wall_start + (sim_s - self._plan.start_s) / self._speed

    def _intervals_due(self, now: float) -> int:
        """Whole intervals that have ended in simulated time and are not issued yet."""
        plan = self._plan
        if self._speed is None:
            return plan.fast_window_intervals
        sim_now = plan.start_s + (now - self._wall_start) * self._speed
        return int((sim_now - self._next_start_s) // plan.interval_s)

    def _window_limit(self) -> int:
        return (
            self._plan.fast_window_intervals if self._speed is None else self._plan.window_intervals
        )

    def _reanchor(self) -> None:
        """Pace from where the simulation stands now (after a pause or a change of speed), so it
        neither jumps ahead nor bursts to catch up."""
        if self._speed is not None:
            self._wall_start = time.time() - (self._next_start_s - self._plan.start_s) / self._speed

    def _settings(self) -> dict[str, Any]:
        """What a restarted clock needs besides the meters' states (checkpointed with them)."""
        return {
            "speed": self._speed,
            "paused": not self._resumed.is_set(),
            "wall_start": self._wall_start,
        }

    def _remember_settings(self) -> None:
        for aggregator in self._aggregators:  # no wait: a command is atomic
            aggregator.remember_clock.remote(self._settings())

    def _look_up_meters(self) -> bool:
        """Look up the meter actors the driver has created since the last call (one call to
        Ray's name registry, then one per new actor); True once every one is known."""
        missing = {self._meter_names[g] for g, meter in enumerate(self._meters) if meter is None}
        if not missing:
            return True
        named = {
            actor["name"]
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor.get("namespace") == self._namespace and actor["name"] in missing
        }
        for g, name in enumerate(self._meter_names):
            if name in named and self._meters[g] is None:
                try:
                    meter = ray.get_actor(name, namespace=self._namespace)
                except ValueError:  # gone again meanwhile: looked up next time
                    continue
                # in this order: the window path (another thread) reads ``_meters`` first
                self._ready[g] = meter.__ray_ready__.remote().future()
                self._meters[g] = meter
        return all(meter is not None for meter in self._meters)

    async def _find_meters(self) -> None:
        """Look the meter actors up until every one is known, off the window path (each look-up
        is a call to Ray's control store, slow while many processes start)."""
        while True:
            try:
                if await asyncio.to_thread(self._look_up_meters):
                    return
            except ray.exceptions.RayError as exc:  # the control store is busy: try again
                log.warning("looking up the meter actors: %s", one_line(exc, 200))
            await asyncio.sleep(0.2)

    def _actor_ready(self, g: int) -> bool:
        """True once group ``g``'s actor has started (or failed to: its first step says why)."""
        return self._meters[g] is not None and self._ready[g].done()

    def _hand_over_now(self) -> bool:
        """Whether the groups that stand in go to their actors from this window on: all at
        once, when every one of those actors is ready (a window waits for its slowest group,
        and an actor's first steps are slow while others still start), or when the
        stand-ins' time is up."""
        if time.monotonic() >= self._standin_until:
            return True
        return all(self._actor_ready(g) for g in self._standing_in)

    def _start_state(self, g: int, start_s: int) -> Any:
        """Group ``g``'s state at ``start_s``: from its stand-in while it stands in, else from
        its actor (a reference)."""
        if self._standins is not None and g not in self._handed_over:
            self._standing_in[g] = self._standins.initial_state(g, start_s)
            return self._standing_in[g]
        return self._meters[g].initial_state.remote(start_s)

    def _resume_standin(self, g: int, state: Any, state_s: int) -> None:
        """A group that still stands in resumes from a checkpoint at ``state_s``: its clients
        will still get the readings stepped before it, the later ones are stepped again."""
        if self._standins is None or g in self._handed_over:
            return
        self._standing_in[g] = state
        self._prepared.pop(g, None)
        kept = [(end, batch) for end, batch in self._caught_up.get(g, []) if end <= state_s]
        self._caught_up[g] = kept

    def _step(
        self, g: int, state: Any, n: int, window_end: int, hand_over: bool
    ) -> tuple[Any, Any]:
        """Step group ``g`` by ``n`` intervals: its (batch, state), references from its actor
        or values from its stand-in while the actor is starting (until ``hand_over``); the
        actor's first step after that carries the group's state and the readings its clients
        have not seen."""
        if g not in self._standing_in:
            return self._meters[g].step.remote(state, n)
        if not hand_over or self._meters[g] is None:
            own_state = self._standing_in[g]
            prepared = self._prepared.pop(g, None)
            if prepared is not None and prepared[:2] == (own_state.next_start_s, n):
                result = prepared[2]
            else:
                result = self._standins.step(g, own_state, n)
            self._standing_in[g] = result.state
            # values, not ray.put: a few kB each, they travel inside the calls that carry them
            self._caught_up.setdefault(g, []).append((window_end, result.batch))
            return result.batch, result.state
        own_state = self._standing_in.pop(g)
        self._prepared.pop(g, None)
        earlier = [batch for _, batch in self._caught_up.pop(g, [])]
        self._handed_over.add(g)
        self._standins.drop(g)
        if not self._standing_in:
            log.info(
                "every meter actor steps its own meters now (%.1f s after the clock began)",
                time.time() - self._run_began,
            )
        return self._meters[g].step.remote(own_state, n, None, *earlier)

    def _prepare_standins(self, n: int) -> None:
        """Step the next window of ``n`` intervals of every group that stands in, ahead of its
        time: its readings are stored only once it has ended, but computing them need not wait,
        and while the meter actors start the clock gets a small share of the CPU."""
        for g, state in self._standing_in.items():
            if self._prepared.get(g, (None, None))[:2] != (state.next_start_s, n):
                self._prepared[g] = (state.next_start_s, n, self._standins.step(g, state, n))

    async def _initial_states(self, restore_settings: bool = True) -> list:
        """The groups' states to start from: the run's checkpoint after a restart of this actor
        or a loss of the pipeline (with ``restore_settings``, the clock's settings restored with
        it), else the start of the run."""
        plan = self._plan
        checkpoints = await asyncio.gather(*[a.resume_point.remote() for a in self._aggregators])
        states: list = [None] * len(self._meters)
        for k, checkpoint in enumerate(checkpoints):
            groups = self._groups_of[k]
            if checkpoint.states is None or checkpoint.state_s is None:
                self._aggregator_next_s[k] = plan.start_s
                for g in groups:
                    self._resume_standin(g, None, plan.start_s)
                    states[g] = self._start_state(g, plan.start_s)
                continue
            self._aggregator_next_s[k] = checkpoint.state_s
            for g, state in zip(groups, checkpoint.states, strict=True):
                self._resume_standin(g, state, checkpoint.state_s)
                states[g] = ray.put(state)
        self._next_start_s = min(self._aggregator_next_s)
        self._issued_intervals = self._stored_intervals = (
            self._next_start_s - plan.start_s
        ) // plan.interval_s
        if any(checkpoint.states is not None for checkpoint in checkpoints):
            if restore_settings:
                self._restore_settings(checkpoints[0].clock)
            log.warning(
                "clock resuming at %d from the run's checkpoint (stored up to %d)",
                self._next_start_s,
                min(checkpoint.stored_until_s for checkpoint in checkpoints),
            )
        return states

    def _restore_settings(self, settings: dict[str, Any]) -> None:
        self._speed = settings.get("speed", self._speed)
        if settings.get("wall_start"):
            self._wall_start = settings["wall_start"]
        if settings.get("paused"):
            self._resumed.clear()

    async def _recover(self, pending: collections.deque, exc: BaseException) -> list:
        """Forget the windows in flight (the aggregator ignores any of them that still arrive,
        or trims what it has) and resume from the run's checkpoint; returns the states. Raises
        ``exc`` when the run made no progress over ``MAX_RECOVERIES_IN_A_ROW`` recoveries (an
        actor ended for good, say), after a pause that grows with each."""
        if self._recoveries and self._recoveries[-1]["stored_intervals"] == self._stored_intervals:
            self._recoveries_in_a_row += 1
        else:
            self._recoveries_in_a_row = 1
        if self._recoveries_in_a_row > MAX_RECOVERIES_IN_A_ROW:
            raise exc
        await asyncio.sleep(RECOVERY_PAUSE_S * self._recoveries_in_a_row)
        lost_from_s = self._next_start_s - sum(n for _, n, _ in pending) * self._plan.interval_s
        pending.clear()
        self._set_in_flight(0)
        # the pacing anchor stays: a real-time run catches up with the wall clock
        states = await self._initial_states(restore_settings=False)
        recovery = {
            "time": time.time(),
            "cause": f"{type(exc).__name__}: {one_line(exc, 200)}",
            "windows_lost_from_s": lost_from_s,
            "resumed_at_s": self._next_start_s,
            "stored_intervals": self._stored_intervals,
        }
        self._recoveries.append(recovery)
        log.warning(
            "the window pipeline was lost (%s): windows from %d are generated again from the "
            "checkpoint at %d; nothing is stored twice",
            recovery["cause"],
            lost_from_s,
            self._next_start_s,
        )
        return states

    async def run(self) -> dict[str, Any]:
        """Drive the meters until the end time or ``stop``; return the final status."""
        plan = self._plan
        self._running = True
        self._wall_start = plan.wall_anchor_s if plan.wall_anchor_s is not None else time.time()
        self._run_began = time.time()
        self._standin_until = time.monotonic() + self._standin_wall_s
        finding = asyncio.ensure_future(self._find_meters())
        pending: collections.deque = collections.deque()
        try:
            if self._standins is None and not await self._until_found_or_stopped(finding):
                return await self.status()  # stopped before the meter actors existed
            states = await self._initial_states()
            while True:
                try:
                    await self._run_windows(states, pending)
                    break
                except PIPELINE_LOST as exc:
                    states = await self._recover(pending, exc)
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("the clock stopped on an error")
            for acks, _, _ in pending:
                for ack in acks:
                    ray.cancel(ack, force=False)
            raise
        finally:
            finding.cancel()
            self._running = False
            self._finished = True
        return await self.status()

    async def _until_found_or_stopped(self, finding: asyncio.Future) -> bool:
        """Wait for every meter actor to be known (True) or for ``stop`` (False)."""
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([finding, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        return finding.done()

    async def _run_windows(self, states: list, pending: collections.deque) -> None:
        """Issue windows until the end time or ``stop`` and wait for them to be stored."""
        plan = self._plan
        while not self._stop.is_set():
            remaining = (
                None if plan.end_s is None else (plan.end_s - self._next_start_s) // plan.interval_s
            )
            if remaining is not None and remaining <= 0:
                break
            if not self._resumed.is_set():
                await self._drain(pending)
                stop_or_resume = [
                    asyncio.ensure_future(self._stop.wait()),
                    asyncio.ensure_future(self._resumed.wait()),
                ]
                await asyncio.wait(stop_or_resume, return_when=asyncio.FIRST_COMPLETED)
                for waiter in stop_or_resume:
                    waiter.cancel()
                continue
            due = self._intervals_due(time.time())
            release_at = None
            if due < 1 and not pending and self._may_issue_early():
                due, release_at = 1, self._due_wall(self._next_start_s + plan.interval_s)
            if due < 1:
                if pending:  # nothing to issue: account for what is done, then look again
                    await self._drain(pending)
                    continue
                if self._standing_in:
                    self._prepare_standins(min(self._window_limit(), remaining or 1 << 30))
                wake = self._due_wall(self._next_start_s + plan.interval_s)
                if self._may_issue_early(at_any_time=True):
                    wake -= EARLY_S
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait(), timeout=max(0.0, wake - time.time())
                    )
                continue
            n = min(due, self._window_limit())
            if remaining is not None:
                n = min(n, remaining)
            window_end = self._next_start_s + n * plan.interval_s
            acks = self._issue(states, window_end, release_at)
            pending.append((acks, n, window_end))
            self._next_start_s = window_end
            self._issued_intervals += n
            self._set_in_flight(len(pending))
            while len(pending) >= plan.max_in_flight:
                await self._complete(pending[0])
                pending.popleft()
                self._set_in_flight(len(pending))
        await self._drain(pending)

    def _may_issue_early(self, at_any_time: bool = False) -> bool:
        """Whether the next interval may be issued ``EARLY_S`` before it ends: in a paced run
        while the clock stands in for every group and keeps doing so, once it is that close
        (or ``at_any_time``)."""
        if self._speed is None or len(self._standing_in) < len(self._meters):
            return False
        if self._hand_over_now():
            return False
        due = self._due_wall(self._next_start_s + self._plan.interval_s)
        return at_any_time or time.time() >= due - EARLY_S

    def _issue(self, states: list, window_end: int, release_at: float | None = None) -> list:
        """Step every group up to ``window_end`` and hand each aggregator its groups' batches
        (to store at wall time ``release_at``; None: now); returns the aggregators'
        acknowledgements. A group whose aggregator stored beyond the window's start (after a
        resume) steps from where it stands."""
        interval = self._plan.interval_s
        settings = self._settings()
        # an early window is never an actor's: its clients would post readings before their time
        early = release_at is not None
        hand_over = bool(self._standing_in) and not early and self._hand_over_now()
        acks = []
        for k, aggregator in enumerate(self._aggregators):
            start = max(self._next_start_s, self._aggregator_next_s[k])
            n = (window_end - start) // interval
            if n <= 0:
                continue
            batches = []
            for g in self._groups_of[k]:
                batch, states[g] = self._step(g, states[g], n, window_end, hand_over)
                batches.append(batch)
            own_states = [states[g] for g in self._groups_of[k]]
            acks.append(
                aggregator.ingest.remote(
                    start,
                    n,
                    *batches,
                    states=[own_states],
                    clock=settings,
                    not_before_s=release_at,
                )
            )
            self._aggregator_next_s[k] = window_end
        return acks

    async def _drain(self, pending: collections.deque) -> None:
        while pending:
            await self._complete(pending[0])  # popped once stored: a loss leaves it counted
            pending.popleft()
            self._set_in_flight(len(pending))

    async def _complete(self, item: tuple) -> None:
        acks, n, window_end = item
        rows = sum(await asyncio.gather(*acks))
        self._stored_intervals += n
        if rows > 0:  # 0 for a window that was stored before a restart
            self._readings_metric.inc(rows)
        if self._speed is not None:
            self._lag_s = max(0.0, time.time() - self._due_wall(window_end))
            self._lag_metric.set(self._lag_s)

    def _set_in_flight(self, count: int) -> None:
        self._in_flight = count
        self._inflight_metric.set(count)

    async def stop(self) -> None:
        """Stop issuing windows; ``run`` returns after the in-flight windows are queued."""
        self._stop.set()
        self._changed.set()

    async def pause(self) -> None:
        """Stop issuing windows until ``resume``; in-flight windows still complete."""
        self._resumed.clear()
        self._remember_settings()

    async def resume(self) -> None:
        if not self._resumed.is_set():
            self._reanchor()
            self._resumed.set()
            self._remember_settings()

    async def set_speed(self, speed: float | None) -> None:
        """Simulated seconds per wall second (None: as fast as possible), from now on."""
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 or None, got {speed}")
        self._speed = speed
        self._reanchor()
        self._changed.set()
        self._remember_settings()

    async def command(
        self,
        action: str | None = None,
        speed: float | None = None,
        change_speed: bool = False,
        deadline_s: float | None = None,
    ) -> dict[str, Any]:
        """Apply an operator command whole: a new ``speed`` (when ``change_speed``; None = as
        fast as possible), then ``action`` (pause, resume or stop). Refused, with nothing
        applied, when the wall clock is past ``deadline_s`` (UTC epoch s) or an argument is
        invalid. Returns the status after it."""
        if deadline_s is not None and time.time() > deadline_s:
            raise CommandExpired(
                f"the command arrived {time.time() - deadline_s:.1f} s after its deadline"
            )
        if action is not None and action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if change_speed and speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 or None, got {speed}")
        if change_speed:  # no await between checking the deadline and applying
            await self.set_speed(speed)
        if action is not None:
            await getattr(self, action)()
        return await self.status()

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (hex id)."""
        return ray.get_runtime_context().get_node_id()

    async def status(self) -> dict[str, Any]:
        plan = self._plan
        total = None if plan.end_s is None else (plan.end_s - plan.start_s) // plan.interval_s
        return {
            "running": self._running,
            "finished": self._finished,
            "error": self._error,
            "start_s": plan.start_s,
            "end_s": plan.end_s,
            "interval_s": plan.interval_s,
            "speed": self._speed,
            "paused": not self._resumed.is_set(),
            "next_start_s": self._next_start_s,
            "intervals_issued": self._issued_intervals,
            "intervals_done": self._stored_intervals,
            "intervals_total": total,
            "readings_done": self._stored_intervals * plan.rows_per_interval,
            "windows_in_flight": self._in_flight,
            "lag_s": self._lag_s,
            "groups_standing_in": len(self._standing_in),
            "recoveries": len(self._recoveries),
            "last_recovery": self._recoveries[-1] if self._recoveries else None,
            "wall_elapsed_s": (time.time() - self._wall_start) if self._wall_start else 0.0,
        }
