"""Uvicorn serving an ASGI app on its own thread and event loop, inside whatever process owns it
(the REST API's Ray Serve replica).

The socket is bound in the constructor, so a busy port fails construction with a clear error
instead of a server that silently never listens. ``check()`` raises once the server has died, so
Serve's health check replaces the replica.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from gtx_ray.serve.http_limits import BoundedHttpToolsProtocol

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class PortUnavailable(OSError):
    """The HTTP port cannot be bound (in use, or the host is not this machine's)."""


def bind_listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on host:port (SO_REUSEADDR, so a restart within TIME_WAIT works)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot resolve API host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def require_free_api_port(host: str, port: int) -> None:
    """Fail fast, with a ConfigError naming the setting, when the API port cannot be bound."""
    from gtx_ray.errors import ConfigError

    try:
        bind_listening_socket(host, port).close()
    except PortUnavailable as exc:
        raise ConfigError(f"REST API: {exc} (set another with --api-port / API_PORT)") from None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with ray[serve]
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ThreadedHttpServer:
    """Serve ``app`` on host:port from a background thread; ``background`` is a coroutine
    function run on the same loop for the server's lifetime (e.g. a cache refresher)."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._socket = bind_listening_socket(host, port)
        self._background = background
        self._error: str | None = None
        config = uvicorn.Config(
            app,
            http=BoundedHttpToolsProtocol,  # JSON 414/431 for over-long heads
            lifespan="off",
            log_config=None,  # uvicorn's default dictConfig would close Serve's log handlers
            access_log=False,
            log_level="warning",
            proxy_headers=False,  # the loopback check of operator endpoints uses the TCP peer
            server_header=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="rest-api-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the HTTP server did not start: {self._error or 'timeout'}")
            time.sleep(0.01)

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                runner.run(self._main())
        except BaseException as exc:  # reported through check()
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("the HTTP server on %s:%d stopped", self.host, self.port)

    async def _main(self) -> None:
        task = asyncio.create_task(self._background()) if self._background else None
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            if task is not None:
                task.cancel()

    def check(self) -> None:
        """Raise if the server is not serving any more."""
        if not self._thread.is_alive() or self._server.should_exit:
            raise RuntimeError(
                f"the HTTP server on {self.host}:{self.port} stopped: {self._error or 'exited'}"
            )

    def stop(self) -> None:
        """Stop accepting, finish in-flight requests (at most 5 s), close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT_S)
        self._socket.close()
