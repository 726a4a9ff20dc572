"""Driver-side orchestration: connect to Ray, place the fleet on meter actors, start the clock and
the aggregator, report status, shut down cleanly. The CLI and the integration tests use this."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ray

from gtx_ray.actors import AGGREGATOR_NAME, CLOCK_NAME
from gtx_ray.actors.aggregator import AggregatorActor
from gtx_ray.actors.clock import ClockActor, ClockPlan
from gtx_ray.actors.meter import ClientPlan, MeterActor
from gtx_ray.actors.standin import StandInPlan, wants_standins
from gtx_ray.errors import ConfigError
from gtx_ray.fleet import CampusConfig, MeterArrays, generate_fleet, load_campus
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.placement import meter_placements, object_store_bytes, on_node
from gtx_ray.settings import Settings
from gtx_ray.storage.parquet import new_run_id

log = logging.getLogger(__name__)

MAX_ACTORS = 400  # each actor is a process of ~60–90 MiB (DESIGN.md §4)
TARGET_ROWS_PER_CALL = 200_000  # as-fast-as-possible windows: ~0.1 s of numpy per call
METER_ACTORS_PER_CPU = 1  # automatic packing for generated fleets
READING_BYTES = 256  # one reading in a window's RecordBatches (27 columns; 253 B measured)
STORE_SHARE = 0.25  # of the home node's object store, for windows on their way to storage


class AlreadyRunning(ConfigError):
    """Another simulation holds the actor names in this Ray namespace."""


def connect_ray(settings: Settings) -> bool:
    """Join the configured cluster (``local`` forces a new local one), or a cluster running on this
    host, else start Ray locally; ``ray_connect.RayUnavailable`` (exit 2) or ``RayStartFailed``
    (exit 1) with one clear line when that fails.

    Returns True when this process started Ray (and so must shut it down).
    """
    from gtx_ray.ray_connect import connect

    return connect(settings.address, settings.namespace)


def build_fleet(settings: Settings) -> tuple[CampusConfig, MeterArrays, bool]:
    """The campus from the config file, or N generated meters: (campus, meters, is_campus)."""
    campus = load_campus(settings.config_file)
    if settings.meters is None:
        return campus, MeterArrays.from_specs(campus.meters), True
    return campus, generate_fleet(campus, settings.meters, settings.seed), False


def plan_groups(
    n_meters: int, meters_per_actor: int | None, is_campus: bool, cpus: float
) -> list[range]:
    """Split meter indices into actor groups: one meter per actor on the campus (the shape users see
    in the dashboard); otherwise ``meters_per_actor`` or about one actor per CPU."""
    if meters_per_actor is None:
        if is_campus:
            meters_per_actor = 1
        else:
            actors = max(1, min(int(cpus * METER_ACTORS_PER_CPU), math.ceil(n_meters / 1000)))
            meters_per_actor = math.ceil(n_meters / actors)
    actors = math.ceil(n_meters / meters_per_actor)
    if actors > MAX_ACTORS:
        raise ConfigError(
            f"--meters-per-actor {meters_per_actor} would start {actors} meter actors for "
            f"{n_meters} meters (limit {MAX_ACTORS}; each actor is a process): pack more meters "
            "per actor"
        )
    return [
        range(i, min(i + meters_per_actor, n_meters)) for i in range(0, n_meters, meters_per_actor)
    ]


def actor_name(meters: MeterArrays) -> str:
    ids = meters.meter_id
    return f"meter:{ids[0]}" if len(ids) == 1 else f"meters:{ids[0]}..{ids[-1]}"


def window_intervals(settings: Settings, largest_group: int) -> tuple[int, int]:
    """Most intervals per step call: (paced, as fast as possible).

    Paced: one, or about a second's worth when the speed makes many intervals due per second.
    As fast as possible: enough for ~TARGET_ROWS_PER_CALL rows per actor, at most a month (small
    groups, such as the campus's one meter per actor, would otherwise pay an actor call and a
    storage flush per day of readings). ``--window`` sets both.
    """
    if settings.window_intervals is not None:
        return settings.window_intervals, settings.window_intervals
    per_day = 86_400 // settings.interval_s
    fast = max(1, min(31 * per_day, TARGET_ROWS_PER_CALL // max(1, largest_group)))
    due_per_second = (settings.speed or 1.0) / settings.interval_s
    return max(1, min(per_day, int(due_per_second))), fast


@dataclass(frozen=True)
class WindowBudget:
    """How much may be on its way to storage: windows in flight (clock → aggregator) and as
    many queued in the aggregator, each at most ``fast_window_intervals`` long."""

    fast_window_intervals: int
    max_in_flight: int


def window_budget(
    n_meters: int, fast_window: int, max_in_flight: int, store_bytes: float
) -> WindowBudget:
    """Bound the readings between the meters and storage to ``STORE_SHARE`` of the home node's
    object store (``store_bytes``), where every window's batches end up until they are stored:
    shorter as-fast-as-possible windows first, then fewer in flight (at least one of a single
    interval: a fleet too large for that is still run, its windows spilled by Ray)."""
    budget = STORE_SHARE * store_bytes
    interval_bytes = n_meters * READING_BYTES
    fast = max(1, min(fast_window, int(budget // (2 * interval_bytes))))
    fits = int(budget // (2 * fast * interval_bytes))
    return WindowBudget(fast, max(1, min(max_in_flight, fits)))


@dataclass(frozen=True)
class Layout:
    """What a simulation will run before any actor exists: the fleet, its actor groups and
    names, and the simulated span (the REST API can be deployed from this, ahead of the actors).
    """

    campus: CampusConfig
    meters: MeterArrays
    groups: list[range]
    meter_actor_names: list[str]
    start_s: int
    end_s: int | None
    aggregator_names: tuple[str, ...] = (AGGREGATOR_NAME,)  # the first one leads
    aggregator_of: tuple[int, ...] | None = None  # each group's aggregator; None: the first

    @property
    def actor_names(self) -> list[str]:
        return [CLOCK_NAME, *self.aggregator_names, *self.meter_actor_names]


def share_groups(n_groups: int, n_aggregators: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Names of the aggregators (at most one per group) and each group's aggregator: contiguous
    shares as equal as they can be, so meter order is aggregator order."""
    count = max(1, min(n_aggregators, n_groups))
    names = (AGGREGATOR_NAME, *(f"{AGGREGATOR_NAME}-{k}" for k in range(1, count)))
    return names, tuple(g * count // n_groups for g in range(n_groups))


@dataclass
class Simulation:
    """A running simulation's handles (``meter_actors`` empty until ``start_meters``)."""

    settings: Settings
    campus: CampusConfig
    meters: MeterArrays
    groups: list[range]
    plan: ClockPlan
    meter_actors: list
    aggregator: Any
    clock: Any
    layout: Layout | None = None
    aggregators: list = field(default_factory=list)  # every aggregator, the leader first
    run_ref: Any = None
    inputs: ModelInputs | None = None  # the scenario's, handed to every meter actor

    @property
    def n_meters(self) -> int:
        return len(self.meters)

    def status(self, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """Clock and storage status, or None while the actors are starting or being restarted
        by Ray after a death."""
        try:
            clock, storage = ray.get(
                [self.clock.status.remote(), self.aggregator.status.remote()], timeout=timeout_s
            )
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
            return None
        return {"clock": clock, "storage": storage}

    def stop(self) -> None:
        """Ask the clock to stop (idempotent: call again if it may have been restarted since)."""
        self.clock.stop.remote()

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the clock has finished (end reached or stopped)."""
        ready, _ = ray.wait([self.run_ref], timeout=timeout_s)
        return bool(ready)

    def finish(self, timeout_s: float = 600.0, keep_actors: bool = False) -> dict[str, Any]:
        """Wait for the clock, store everything queued, close sinks, end the actors (unless
        ``keep_actors``: then ``release`` ends them). Raises ``SimulationFailed`` (with the
        storage status when the aggregator could give it) when the clock ended on an error or
        the actors could not be reached."""
        error: BaseException | None = None
        try:
            ray.get(self.run_ref, timeout=timeout_s)
        except Exception as exc:  # reported to the caller after the flush
            error = exc
        try:  # let the meters' 2030.5 clients post what they hold
            ray.get([a.stop_clients.remote(3.0) for a in self.meter_actors], timeout=10)
        except Exception as exc:
            log.warning("2030.5 clients did not stop cleanly: %s", exc)
        storage = clock = None
        try:
            storage = ray.get(self.aggregator.close.remote(), timeout=timeout_s)
            clock = ray.get(self.clock.status.remote(), timeout=timeout_s)
        except Exception as exc:
            error = error or exc
        finally:
            if error is not None or not keep_actors:
                self.release()
        if error is not None:
            raise SimulationFailed(error, storage)
        return {"clock": clock, "storage": storage}

    def release(self) -> None:
        """End the simulation's actors (after ``finish``)."""
        for actor in [self.clock, *(self.aggregators or [self.aggregator]), *self.meter_actors]:
            ray.kill(actor, no_restart=True)
        if self.layout is not None:  # Ray frees names asynchronously: let a next run reuse them
            _wait_names_free(self.layout.actor_names, self.settings.namespace)


class SimulationFailed(RuntimeError):
    """A run ended on an error; ``storage`` is the aggregator's last status (None if unknown)."""

    def __init__(self, cause: BaseException, storage: dict[str, Any] | None):
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        super().__init__(f"{type(cause).__name__}: {first_line}")
        self.cause = cause
        self.storage = storage


def influx_config(settings: Settings):
    """The InfluxDB sink's configuration, or None when InfluxDB is disabled."""
    if not settings.influxdb_enabled:
        return None
    from gtx_ray.storage.influx import InfluxConfig

    return InfluxConfig(
        url=settings.influxdb_url,
        token=settings.influxdb_token,
        org=settings.influxdb_org,
        bucket=settings.influxdb_bucket,
        api=settings.influxdb_api,
    )


def _wait_names_free(names: list[str], namespace: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            try:
                ray.get_actor(name, namespace=namespace)
            except ValueError:
                break
            if time.monotonic() > deadline:
                log.warning("actor %r still holds its name after %.0f s", name, timeout_s)
                return
            time.sleep(0.05)


def _check_names_free(names: list[str], namespace: str) -> None:
    for name in names:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            continue
        raise AlreadyRunning(
            f"a simulation is already running in Ray namespace {namespace!r} (actor {name!r} "
            "exists): stop it first or choose another --namespace"
        )


def plan_layout(settings: Settings, now_s: float | None = None) -> Layout:
    """The fleet, groups and span for ``settings`` (Ray must be connected: the group count
    depends on the cluster's CPUs); refuses a namespace where a simulation already runs.
    ``now_s``: when the run was asked for (UTC epoch s; default now): a run without ``--start``
    begins with the interval in progress then, so in real time its first interval ends at most
    one interval after the command, however long the start takes."""
    campus, meters, is_campus = build_fleet(settings)
    cpus = ray.cluster_resources().get("CPU", 1.0)
    groups = plan_groups(len(meters), settings.meters_per_actor, is_campus, cpus)
    names = [actor_name(meters.take(slice(g.start, g.stop))) for g in groups]
    if settings.start_s is not None:
        start_s = settings.start_s
    else:
        start_s = int(now_s if now_s is not None else time.time())
    start_s -= start_s % settings.interval_s
    end_s = None if settings.duration_s is None else start_s + settings.duration_s
    if end_s is not None and end_s - start_s < settings.interval_s:
        raise ConfigError(f"--duration must cover at least one interval ({settings.interval_s} s)")
    aggregator_names, aggregator_of = share_groups(len(groups), settings.aggregators)
    layout = Layout(campus, meters, groups, names, start_s, end_s, aggregator_names, aggregator_of)
    _check_names_free(layout.actor_names, settings.namespace)
    return layout


def wall_anchor_s(settings: Settings, start_s: int) -> float | None:
    """When simulated ``start_s`` is due on the wall clock (UTC epoch s): ``start_s`` itself for
    a real-time run from now (simulated time is the wall clock: the first interval is stored
    once it has ended, not one interval after the actors are up); None (when the clock starts)
    for an explicit ``--start`` or any other speed."""
    return float(start_s) if settings.start_s is None and settings.speed == 1.0 else None


def scenario_inputs(settings: Settings, campus: CampusConfig) -> ModelInputs:
    """The meter model's inputs for the run: the configured tariff, and the events and tariff
    changes of ``settings.scenario_file`` (ConfigError when it is not a valid scenario)."""
    from gtx_ray.scenario import Scenario, load_scenario, model_inputs

    scenario = Scenario.empty()
    if settings.scenario_file is not None:
        scenario = load_scenario(settings.scenario_file)
    return model_inputs(scenario, campus.model_tariff())


def group_credentials(clients: ClientPlan | None, meters: MeterArrays, group: range):
    """The certificates and keys of a group's meters, read here on the driver and carried to
    the group's actor through Ray (None when the meters are not 2030.5 clients)."""
    if clients is None:
        return None
    from gtx_ray.ieee2030_5.pki.bundle import CredentialBundle

    ids = [str(meter_id) for meter_id in meters.meter_id[group.start : group.stop]]
    return CredentialBundle.read(clients.certs_dir, ids, clients.ca_file)


def start_simulation(
    settings: Settings, clients: ClientPlan | None = None, layout: Layout | None = None
) -> Simulation:
    """Create the actors and start the clock (Ray must be connected). ``clients``: make every
    meter an IEEE 2030.5 client of that server; ``layout``: from ``plan_layout`` (planned here
    when not given)."""
    simulation = start_clock(settings, layout)
    start_meters(simulation, clients)
    return simulation


def clock_plan(settings: Settings, layout: Layout) -> ClockPlan:
    """The clock's plan for ``layout``: its span, speed, and windows bounded by the home node's
    object store (see ``window_budget``)."""
    meters, groups = layout.meters, layout.groups
    paced_window, fast_window = window_intervals(settings, max(len(g) for g in groups))
    budget = window_budget(
        len(meters), fast_window, settings.max_in_flight, object_store_bytes(settings.home_node)
    )
    paced_window = min(paced_window, budget.fast_window_intervals)
    if budget != WindowBudget(fast_window, settings.max_in_flight):
        say = log.info if settings.speed is None else log.debug  # paced: no news to a user
        say(
            "windows of %d intervals, %d in flight: what is on its way to storage stays within "
            "%.0f%% of the home node's object store",
            budget.fast_window_intervals,
            budget.max_in_flight,
            100 * STORE_SHARE,
        )
    return ClockPlan(
        start_s=layout.start_s,
        interval_s=settings.interval_s,
        end_s=layout.end_s,
        speed=settings.speed,
        window_intervals=paced_window,
        fast_window_intervals=budget.fast_window_intervals,
        max_in_flight=budget.max_in_flight,
        rows_per_interval=len(meters),
        wall_anchor_s=wall_anchor_s(settings, layout.start_s),
    )


def standin_plan(settings: Settings, layout: Layout, inputs: ModelInputs) -> StandInPlan | None:
    """What the clock needs to step meter groups while their actors start (None: it waits for
    them; see ``actors.standin``)."""
    if not wants_standins(settings.speed, len(layout.meters)):
        return None
    bounds = tuple((g.start, g.stop) for g in layout.groups)
    return StandInPlan(
        layout.campus, settings.meters, settings.seed, settings.interval_s, inputs, bounds
    )


def start_clock(settings: Settings, layout: Layout | None = None) -> Simulation:
    """Create the aggregators and the clock and start the run, before any meter actor exists:
    in a paced run of a small fleet the clock stands in for the meters until their actors are
    up (``start_meters``), so the first readings are stored as soon as their interval ends."""
    if layout is None:
        layout = plan_layout(settings)
    else:
        _check_names_free(layout.actor_names, settings.namespace)
    plan = clock_plan(settings, layout)
    inputs = scenario_inputs(settings, layout.campus)
    created: list = []  # a failure half way (e.g. a name taken meanwhile) leaves no actors
    try:
        home = on_node(settings.home_node)  # DATA_DIR is that node's (see placement)
        run_id = new_run_id()  # fixed here: a restarted aggregator resumes the same run
        aggregators = []
        names = layout.aggregator_names
        for k, name in enumerate(names):
            aggregators.append(
                AggregatorActor.options(name=name, namespace=settings.namespace, **home).remote(
                    str(Path(settings.data_dir).resolve()),
                    layout.start_s,
                    settings.interval_s,
                    queue_windows=plan.max_in_flight,
                    influx=influx_config(settings),
                    run_id=run_id if k == 0 else f"{run_id}a{k}",  # own parts and checkpoint
                    utc_offset_s=layout.campus.site.utc_offset_s,
                    peers=names[1:] if k == 0 else (),
                    namespace=settings.namespace,
                    index=k,
                )
            )
            created.append(aggregators[-1])
        clock = ClockActor.options(name=CLOCK_NAME, namespace=settings.namespace, **home).remote(
            plan,
            layout.meter_actor_names,
            list(layout.aggregator_names),
            settings.namespace,
            list(layout.aggregator_of) if layout.aggregator_of else None,
            standin_plan(settings, layout, inputs),
        )
        created.append(clock)
    except BaseException:
        for actor in created:
            ray.kill(actor, no_restart=True)
        raise
    simulation = Simulation(
        settings,
        layout.campus,
        layout.meters,
        layout.groups,
        plan,
        [],
        aggregators[0],
        clock,
        layout,
        aggregators,
        inputs=inputs,
    )
    simulation.run_ref = clock.run.remote()
    return simulation


def start_meters(simulation: Simulation, clients: ClientPlan | None = None) -> None:
    """Create the meter actors of a simulation whose clock runs (``start_clock``). ``clients``:
    make every meter an IEEE 2030.5 client of that server. A failure ends the simulation's
    actors."""
    settings, layout = simulation.settings, simulation.layout
    assert layout is not None
    if clients is not None and clients.record_dir is None:
        learned = Path(settings.data_dir).resolve() / "learned"
        clients = replace(clients, record_dir=str(learned))
    placements = meter_placements(len(layout.groups))
    try:
        for g, name, placement in zip(
            layout.groups, layout.meter_actor_names, placements, strict=True
        ):
            simulation.meter_actors.append(
                MeterActor.options(name=name, namespace=settings.namespace, **placement).remote(
                    layout.campus,
                    settings.meters,
                    settings.seed,
                    g.start,
                    g.stop,
                    settings.interval_s,
                    clients,
                    simulation.inputs,
                    settings.namespace,
                    group_credentials(clients, layout.meters, g),
                )
            )
    except BaseException:
        simulation.release()
        raise
    log.info(
        "started %d meters on %d meter actors, interval %d s, window %d intervals",
        len(layout.meters),
        len(simulation.meter_actors),
        settings.interval_s,
        simulation.plan.window_intervals,
    )
