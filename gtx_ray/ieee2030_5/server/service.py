"""The 2030.5 server under Ray: a named registry actor and a named TLS front actor.

- ``ieee2030_5_registry`` (``RegistryActor``) holds the one Registry: every EndDevice,
  MirrorUsagePoint and reading. It outlives the front, so the front can be restarted (or crash
  and be restarted by Ray) without losing registrations or readings. With
  ``config.state_path`` it writes through to its SQLite store (``store``) and Ray restarts it
  after any crash (``max_restarts=-1``); it reloads the file, so nothing acknowledged is lost.
- ``ieee2030_5_front`` (``FrontActor``) runs the aiohttp server on its own event loop thread with
  the mutual-TLS context, and reaches the registry through ``BatchingBackend`` (one actor call in
  flight, concurrent requests share it). Ray restarts it up to ``FRONT_MAX_RESTARTS`` times.

``start_ieee2030_5(config)`` → ``Ieee2030_5Handles``; ``status_ieee2030_5(handles)`` → dict
(``status_ieee2030_5_async`` from async code);
``restart_front(handles)``; ``stop_ieee2030_5(handles)``. Both actors reserve no CPU (they
wait on sockets and on each other); the TLS work runs in the front's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import ray

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.server.backend import BatchingBackend
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config, build_registry, shard_state_path
from gtx_ray.ieee2030_5.server.dispatch import OPERATIONS, Op, execute
from gtx_ray.ieee2030_5.server.errors import Unavailable
from gtx_ray.ieee2030_5.server.managers import admin, admin_der, admin_events
from gtx_ray.ieee2030_5.server.shards import ShardedBackend, adopt_books, books_of, run_admin
from gtx_ray.ieee2030_5.server.shards import registry_name as shard_name
from gtx_ray.ieee2030_5.server.store import RegistryStore
from gtx_ray.ieee2030_5.server.tls_server import Ieee2030_5Server
from gtx_ray.placement import on_node

log = logging.getLogger(__name__)

REGISTRY_NAME = "ieee2030_5_registry"
"""Shard 0's actor (the only one with a single shard); shard k's is ``REGISTRY_NAME_k``."""
COPY_WAIT_S = 5.0
"""How long shard 0 waits for the others to take newly published events, seconds."""
ADMIN_TIMEOUT_S = 60.0
"""How long shard 0 waits for another shard to run an admin action, seconds."""
SUMMED_COUNTS = (
    "registered_devices",
    "mirror_usage_points",
    "readings_mirrored",
    "readings_dropped",
    "bytes_held",
    "der_devices_reporting",
    "registry_calls",
    "state_flushes",
)
"""Status counts that add up over the shards (the rest, e.g. DER controls, every shard holds
alike)."""
RETRY_SAFE = frozenset(OPERATIONS) - {"edev.register", "mirror.delete", "rsp.post"}
"""Operations that give the same state and answer when run twice: every read, PUT of
DeviceInformation and of a DER record, and mirror posts (a reading set or single reading with
the same mRID or start replaces the stored one; a repeated POST /mup answers 204, not 201)."""
FRONT_NAME = "ieee2030_5_front"
FRONT_MAX_RESTARTS = 3
START_TIMEOUT_S = 60.0
"""How long ``start_ieee2030_5`` waits for the front to listen, seconds."""
REGISTRY_START_TIMEOUT_S = 900.0
"""How long it waits for the registry to load its state file, seconds (~1.5 ms per full device
measured: 100,000 devices ~150 s)."""

ADMIN_ACTIONS = {
    "list_devices": admin.list_devices,
    "preregister": admin.preregister,
    "remove_device": admin.remove_device,
    "clear_mirrors": admin.clear_mirrors,
    "set_rates": admin.set_rates,
    **{
        name: getattr(admin_events, name)
        for name in (
            "create_dr_event",
            "cancel_dr_event",
            "list_dr_events",
            "get_dr_event",
            "add_tariff",
            "list_tariffs",
            "remove_tariff",
            "tariff_intervals",
            "create_message",
            "cancel_message",
            "list_messages",
            "list_responses",
            "export_scenario",
        )
    },
    **{
        name: getattr(admin_der, name)
        for name in (
            "create_der_control",
            "cancel_der_control",
            "list_der_controls",
            "get_der_control",
            "set_default_der_control",
            "get_default_der_control",
            "list_der_devices",
        )
    },
}


class RegistryActor:
    """Holds the Registry. ``execute`` runs a batch of front operations in order.

    With ``config.state_path`` the registry is loaded from its store when the actor starts
    (also when Ray restarts it after a crash) and every batch is written through and committed
    before the answers leave: nothing the front acknowledges is lost. If the store cannot be
    written the process exits, so Ray restarts it from the file (memory never runs ahead of the
    disk) and the front answers 503 for that batch.
    """

    def __init__(self, config: Ieee2030_5Config, shard: int = 0) -> None:
        logging.basicConfig(level=logging.INFO)
        self.config = config
        self.shard = shard
        self.store = None
        path = shard_state_path(config, shard)
        if path is not None:
            self.store = RegistryStore(path, config.state_synchronous, config.registry_shards)
        self.registry = build_registry(config, int(time.time()), self.store, shard)
        self.calls = 0
        self.started = time.time()
        self._peers: dict[int, Any] = {}  # shard 0 only: the other shards, found by name
        self._books_at_ns = 0  # when shard 0 took the event books this shard holds
        if shard != 0:
            threading.Thread(
                target=self._take_books_from_shard_0, name="take-books", daemon=True
            ).start()

    def execute(self, ops: list[Op]) -> list[Any]:
        self.calls += 1
        outcomes = execute(self.registry, ops)
        self._persist()
        return outcomes

    @ray.method(max_task_retries=-1)
    def execute_retryable(self, ops: list[Op]) -> list[Any]:
        """``execute`` for operations whose repetition changes nothing (``RETRY_SAFE``): Ray
        re-sends it to the restarted actor if this one dies during the call."""
        return self.execute(ops)

    def _persist(self) -> None:
        if self.store is None:
            return
        try:
            self.store.flush(self.registry)
        except Exception:
            log.exception("IEEE 2030.5 state could not be written; restarting from the file")
            os._exit(1)

    def admin(self, action: str, **kwargs: Any) -> Any:
        """An operator action (see ``managers.admin``, ``admin_events``, ``admin_der``):
        list_devices, preregister(lfdi), remove_device(device_id), clear_mirrors(lfdi=None),
        set_rates(poll_rate, post_rate, device_id), the events, tariffs, notices and DER
        controls. Raises the ResourceError of a refused action. With several shards, shard 0
        runs it where it belongs (``shards.run_admin``) with one ``now`` for all."""
        if action not in ADMIN_ACTIONS:
            raise ValueError(f"unknown admin action {action!r}; one of {sorted(ADMIN_ACTIONS)}")
        now = int(time.time())
        n = self.config.registry_shards
        if n == 1 or self.shard != 0:
            return self.admin_local(action, now, kwargs)
        return run_admin(
            action, kwargs, n, lambda k, a, kw: self._admin_on(k, a, now, kw), self._copy_books
        )

    def admin_local(self, action: str, now: int, kwargs: dict[str, Any]) -> Any:
        """``admin`` on this shard's registry alone, at ``now`` (epoch s)."""
        try:
            return ADMIN_ACTIONS[action](self.registry, now, **kwargs)
        finally:
            self._persist()

    def _admin_on(self, shard: int, action: str, now: int, kwargs: dict[str, Any]) -> Any:
        if shard == self.shard:
            return self.admin_local(action, now, kwargs)
        peer = self._peer(shard)
        return ray.get(peer.admin_local.remote(action, now, kwargs), timeout=ADMIN_TIMEOUT_S)

    def _peer(self, shard: int) -> Any:
        peer = self._peers.get(shard)
        if peer is None:
            peer = self._peers[shard] = ray.get_actor(shard_name(REGISTRY_NAME, shard))
        return peer

    def _copy_books(self) -> None:
        """Shard 0's event books to every other shard (after the operator published). Waits a
        little for them to take it, never long: a shard that is restarting asks shard 0 for
        its books, and shard 0 answers only once this returns."""
        copy = self.books()
        n = self.config.registry_shards
        sent = [self._peer(k).adopt.remote(copy) for k in range(1, n)]
        _, waiting = ray.wait(sent, num_returns=len(sent), timeout=COPY_WAIT_S)
        if waiting:
            log.warning(
                "registry: %d shard(s) did not take the new events within %.0f s (restarting?); "
                "they take them when they answer",
                len(waiting),
                COPY_WAIT_S,
            )

    def books(self) -> dict[str, Any]:
        """This registry's event books (``shards.books_of``) and when they were taken
        (``at_ns``, epoch ns), for the other shards."""
        return {"at_ns": time.time_ns(), "books": books_of(self.registry)}

    @ray.method(max_task_retries=-1)
    def adopt(self, copy: dict[str, Any]) -> None:
        """Take shard 0's event books (written through), unless this shard holds newer ones.
        Idempotent: Ray re-sends it to a shard that restarts meanwhile."""
        if copy["at_ns"] <= self._books_at_ns:
            return
        adopt_books(self.registry, copy["books"])
        self._books_at_ns = copy["at_ns"]
        self._persist()

    def _take_books_from_shard_0(self) -> None:
        """A shard other than 0 publishes what shard 0 does: after it starts (after a crash,
        say) it asks shard 0 for its books, which may have changed meanwhile, from a thread
        (shard 0 may be waiting for this shard) and takes them through ``adopt``. Until then,
        and if shard 0 does not answer, it publishes its own copy from its file."""
        try:
            shard_0 = ray.get_actor(REGISTRY_NAME)
            copy = ray.get(shard_0.books.remote(), timeout=REGISTRY_START_TIMEOUT_S)
            me = ray.get_runtime_context().current_actor
            ray.get(me.adopt.remote(copy), timeout=REGISTRY_START_TIMEOUT_S)
        except Exception as exc:
            log.warning(
                "registry shard %d: shard 0's events not taken (%s); publishing its own copy",
                self.shard,
                _first_line(exc),
            )

    def pid(self) -> int:
        return os.getpid()

    def status(self) -> dict[str, Any]:
        """Counts of the registry; shard 0 of several adds the others' device counts
        (``registry_shards``, and ``shard_devices`` per shard)."""
        out = self.status_local()
        n = self.config.registry_shards
        if n == 1 or self.shard != 0:
            return out
        others = [self._status_of(k) for k in range(1, n)]
        out["shard_devices"] = [
            out["registered_devices"],
            *(o["registered_devices"] for o in others),
        ]
        for other in others:
            for key in SUMMED_COUNTS:
                out[key] = out.get(key, 0) + other.get(key, 0)
        return out

    def status_local(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.registry.counts(),
            "registry_calls": self.calls,
            "registry_shards": self.config.registry_shards,
        }
        if self.store is not None:
            out["state_path"] = str(self.store.path)
            out["state_flushes"] = self.store.flushes
        return out

    def _status_of(self, shard: int) -> dict[str, Any]:
        return ray.get(self._peer(shard).status_local.remote(), timeout=ADMIN_TIMEOUT_S)


