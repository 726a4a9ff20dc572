"""MeterActor: a group of meters on Ray (one meter per actor on the campus, many at scale).

The actor keeps no simulation state of its own: the clock passes the group's ``MeterState`` in and
gets the new one back with the readings. A killed actor is restarted by Ray (``max_restarts``) and
the interrupted call retried (``max_task_retries``) with the same state, so it yields exactly the
readings it would have yielded: nothing lost, nothing twice.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import ray

from gtx_ray.actors import AGGREGATOR_NAME
from gtx_ray.fleet import CampusConfig, MeterArrays, generate_fleet
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel, MeterState

if TYPE_CHECKING:  # imported only by actors that get credentials (cryptography is slow to load)
    from gtx_ray.ieee2030_5.pki.bundle import CredentialBundle


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


@dataclass(frozen=True)
class ClientPlan:
    """How the meters act as IEEE 2030.5 clients: the server (built-in or external), the trust
    anchor (None: the certs dir's SERCA), the PIN to expect, every | sampled | off posting, and
    whether they follow the server's demand response, pricing, messaging and (meters with PV or
    a battery) DER controls."""

    certs_dir: str
    server_url: str
    ca_file: str | None = None
    pin: int | None = None
    post_mode: str = "every"
    function_sets: bool = True  # poll demand response, pricing, messaging, DER; act on them
    record_dir: str | None = None  # where each actor records what its meters learned (replay)


METER_NICENESS = 10
"""Meter actors run at a lower CPU priority than the clock, the aggregators, the REST API and the
2030.5 server (their ``__init__`` onwards: Ray's own start of the process is before it): on a
busy machine, such as 25 actors starting on 2 cores, those stay responsive and the meters take
the CPU that is left."""


def _lower_priority() -> None:
    try:
        os.nice(METER_NICENESS)
    except OSError as exc:  # not fatal: the meters then share the CPU equally
        logging.getLogger(__name__).warning("meter actor keeps its CPU priority: %s", exc)


# Out of order: the steps are ordered by their state arguments anyway, and after a restart Ray
# would otherwise hold a retried call up to 30 s waiting for the sequence number of one lost
# with the old process (``actor_scheduling_queue_max_reorder_wait_seconds``).
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, allow_out_of_order_execution=True)
class MeterActor:
    """Steps one group of meters; see the module docstring. With a ``ClientPlan`` every meter is
    also an IEEE 2030.5 client: readings are handed to its client's bounded queue and posted in
    the background, so ``step`` never waits on the network.

    ``credentials``: the group's certificates and keys, carried through Ray (``pki.bundle``);
    None: the clients read ``clients.certs_dir`` on whatever node this actor runs.

    ``inputs`` (demand-response events, tariffs, prices) are handed to every step. They carry their
    own times: after ``set_inputs`` an event or a tariff acts at its own time in every window
    stepped from then on."""

    def __init__(
        self,
        campus: CampusConfig,
        fleet_size: int | None,
        seed: int,
        lo: int,
        hi: int,
        interval_s: int,
        clients: ClientPlan | None = None,
        inputs: ModelInputs | None = None,
        namespace: str = "gtx_ray",
        credentials: CredentialBundle | None = None,
    ):
        _lower_priority()
        meters = fleet_group(campus, fleet_size, seed, lo, hi)
        self._model = MeterModel(meters, campus, seed, interval_s)
        self._inputs = inputs if inputs is not None else ModelInputs()
        self._interval_s = interval_s
        self._clients = None
        self._credentials_dir: Path | None = None
        self._function_sets = None
        self._record: tuple[str, str] | None = None  # (directory on the home node, file name)
        self._namespace = namespace
        self._recorded: str | None = None
        if clients is not None:
            from gtx_ray.ieee2030_5.client.der import DerRatings
            from gtx_ray.ieee2030_5.client.fleet import MeterClients
            from gtx_ray.ieee2030_5.client.function_sets import MeterFunctionSets
            from gtx_ray.model.controls import device_category_of

            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
            ids = [str(m) for m in meters.meter_id]
            if clients.function_sets:
                categories = device_category_of(meters.meter_type).tolist()
                ders = {
                    meter_id: DerRatings(
                        float(meters.inverter_kw[i]),
                        float(meters.battery_kwh[i]),
                        float(meters.battery_kw[i]),
                    )
                    for i, meter_id in enumerate(ids)
                    if meters.inverter_kw[i] > 0 or meters.battery_kwh[i] > 0
                }
                self._function_sets = MeterFunctionSets(
                    dict(zip(ids, categories, strict=True)), ders
                )
                if clients.record_dir is not None:
                    self._record = (clients.record_dir, f"{ids[0]}.json")
            certs_dir, ca_file = clients.certs_dir, clients.ca_file
            if credentials is not None:  # this node need not see the driver's certs dir
                self._credentials_dir, anchor = credentials.materialize()
                certs_dir, ca_file = str(self._credentials_dir), anchor
            self._clients = MeterClients(
                certs_dir,
                ids,
                clients.server_url,
                ca_file=ca_file,
                pin=clients.pin,
                post_mode=clients.post_mode,
                interval_s=interval_s,
                pollers=self._function_sets.pollers if self._function_sets else None,
            )
            self._clients.start()

    def initial_state(self, start_s: int) -> MeterState:
        return self._model.initial_state(start_s)

    @ray.method(num_returns=2)
    def step(
        self,
        state: MeterState,
        n_intervals: int,
        override_kw: np.ndarray | None = None,
        *earlier: pa.RecordBatch,
    ) -> tuple[pa.RecordBatch, MeterState]:
        """Readings for ``n_intervals`` intervals from ``state`` (RecordBatch, time-major) and the
        state after them. ``earlier``: readings the clock stepped for these meters while this
        actor was starting (``actors.standin``), in time order: the clients mirror them first."""
        inputs = self._inputs
        if self._function_sets is not None:
            inputs = self._function_sets.model_inputs(inputs)
        result = self._model.step(state, n_intervals, override_kw, inputs)
        if self._clients is not None:
            for batch in (*earlier, result.batch):
                self._clients.submit(batch)
        if self._function_sets is not None:
            self._function_sets.advance(result.state.next_start_s)
            changed = self._function_sets.observe(result.batch)
            if changed and self._clients is not None:
                self._clients.wake(changed)  # their DERStatus goes out now, not at the next poll
            self._record_learned()
        return result.batch, result.state

    def _record_learned(self) -> None:
        """Record what the meters learned (a scenario file) when it changed: the run can be
        replayed with ``--scenario DATA_DIR/learned`` even when the server was someone else's."""
        if self._record is None or self._function_sets is None:
            return
        learned = self._function_sets.learned_scenario()
        kinds = ("dr_events", "prices", "der_controls", "der_defaults")
        if not any(learned.get(kind) for kind in kinds):
            return
        text = json.dumps(learned, indent=1)
        if text == self._recorded:
            return
        # the aggregator writes it on the home node (no wait: a restarted one gets it again)
        aggregator = ray.get_actor(AGGREGATOR_NAME, namespace=self._namespace)
        aggregator.record_learned.remote(*self._record, text)
        self._recorded = text

    def set_inputs(self, inputs: ModelInputs) -> None:
        """Replace the demand-response events, tariffs and prices every later step uses.

        Not kept across an actor restart (Ray re-runs ``__init__`` with its first arguments):
        whoever sets inputs sets them again after one."""
        self._inputs = inputs

    def ieee2030_5_clients(self) -> list[dict[str, Any]]:
        """One entry per meter's 2030.5 client (empty when the meters are not clients)."""
        return [] if self._clients is None else self._clients.status()

    def ieee2030_5_summary(self) -> dict[str, Any] | None:
        return None if self._clients is None else self._clients.summary()

    def stop_clients(self, timeout_s: float = 10.0) -> None:
        """Post what is queued within ``timeout_s``, then close the connections."""
        if self._clients is not None:
            self._clients.stop(timeout_s=timeout_s)
            self._clients = None
        if self._credentials_dir is not None:
            from gtx_ray.ieee2030_5.pki.bundle import remove_materialized

            remove_materialized(self._credentials_dir)
            self._credentials_dir = None

    def meter_ids(self) -> list[str]:
        return list(self._model.meters.meter_id)

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (hex id)."""
        return ray.get_runtime_context().get_node_id()
