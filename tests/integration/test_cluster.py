"""The simulator on a real multi-node Ray cluster: three raylets on this machine (Ray's own
``cluster_utils.Cluster``), each a node with its own object store, workers and node id.

Meters spread over the nodes while the clock, the aggregator and the 2030.5 server stay on the
home node; a worker node killed mid-run loses and duplicates nothing; meters on other nodes get
their certificates through Ray, not from the certificates directory.
"""

from __future__ import annotations

import collections
import shutil
import time

import pyarrow as pa
import pytest
import ray
from ray.cluster_utils import Cluster

from gtx_ray.actors.meter import ClientPlan
from gtx_ray.errors import ConfigError
from gtx_ray.fleet import generate_fleet
from gtx_ray.ieee2030_5.pki import init_certs
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.service import start_ieee2030_5, status_ieee2030_5, stop_ieee2030_5
from gtx_ray.model.meters import MeterModel
from gtx_ray.placement import resolve_home_node, this_node_id
from gtx_ray.runtime import start_simulation
from gtx_ray.settings import Settings
from gtx_ray.storage.parquet import read_readings
from tests.conftest import start_local_ray
from tests.integration.runs import by_time, finish, run_settings, wait_stored_windows
from tests.unit.helpers import run

pytestmark = pytest.mark.ray
NAMESPACE = "gtx_ray_cluster_tests"


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker raylets; this process is the driver, on the head node. The
    session's single-node Ray is set aside for the module and started again after it."""
    had_session_ray = ray.is_initialized()
    ray.shutdown()
    small = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    nodes = Cluster(initialize_head=True, head_node_args={**small, "include_dashboard": False})
    workers = [nodes.add_node(**small) for _ in range(2)]
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, namespace=NAMESPACE, log_to_driver=False)
    try:
        yield nodes, workers
    finally:
        ray.shutdown()
        nodes.shutdown()
        if had_session_ray:
            start_local_ray()


def _settings(tmp_path, **overrides) -> Settings:
    # 8 actors of 25 meters: a window of theirs (~0.5 MB) is in the object store, not inline
    fleet = {"meters": 200, "meters_per_actor": 25, "seed": 11}
    return run_settings(tmp_path, NAMESPACE, **{**fleet, **overrides})


def _nodes_of(actors) -> list[str]:
    return ray.get([actor.node_id.remote() for actor in actors], timeout=120)


_finish = finish
_sorted = by_time


def _single_node_readings(campus, settings: Settings, intervals: int) -> pa.Table:
    """What one process computes for the same fleet and seed: the reference a cluster run must
    equal, reading for reading."""
    fleet = generate_fleet(campus, settings.meters, settings.seed)
    model = MeterModel(fleet, campus, settings.seed, settings.interval_s)
    table, _ = run(model, settings.start_s, intervals, intervals)
    return _sorted(table)


def test_meters_spread_over_the_nodes_and_the_singletons_stay_home(cluster, campus, tmp_path):
    settings = _settings(tmp_path, home_node=this_node_id())
    simulation = start_simulation(settings)
    try:
        meter_nodes = _nodes_of(simulation.meter_actors)
        clock_node, storage_node = _nodes_of([simulation.clock, simulation.aggregator])
        final = _finish(simulation)
    except BaseException:
        simulation.stop()
        simulation.finish()
        raise
    assert len(set(meter_nodes)) == 3, collections.Counter(meter_nodes)
    assert clock_node == storage_node == this_node_id()
    assert final["storage"]["rows_stored"] == 200 * 96
    assert _sorted(read_readings(settings.data_dir)).equals(
        _single_node_readings(campus, settings, 96)
    )