class FrontActor:
    """Runs the TLS server on a thread of its own; ``__init__`` returns once it listens (so a
    restart by Ray listens again) or raises why it cannot."""

    def __init__(
        self,
        config: Ieee2030_5Config,
        registry_name: str = REGISTRY_NAME,
        namespace: str | None = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO)
        self.config = config
        # Found by name (not passed as a handle) so that a restart by Ray needs no stored args;
        # ``namespace``: the registry's, when this runs elsewhere (a Serve replica).
        shards = [
            BatchingBackend(
                self._call_registry(ray.get_actor(shard_name(registry_name, k), namespace)),
                config.batch_max,
            )
            for k in range(config.registry_shards)
        ]
        self._shards = shards
        self._loop = asyncio.new_event_loop()
        backend = shards[0] if len(shards) == 1 else ShardedBackend(shards)
        self._server = Ieee2030_5Server(config, backend)  # TLS files load here
        self._thread = threading.Thread(target=self._loop.run_forever, name="ieee2030_5-front")
        self._thread.daemon = True
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._server.start(), self._loop).result(START_TIMEOUT_S)

    @staticmethod
    def _call_registry(registry: Any):
        """The backend's call: a batch of only retry-safe operations is retried by Ray across
        a restart of the registry; a mixed batch that fails (the registry died during it, so
        some may be stored and some not) has its retry-safe part re-sent and the rest
        answered 503, for the client to retry (a repeated registration or delete would
        otherwise be answered 409/404)."""

        async def call(ops: list[Op]) -> list[Any]:
            if all(op.name in RETRY_SAFE for op in ops):
                return await registry.execute_retryable.remote(ops)
            try:
                return await registry.execute.remote(ops)
            except ray.exceptions.RayActorError as exc:
                log.warning("registry failed during %d operations: %s", len(ops), exc)
                safe = [i for i, op in enumerate(ops) if op.name in RETRY_SAFE]
                outcomes: list[Any] = [
                    Unavailable("the registry restarted during this request; retry")
                ] * len(ops)
                if safe:
                    again = await registry.execute_retryable.remote([ops[i] for i in safe])
                    for i, outcome in zip(safe, again, strict=True):
                        outcomes[i] = outcome
                return outcomes

        return call

    def port(self) -> int:
        return self._server.port

    def status(self) -> dict[str, Any]:
        async def stats() -> dict[str, Any]:
            return self._server.stats()

        summary = asyncio.run_coroutine_threadsafe(stats(), self._loop).result(10)
        return {
            **summary,
            "port": self._server.port,
            "listening": self._server.listening,
            "registry_batches": sum(b.calls for b in self._shards),
            "registry_ops": sum(b.ops for b in self._shards),
        }

    def stop(self) -> None:
        """Stop listening and end the loop thread (the actor can then be killed)."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass(frozen=True)
class Ieee2030_5Handles:
    """What ``start_ieee2030_5`` returns: the actors (None when disabled), the bound port.
    ``registry`` is shard 0's actor (it answers the operator for every shard); ``shards`` holds
    every shard's, so that they live as long as these handles (Ray ends an actor nobody holds)."""

    config: Ieee2030_5Config
    registry: Any = None
    front: Any = None
    port: int | None = None
    shards: tuple[Any, ...] = ()


