"""What the REST API knows about the IEEE 2030.5 server and the meters' 2030.5 clients, kept
fresh in the background so ``/api/ieee2030_5/status`` and ``/api/ieee2030_5/clients`` answer at
once from memory.

A meter actor steps its meters one call at a time, so a status call waits behind every window
queued before it (on the campus, tens of seconds at start-up). Each refresh therefore asks every
actor (and the server) that has no question outstanding, and each answer is kept as it arrives:
a busy actor delays only its own rows, never a request, and never collects more than one
unanswered call. Until every actor has answered once, the routes answer 503 saying what they
wait for; after that, each actor's last answer (``updated`` says how old the oldest is).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from gtx_ray.serve.handles import SimulationHandles

log = logging.getLogger(__name__)

REFRESH_S = 1.0
DUTY_FACTOR = 10.0  # wait at least this many times the last refresh's cost between refreshes
CLIENT_COUNTERS = (
    "registered",
    "posts_ok",
    "posts_failed",
    "readings_posted",
    "readings_dropped",
)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass
class _Answer:
    """The last answer of one meter actor (or the server) and the question still outstanding."""

    value: Any = None
    at_s: float | None = None  # wall-clock time of the answer, epoch s
    error: str | None = None
    pending: asyncio.Task | None = None

    def idle(self) -> bool:
        return self.pending is None or self.pending.done()


class Ieee2030_5View:
    """Background-refreshed status of one simulation's 2030.5 server (``server``: its handles,
    or None when it does not run here) and of its meters' clients (the meter actors in
    ``handles``, once the live view has found them)."""

    def __init__(self, handles: SimulationHandles, server: Any = None) -> None:
        self.handles = handles
        self.server = server
        self._server = _Answer()
        self._actors: list[_Answer] = []

    @property
    def has_clients(self) -> bool:
        return bool(self.handles.meter_actor_names)

    def poll(self) -> None:
        """Ask every party with no question outstanding (on the event loop; returns at once)."""
        if self.server is not None and self._server.idle():
            self._server.pending = asyncio.ensure_future(self._ask_server())
        actors = self.handles.meter_actors or []
        while len(self._actors) < len(actors):
            self._actors.append(_Answer())
        for actor, answer in zip(actors, self._actors, strict=False):
            if answer.idle():
                answer.pending = asyncio.ensure_future(self._ask_actor(actor, answer))

    async def _ask_server(self) -> None:
        from gtx_ray.ieee2030_5.server.service import status_ieee2030_5_async

        try:  # bounded: each of its actors gets 10 s
            status = await status_ieee2030_5_async(self.server)
        except Exception as exc:
            self._server.error = _first_line(exc)
            return
        self._server.value, self._server.at_s, self._server.error = status, time.time(), None

    @staticmethod
    async def _ask_actor(actor: Any, answer: _Answer) -> None:
        try:  # a busy actor answers after its queued steps; Ray retries across its restarts
            rows = await actor.ieee2030_5_clients.remote()
        except Exception as exc:
            answer.error = _first_line(exc)
            return
        answer.value, answer.at_s, answer.error = rows, time.time(), None

    async def run(self, period_s: float = REFRESH_S) -> None:
        """Poll forever (the API server's background task)."""
        if self.server is None and not self.has_clients:
            return
        while True:
            started = time.monotonic()
            try:
                self.poll()
            except Exception as exc:  # never fatal: the routes say the data is missing
                log.warning("IEEE 2030.5 status refresh failed: %s", _first_line(exc))
            cost = time.monotonic() - started
            await asyncio.sleep(max(period_s, DUTY_FACTOR * cost))

    def server_status(self) -> tuple[dict | None, str]:
        """The server's last status and when it came (epoch s), or None and what is awaited."""
        if self._server.value is None:
            detail = f" (last attempt: {self._server.error})" if self._server.error else ""
            return None, f"waiting for the IEEE 2030.5 server's first status{detail}"
        return self._server.value, ""

    def clients(self) -> tuple[list[dict] | None, str]:
        """Every meter's client row (each actor's last answer), or None and what is awaited."""
        if not self.has_clients:
            return [], ""
        actors = self.handles.meter_actors
        if actors is None:
            return None, "the simulation is starting: its meter actors do not exist yet"
        silent = [a for a in self._actors[: len(actors)] if a.value is None]
        silent += [None] * (len(actors) - len(self._actors))
        if silent:
            errors = sorted({a.error for a in silent if a is not None and a.error})
            detail = f" (last error: {errors[0]})" if errors else ""
            return None, (
                f"waiting for the first IEEE 2030.5 client status of {len(silent)} of "
                f"{len(actors)} meter actors (busy stepping or starting){detail}"
            )
        return [row for answer in self._actors[: len(actors)] for row in answer.value], ""

    def updated_s(self) -> float | None:
        """When the oldest piece of what is shown was answered (epoch s)."""
        times = [a.at_s for a in [self._server, *self._actors] if a.at_s is not None]
        return min(times) if times else None

    def client_totals(self) -> tuple[dict | None, str]:
        """Totals over every meter's client (None and what is awaited while unknown)."""
        rows, waiting = self.clients()
        if rows is None or not self.has_clients:
            return None, waiting
        totals = {"meters": len(rows)}
        totals.update({key: sum(int(r[key]) for r in rows) for key in CLIENT_COUNTERS})
        return totals, ""
