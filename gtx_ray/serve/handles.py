"""The named actors of one simulation, looked up once they exist, so the REST API can be deployed
before the simulation's actors (and answer "starting" meanwhile) instead of after them."""

from __future__ import annotations

from typing import Any

import ray


class SimulationHandles:
    """Handles to the ``clock``, ``aggregator`` and (when they run IEEE 2030.5 clients) the meter
    actors of the simulation in Ray namespace ``namespace``; None until resolved."""

    def __init__(self, namespace: str, meter_actor_names: list[str] | None = None) -> None:
        self.namespace = namespace
        self.meter_actor_names = meter_actor_names
        self.aggregator: Any = None
        self.clock: Any = None
        self.meter_actors: list | None = None

    def resolve(self) -> bool:
        """Look the actors up; True once all exist (the clock and aggregator are created first,
        the meter actors last)."""
        if self.clock is not None:
            return True
        try:
            clock = ray.get_actor("clock", namespace=self.namespace)
            aggregator = ray.get_actor("aggregator", namespace=self.namespace)
            meters = (
                [ray.get_actor(n, namespace=self.namespace) for n in self.meter_actor_names]
                if self.meter_actor_names
                else None
            )
        except ValueError:  # not created yet
            return False
        self.aggregator, self.meter_actors, self.clock = aggregator, meters, clock
        return True