def registry_shards(config: Ieee2030_5Config) -> list[Any]:
    """The registry actor of every shard (created where missing), shard 0 first."""
    return [
        ray.remote(RegistryActor)
        .options(
            name=shard_name(REGISTRY_NAME, k),
            get_if_exists=True,
            num_cpus=0,
            max_restarts=-1,
            **on_node(config.node_id),  # its state file is on that node
        )
        .remote(config, k)
        for k in range(config.registry_shards)
    ]


def kill_registry(config: Ieee2030_5Config) -> None:
    """Kill every shard's registry actor (their state files stay)."""
    for k in range(config.registry_shards):
        with contextlib.suppress(ValueError):  # not running
            ray.kill(ray.get_actor(shard_name(REGISTRY_NAME, k)), no_restart=True)


def _front_actor(config: Ieee2030_5Config):
    return (
        ray.remote(FrontActor)
        .options(
            name=FRONT_NAME,
            num_cpus=0,
            max_restarts=FRONT_MAX_RESTARTS,
            max_concurrency=4,
            **on_node(config.node_id),  # the port and the certificates are that node's
        )
        .remote(config, REGISTRY_NAME)
    )


def start_registry(config: Ieee2030_5Config) -> list[Any]:
    """Start (or re-attach to) every registry shard and wait until each has loaded its state;
    returns their actors, shard 0's first. ConfigError (every shard killed) when one cannot
    start."""
    shards = registry_shards(config)
    try:
        ray.get([a.status_local.remote() for a in shards], timeout=REGISTRY_START_TIMEOUT_S)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
        cause = getattr(exc, "cause", None) or exc
        kill_registry(config)
        raise ConfigError(f"IEEE 2030.5 registry could not start: {_first_line(cause)}") from None
    return shards