def test_a_worker_node_lost_mid_run_loses_and_duplicates_nothing(cluster, campus, tmp_path):
    """SIGKILL a worker raylet (its meter actors and object store go with it) while windows
    flow: Ray re-creates the actors on the surviving nodes, the run goes on, and every
    (meter, interval) is stored exactly once with the values of a single-node run."""
    nodes, workers = cluster
    days = 2
    settings = _settings(
        tmp_path,
        duration_s=days * 86_400,
        speed=days * 86_400 / 40.0,  # ~40 s of wall time: the kill lands mid-run
        window_intervals=4,
        max_in_flight=2,
    )
    simulation = start_simulation(settings)
    before = _nodes_of(simulation.meter_actors)
    k = max(range(len(workers)), key=lambda w: before.count(workers[w].node_id))
    victim, survivor = workers[k], workers[1 - k]  # the worker holding most meter actors
    try:
        on_victim = [i for i, node in enumerate(before) if node == victim.node_id]
        assert on_victim, f"no meter actor on a worker to kill: {before}"
        wait_stored_windows(simulation, 3)
        deadline = time.monotonic() + 120
        nodes.remove_node(victim, allow_graceful=False)
        status = simulation.status(timeout_s=30)
        assert status["clock"]["intervals_done"] < days * 96, "the run ended before the kill"
        moved = [simulation.meter_actors[i] for i in on_victim]
        while victim.node_id in (after := _nodes_of(moved)):  # old processes die by themselves
            assert time.monotonic() < deadline + 120, "the lost node's actors were not re-created"
            time.sleep(1.0)
        final = _finish(simulation)
    except BaseException:
        simulation.stop()
        simulation.finish()
        raise
    finally:
        if victim in nodes.worker_nodes:
            nodes.remove_node(victim, allow_graceful=False)
        workers[k] = nodes.add_node(num_cpus=1, object_store_memory=80 * 2**20)
        nodes.wait_for_nodes()
        deadline = time.monotonic() + 60
        while ray.available_resources().get("CPU", 0) < 3:  # the new node reports its CPU
            assert time.monotonic() < deadline, "the replacement worker never offered its CPU"
            time.sleep(0.2)
    assert set(after) <= {this_node_id(), survivor.node_id}
    assert final["clock"]["finished"] and final["clock"]["error"] is None
    assert final["storage"]["rows_stored"] == 200 * days * 96
    stored = _sorted(read_readings(settings.data_dir))
    meters, times = stored.column("meter_id").to_pylist(), stored.column("timestamp").to_pylist()
    keys = set(zip(meters, times, strict=True))
    assert len(keys) == stored.num_rows == 200 * days * 96  # each (meter, interval) once
    assert stored.equals(_single_node_readings(campus, settings, days * 96))


def test_meters_on_other_nodes_need_no_shared_certificates_dir(cluster, campus, tmp_path):
    """Meter actors on every node are 2030.5 clients of the server on the home node; the
    devices' certificates are deleted from the certificates directory once the run has started,
    so a client that read them from there could not connect."""
    settings = _settings(tmp_path, meters=24, meters_per_actor=4, speed=900.0, duration_s=None)
    ids = [str(m) for m in generate_fleet(campus, 24, settings.seed).meter_id]
    certs = tmp_path / "certs"
    init_certs(certs, ids)
    handles = start_ieee2030_5(
        Ieee2030_5Config(
            certs_dir=certs, port=0, post_rate_s=1, poll_rate_s=5, node_id=this_node_id()
        )
    )
    plan = ClientPlan(
        str(certs), f"https://127.0.0.1:{handles.port}", pin=111115, function_sets=False
    )
    simulation = start_simulation(settings, clients=plan)
    try:
        shutil.rmtree(certs / "devices")  # read by the driver already; gone for the actors
        assert len(set(_nodes_of(simulation.meter_actors))) == 3  # 2 groups on every node
        deadline = time.monotonic() + 120
        while True:
            service = status_ieee2030_5(handles)
            if service["registered_devices"] == 24 and service["readings_mirrored"] > 0:
                break
            assert time.monotonic() < deadline, service
            time.sleep(0.5)
    finally:
        simulation.stop()
        simulation.finish()
        stop_ieee2030_5(handles)
    assert service["server_errors"] == 0


def test_home_node_is_chosen_by_id_prefix_or_refused_with_the_node_list(cluster):
    _, workers = cluster
    worker_id = workers[1].node_id
    assert resolve_home_node(worker_id[:8]) == worker_id
    assert resolve_home_node(None) == this_node_id()
    with pytest.raises(ConfigError) as refused:
        resolve_home_node("ffffffffffff0000")
    message = str(refused.value)
    assert "--home-node" in message and worker_id[:12] in message and this_node_id()[:12] in message
    shared_address = ray.nodes()[0]["NodeManagerAddress"]  # three raylets, one machine
    with pytest.raises(ConfigError, match="several nodes"):
        resolve_home_node(shared_address)


def test_windows_on_their_way_to_storage_never_spill_the_object_store(cluster, campus, tmp_path):
    """As fast as possible, a month per window would be 150 MB for 200 meters, more than the
    home node's 80 MB object store: the windows are cut to fit a quarter of it, and Ray neither
    spills to disk nor falls back to allocating objects on the filesystem."""
    from ray._private.internal_api import memory_summary

    settings = _settings(tmp_path, duration_s=20 * 86_400, speed=None)
    simulation = start_simulation(settings)
    try:
        final = _finish(simulation)
    except BaseException:
        simulation.stop()
        simulation.finish()
        raise
    assert final["storage"]["rows_stored"] == 200 * 20 * 96
    assert simulation.plan.fast_window_intervals < 20 * 96
    summary = memory_summary(stats_only=True)  # without the bound: "Plasma filesystem mmap
    assert "Spilled" not in summary and "filesystem mmap" not in summary, summary  # usage: ..."
