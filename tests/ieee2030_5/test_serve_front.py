"""The 2030.5 front as a Ray Serve deployment: two replicas share one port (SO_REUSEPORT) and
both serve clients over real mutual TLS; the state stays in the one durable registry, so a
SIGKILLed registry or a SIGKILLed replica costs clients at most a retry."""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import replace

import pytest

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.server.serve_front import (
    serve_front_status,
    start_ieee2030_5_serve,
    stop_ieee2030_5_serve,
)
from tests.ieee2030_5.helpers import Sep2Client
from tests.ieee2030_5.test_service_durable import (
    T0,
    durable_config,
    kept_set_mrids,
    set_xml,
    setup_meter,
)

pytestmark = pytest.mark.ray
METERS = [f"AMI_METER_UTCC_{i:03d}" for i in range(1, 17)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replica_statuses(app_name: str, seen_at_least: int) -> dict[int, dict]:
    """Status of each replica (by pid), asked through Serve until ``seen_at_least`` answered."""
    from ray import serve

    handle = serve.get_app_handle(app_name)
    out: dict[int, dict] = {}
    deadline = time.monotonic() + 60
    while len(out) < seen_at_least and time.monotonic() < deadline:
        status = handle.remote().result(timeout_s=30)
        out[status["pid"]] = status
    return out


def post_until_accepted(c: Sep2Client, mup: str, set_mrid: int, start: int) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if c.post(mup, set_xml(set_mrid, start)).status == 201:
                return
        except OSError:
            c.close()
        assert time.monotonic() < deadline, f"set {set_mrid} not accepted"
        time.sleep(0.3)


def test_two_replicas_share_the_port_and_survive_kills(
    ray_runtime, certs_dir, sep_schema, tmp_path
):
    with pytest.raises(ConfigError, match="fixed port"):
        start_ieee2030_5_serve(durable_config(certs_dir, tmp_path / "x.sqlite"))
    config = durable_config(certs_dir, tmp_path / "state.sqlite")
    config = replace(config, port=free_port())
    handles = start_ieee2030_5_serve(config, replicas=2)
    try:
        deadline = time.monotonic() + 120
        while serve_front_status(handles.front)["replicas"] < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert serve_front_status(handles.front)["replicas"] == 2
        meters = [setup_meter(config.port, certs_dir, m, sep_schema) for m in METERS]
        for i, (c, _, mup) in enumerate(meters):
            post_until_accepted(c, mup, 100 * i, T0)
        replicas = replica_statuses(handles.front, 2)
        assert len(replicas) == 2
        # 16 connections, each to one replica chosen by the kernel: both got some
        assert all(s["requests"] > 0 for s in replicas.values()), replicas

        os.kill(ray_runtime.get(handles.registry.pid.remote(), timeout=30), signal.SIGKILL)
        for i, (c, _, mup) in enumerate(meters):
            post_until_accepted(c, mup, 100 * i + 1, T0 + 3600)

        victim = next(iter(replicas))
        os.kill(victim, signal.SIGKILL)
        for i, (c, edev, mup) in enumerate(meters):
            post_until_accepted(c, mup, 100 * i + 2, T0 + 7200)
            assert c.get(edev).status == 200
            assert kept_set_mrids(c, mup) == {100 * i, 100 * i + 1, 100 * i + 2}
            c.close()
        deadline = time.monotonic() + 120  # Serve replaces the killed replica
        while time.monotonic() < deadline:
            pids = (
                set(replica_statuses(handles.front, 2))
                if serve_front_status(handles.front)["replicas"] == 2
                else set()
            )
            if len(pids) == 2 and victim not in pids:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"Serve did not replace replica {victim}")
    finally:
        stop_ieee2030_5_serve(handles)
    assert serve_front_status(handles.front)["replicas"] == 0