def start_ieee2030_5(config: Ieee2030_5Config) -> Ieee2030_5Handles:
    """Start (or re-attach to) the registry actor and start the TLS front; return once it
    listens. Needs ``ray.init`` done. Raises ConfigError for missing certificates, a front that
    already runs, or a port that cannot be bound."""
    if not config.enabled:
        log.info("IEEE 2030.5 server disabled")
        return Ieee2030_5Handles(config)
    try:
        ray.get_actor(FRONT_NAME)
    except ValueError:
        pass
    else:
        raise ConfigError(f"an IEEE 2030.5 front ({FRONT_NAME}) is already running; stop it first")
    try:
        ray.get_actor(REGISTRY_NAME)
        created_registry = False
    except ValueError:
        created_registry = True
    shards = start_registry(config)
    front = _front_actor(config)
    try:
        port = ray.get(front.port.remote(), timeout=START_TIMEOUT_S)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
        cause = getattr(exc, "cause", None) or exc
        ray.kill(front, no_restart=True)
        if created_registry:
            kill_registry(config)
        raise ConfigError(f"IEEE 2030.5 server could not start: {_first_line(cause)}") from None
    log.info(
        "IEEE 2030.5 server on %s:%d (registry %s, %d shard(s))",
        config.host,
        port,
        REGISTRY_NAME,
        config.registry_shards,
    )
    return Ieee2030_5Handles(config, shards[0], front, port, tuple(shards))


