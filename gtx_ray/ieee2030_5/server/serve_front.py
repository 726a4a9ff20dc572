"""The 2030.5 TLS front as a Ray Serve deployment: several replicas share one port.

Each replica of ``Ieee2030_5Front`` runs the same front as the ``ieee2030_5_front`` actor
(``service.FrontActor``: aiohttp with mutual TLS on its own event-loop thread, batched calls to
the registry actor) bound with SO_REUSEPORT, so the kernel spreads connections over the
replicas and the TLS work over cores. Serve places, health-checks and replaces replicas; the
state stays in the one registry actor (and its store), which every replica finds by name. Serve's
HTTP proxy is not used (it cannot require client certificates; see DESIGN.md): each replica
terminates TLS itself, as the REST API's replica serves HTTP itself.

``start_ieee2030_5_serve(config, replicas)`` → ``Ieee2030_5Handles`` (front = the Serve app's
name); ``serve_front_status(app)`` → per-replica status; ``stop_ieee2030_5_serve(handles)``.
The port must be fixed (not 0): every replica binds the same one.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import replace
from typing import Any

import ray
from ray import serve

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.service import (
    REGISTRY_NAME,
    FrontActor,
    Ieee2030_5Handles,
    _first_line,
    kill_registry,
    start_registry,
)
from gtx_ray.placement import on_node

log = logging.getLogger(__name__)

APP_NAME = "ieee2030_5"
LISTEN_TIMEOUT_S = 60.0
"""How long ``start_ieee2030_5_serve`` waits for the port to accept connections, seconds."""


@serve.deployment(
    num_replicas=2,
    ray_actor_options={"num_cpus": 0},
    health_check_period_s=5,
    max_constructor_retry_count=3,
    graceful_shutdown_wait_loop_s=0.5,
    graceful_shutdown_timeout_s=3,
)
class Ieee2030_5Front:
    """One replica: a front listening on the shared port until the replica goes."""

    def __init__(self, config: Ieee2030_5Config, registry_name: str, namespace: str) -> None:
        self._front = FrontActor(replace(config, reuse_port=True), registry_name, namespace)

    def check_health(self) -> None:
        """Serve calls this every few seconds; a front that stopped serving fails it and Serve
        replaces the replica."""
        if not self._front.status()["listening"]:
            raise RuntimeError("the 2030.5 front is not accepting connections")

    async def __call__(self, request: Any = None) -> dict[str, Any]:
        """This replica's status (requests, connections, registry batches) and process id."""
        return {**self._front.status(), "pid": os.getpid()}

    def __del__(self) -> None:
        front = getattr(self, "_front", None)
        if front is not None:
            front.stop()


def start_ieee2030_5_serve(config: Ieee2030_5Config, replicas: int = 2) -> Ieee2030_5Handles:
    """Start (or re-attach to) the registry actor and ``replicas`` Serve replicas of the front on
    ``config.port``; return once the port accepts connections. Needs ``ray.init`` done. Raises
    ConfigError for port 0, a bad replica count, or a front that cannot start."""
    if config.port == 0:
        raise ConfigError("ieee2030_5 port: the Serve front needs a fixed port, not 0")
    if not 1 <= replicas <= 64:
        raise ConfigError(f"ieee2030_5 replicas: must be 1..64, got {replicas}")
    shards = start_registry(config)
    namespace = ray.get_runtime_context().namespace
    app_name = f"{APP_NAME}_{namespace}"  # Serve is cluster-wide: one front per namespace
    serve.start(proxy_location="Disabled")
    app = Ieee2030_5Front.options(
        num_replicas=replicas,  # one node: the replicas share its port (SO_REUSEPORT)
        ray_actor_options={"num_cpus": 0, **on_node(config.node_id)},
    ).bind(config, REGISTRY_NAME, namespace)
    try:
        serve.run(app, name=app_name, route_prefix=None, blocking=False)
        _wait_listening(config.host, config.port)
    except Exception as exc:
        serve.delete(app_name)
        raise ConfigError(f"IEEE 2030.5 Serve front did not start: {_first_line(exc)}") from None
    log.info("IEEE 2030.5 server on %s:%d, %d Serve replicas", config.host, config.port, replicas)
    return Ieee2030_5Handles(config, shards[0], app_name, config.port, tuple(shards))


def serve_front_status(app_name: str = APP_NAME) -> dict[str, Any]:
    """Serve's view of the front: application status and replicas running."""
    app = serve.status().applications.get(app_name)
    if app is None:
        return {"status": "NOT_RUNNING", "replicas": 0}
    deployment = app.deployments["Ieee2030_5Front"]
    return {
        "status": str(app.status),
        "replicas": deployment.replica_states.get("RUNNING", 0),
    }


def stop_ieee2030_5_serve(handles: Ieee2030_5Handles, keep_registry: bool = False) -> None:
    """Delete the Serve front (its replicas close the port) and, unless ``keep_registry``, kill
    the registry."""
    serve.delete(handles.front or APP_NAME)
    if handles.registry is not None and not keep_registry:
        kill_registry(handles.config)


def _wait_listening(host: str, port: int) -> None:
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else host
    deadline = time.monotonic() + LISTEN_TIMEOUT_S
    while True:
        try:
            with socket.create_connection((probe, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.2)
