"""MeterActor: a group of meters on Ray (one meter per actor on the campus, many at scale).

The actor keeps no simulation state of its own: the clock passes the group's ``MeterState`` in and
gets the new one back with the readings. A killed actor is restarted by Ray (``max_restarts``) and
the interrupted call retried (``max_task_retries``) with the same state, so it yields exactly the
readings it would have yielded: nothing lost, nothing twice.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import ray

from gtx_ray.fleet import CampusConfig, MeterArrays, generate_fleet
from gtx_ray.model.meters import MeterModel, MeterState


def fleet_group(
    campus: CampusConfig, fleet_size: int | None, seed: int, lo: int, hi: int
) -> MeterArrays:
    """Meters ``lo``..``hi``-1 of the campus (``fleet_size`` None) or of the generated fleet.

    Fleets are a pure function of (campus, size, seed), so an actor rebuilds its group from these
    few numbers instead of receiving arrays through the object store.
    """
    if fleet_size is None:
        return MeterArrays.from_specs(campus.meters[lo:hi])
    return generate_fleet(campus, fleet_size, seed).take(slice(lo, hi))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class MeterActor:
    """Steps one group of meters; see the module docstring."""

    def __init__(
        self,
        campus: CampusConfig,
        fleet_size: int | None,
        seed: int,
        lo: int,
        hi: int,
        interval_s: int,
    ):
        meters = fleet_group(campus, fleet_size, seed, lo, hi)
        self._model = MeterModel(meters, campus, seed, interval_s)

    def initial_state(self, start_s: int) -> MeterState:
        return self._model.initial_state(start_s)

    @ray.method(num_returns=2)
    def step(
        self, state: MeterState, n_intervals: int, override_kw: np.ndarray | None = None
    ) -> tuple[pa.RecordBatch, MeterState]:
        """Readings for ``n_intervals`` intervals from ``state`` (RecordBatch, time-major) and the
        state after them."""
        result = self._model.step(state, n_intervals, override_kw)
        return result.batch, result.state

    def meter_ids(self) -> list[str]:
        return list(self._model.meters.meter_id)

    def pid(self) -> int:
        return os.getpid()
