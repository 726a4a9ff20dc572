"""Stand-ins: the clock steps a meter group itself while the group's actor is still starting.

A run in real time owes its first readings as soon as its first interval has ended, which on a
small machine comes before 25 meter actor processes have started (each imports Ray, numpy,
pyarrow, the model and the 2030.5 client stack: benchmarks/results/startup.md). A group's step is
a pure function of its state (``MeterModel``), so the clock computes exactly the readings the
actor would have computed from the same state, stores them, and hands the state over once the
actor is ready, together with the readings stepped meanwhile so that the group's 2030.5 clients
mirror those too. The one-actor-per-meter shape stays: every window after the hand-over is the
actor's.

What a stand-in does not know is what the meters learn over IEEE 2030.5 (demand response,
prices, DER controls): it steps with the scenario's inputs only, exactly as a meter actor does
before its clients have polled anything.

Stand-ins are for paced runs of small fleets (``STANDIN_MAX_METERS``): an as-fast-as-possible run
would otherwise simulate days in the clock before its actors are up, and a large fleet is
better generated once per actor than again in the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from gtx_ray.fleet import CampusConfig, MeterArrays, generate_fleet
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel, MeterState, WindowResult

STANDIN_MAX_METERS = 10_000
STANDIN_MAX_WALL_S = 120.0


@dataclass(frozen=True)
class StandInPlan:
    """What the meter actors are built from (the same arguments), for the clock to build the
    same models: the campus, the generated fleet's size (None: the campus's meters), the seed,
    the interval (s), the scenario's inputs and each group's meter index range [lo, hi).

    ``max_wall_s``: a group whose actor is not ready this long (wall s) after the clock began
    gets its windows anyway (they wait in Ray's queue): a stand-in bridges start-up, it is not a
    second fleet."""

    campus: CampusConfig
    fleet_size: int | None
    seed: int
    interval_s: int
    inputs: ModelInputs
    bounds: tuple[tuple[int, int], ...]
    max_wall_s: float = STANDIN_MAX_WALL_S


def wants_standins(speed: float | None, n_meters: int) -> bool:
    """Stand-ins bridge the start of paced runs of up to ``STANDIN_MAX_METERS`` meters."""
    return speed is not None and n_meters <= STANDIN_MAX_METERS


class StandIns:
    """The groups' models, built on first use (the clock of a run whose actors are quick never
    builds one)."""

    def __init__(self, plan: StandInPlan) -> None:
        self._plan = plan
        self._fleet: MeterArrays | None = None
        self._models: dict[int, MeterModel] = {}

    def _meters(self, group: int) -> MeterArrays:
        plan = self._plan
        lo, hi = plan.bounds[group]
        if plan.fleet_size is None:
            return MeterArrays.from_specs(plan.campus.meters[lo:hi])
        if self._fleet is None:  # once for every group, not once per group
            self._fleet = generate_fleet(plan.campus, plan.fleet_size, plan.seed)
        return self._fleet.take(slice(lo, hi))

    def _model(self, group: int) -> MeterModel:
        if group not in self._models:
            plan = self._plan
            self._models[group] = MeterModel(
                self._meters(group), plan.campus, plan.seed, plan.interval_s
            )
        return self._models[group]

    def initial_state(self, group: int, start_s: int) -> MeterState:
        return self._model(group).initial_state(start_s)

    def step(self, group: int, state: MeterState, n_intervals: int) -> WindowResult:
        """The group's readings for ``n_intervals`` intervals from ``state``, as its actor would
        step them before its clients have learned anything."""
        return self._model(group).step(state, n_intervals, None, self._plan.inputs)

    def drop(self, group: int) -> None:
        """The group's actor took over: its model is not needed again."""
        self._models.pop(group, None)
        if not self._models:
            self._fleet = None