def restart_front(handles: Ieee2030_5Handles) -> Ieee2030_5Handles:
    """Replace the front actor (same configuration, same registry); returns new handles."""
    if handles.front is None:
        return handles
    _stop_front(handles.front)
    front = _front_actor(handles.config)
    port = ray.get(front.port.remote(), timeout=START_TIMEOUT_S)
    return Ieee2030_5Handles(handles.config, handles.registry, front, port, handles.shards)


def status_ieee2030_5(handles: Ieee2030_5Handles) -> dict[str, Any]:
    """enabled, host, port, listening (checked by connecting), registered_devices,
    mirror_usage_points, readings_mirrored/dropped, requests, client_errors, server_errors,
    last_error, and ``errors`` listing actors that do not answer."""
    out: dict[str, Any] = {"enabled": handles.config.enabled, "host": handles.config.host}
    if not handles.config.enabled:
        return out
    errors: list[str] = []
    try:
        out.update(ray.get(handles.registry.status.remote(), timeout=10))
    except Exception as exc:
        errors.append(f"registry: {_first_line(exc)}")
    try:
        out.update(ray.get(handles.front.status.remote(), timeout=10))
    except Exception as exc:
        errors.append(f"front: {_first_line(exc)}")
        out.update({"listening": False, "port": handles.port})
    out["errors"] = errors
    return out


async def status_ieee2030_5_async(handles: Ieee2030_5Handles) -> dict[str, Any]:
    """``status_ieee2030_5`` for async callers (a Ray Serve deployment): awaits the actors
    instead of blocking on ``ray.get``; each actor gets 10 s to answer."""
    out: dict[str, Any] = {"enabled": handles.config.enabled, "host": handles.config.host}
    if not handles.config.enabled:
        return out
    errors: list[str] = []
    for name, actor in (("registry", handles.registry), ("front", handles.front)):
        try:
            if isinstance(actor, str):  # a Ray Serve application (serve_front)
                out.update(await asyncio.to_thread(_serve_front_status, handles))
            else:
                out.update(await asyncio.wait_for(actor.status.remote(), timeout=10))
        except Exception as exc:
            errors.append(f"{name}: {_first_line(exc)}")
            if name == "front":
                out.update({"listening": False, "port": handles.port})
    out["errors"] = errors
    return out


def _serve_front_status(handles: Ieee2030_5Handles) -> dict[str, Any]:
    from gtx_ray.ieee2030_5.server.serve_front import serve_front_status

    front = serve_front_status(handles.front)
    return {
        "front": "ray_serve",
        "replicas": front["replicas"],
        "serve_status": front["status"],
        "listening": front["replicas"] > 0,
        "port": handles.port,
    }


def stop_ieee2030_5(handles: Ieee2030_5Handles, keep_registry: bool = False) -> None:
    """Stop the front (closing its port) and, unless ``keep_registry``, the registry."""
    if isinstance(handles.front, str):  # a Ray Serve application (serve_front)
        from gtx_ray.ieee2030_5.server.serve_front import stop_ieee2030_5_serve

        stop_ieee2030_5_serve(handles, keep_registry)
        return
    if handles.front is not None:
        _stop_front(handles.front)
    if handles.registry is not None and not keep_registry:
        kill_registry(handles.config)


def _stop_front(front: Any) -> None:
    try:
        ray.get(front.stop.remote(), timeout=30)
    except Exception as exc:
        log.warning("IEEE 2030.5 front did not stop cleanly: %s", _first_line(exc))
    ray.kill(front, no_restart=True)
    # A killed named actor frees its name asynchronously: wait until it is gone.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            ray.get_actor(FRONT_NAME)
        except ValueError:
            return
        time.sleep(0.05)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    for line in reversed(text):
        if line.strip():
            return line.strip()[:300]
    return type(exc).__name__
