"""Meter clients inside a synchronous Ray actor, mirroring to the Ray-hosted 2030.5 service: the
actor's calls return at once while its clients register and post on their own loop thread."""

from __future__ import annotations

import time

import pytest

from gtx_ray.fleet import MeterArrays
from gtx_ray.ieee2030_5.client.quantities import QUANTITIES
from gtx_ray.ieee2030_5.pki import init_certs
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.service import start_ieee2030_5, status_ieee2030_5, stop_ieee2030_5
from gtx_ray.model.meters import MeterModel

pytestmark = pytest.mark.ray
T0 = 1_767_225_600


def test_actor_clients_mirror_to_the_ray_service(ray_runtime, tmp_path, campus):
    ray = ray_runtime
    ids = [m.meter_id for m in campus.meters[:3]]
    init_certs(tmp_path, ids)
    handles = start_ieee2030_5(
        Ieee2030_5Config(certs_dir=tmp_path, port=0, post_rate_s=1, poll_rate_s=5)
    )

    @ray.remote(num_cpus=0)
    class Meters:  # the shape of a meter actor: plain synchronous methods
        def __init__(self, certs_dir: str, meter_ids: list[str], url: str) -> None:
            from gtx_ray.ieee2030_5.client.fleet import MeterClients
            from gtx_ray.ieee2030_5.client.settings import ClientSettings

            settings = ClientSettings(backoff_base_s=0.05, backoff_cap_s=0.5)
            self.clients = MeterClients(
                certs_dir, meter_ids, url, pin=111115, interval_s=15, settings=settings
            )
            self.clients.start()

        def step(self, batch) -> float:
            started = time.perf_counter()
            self.clients.submit(batch)
            return time.perf_counter() - started

        def status(self) -> list[dict]:
            return self.clients.status()

        def stop(self) -> list[dict]:
            return self.clients.stop(5)

    model = MeterModel(MeterArrays.from_specs(campus.meters[:3]), campus, 5, 15)
    actor = Meters.remote(str(tmp_path), ids, f"https://127.0.0.1:{handles.port}")
    try:
        state = model.initial_state(T0)
        for _ in range(3):
            window = model.step(state, 2)
            state = window.state
            assert ray.get(actor.step.remote(window.batch), timeout=30) < 0.1
        deadline = time.monotonic() + 30
        while True:
            status = ray.get(actor.status.remote(), timeout=30)
            if all(s["readings_posted"] == 6 for s in status):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        final = ray.get(actor.stop.remote(), timeout=30)
        service = status_ieee2030_5(handles)
    finally:
        ray.kill(actor, no_restart=True)
        stop_ieee2030_5(handles)
    assert all(s["state"] == "stopped" and s["readings_queued"] == 0 for s in final)
    assert len({s["lfdi"] for s in status}) == 3
    assert all(s["registered"] and s["mirror_usage_point_href"] for s in status)
    assert service["registered_devices"] == 3 and service["mirror_usage_points"] == 3
    assert service["readings_mirrored"] == 3 * 6 * len(QUANTITIES)
    assert service["server_errors"] == 0
