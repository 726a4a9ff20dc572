"""Run the 2030.5 application on a mutual-TLS socket (no Ray): ``Ieee2030_5Server``.

Used by the Ray front actor, by tests on plain sockets and by the benchmark. The server binds
``config.host``/``config.port`` (port 0 picks a free one; ``port`` tells which) with the TLS
context of ``tls.server_context``, a TLS handshake timeout, and the connection bounds of
``connections.ConnectionPool`` (``config.max_connections``, idle connections closed after
``config.keepalive_s``, sooner when many are open).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from aiohttp import web

from gtx_ray.ieee2030_5.pki import CertsLayout
from gtx_ray.ieee2030_5.server.api.app import STATS, create_app
from gtx_ray.ieee2030_5.server.api.common import ApiSettings
from gtx_ray.ieee2030_5.server.backend import Backend
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.connections import ConnectionPool
from gtx_ray.ieee2030_5.server.peers import PeerGate
from gtx_ray.ieee2030_5.tls import server_context

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0
"""A TLS handshake that has not finished after this many seconds is dropped."""
LINGERING_S = 2.0
"""After answering a request whose body was not read (413, 415, 404 …), read and drop the rest of
it for at most this many seconds, so the client sees the answer, then close."""
SHUTDOWN_TIMEOUT_S = 5.0
"""``stop`` waits at most this long for requests in progress."""


class Ieee2030_5Server:
    """An aiohttp server for the 2030.5 app on a TLS socket. Start and stop on one event loop."""

    def __init__(self, config: Ieee2030_5Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        layout = CertsLayout(config.certs_dir)
        self.ssl_context = server_context(
            layout.serca_cert, layout.server_cert, layout.server_key, config.allow_gcm
        )
        self.app = create_app(
            backend,
            ApiSettings(config.max_body_bytes, config.max_xml_depth, config.max_page),
            PeerGate.from_files(layout.server_cert, layout.serca_cert),
        )
        self._runner: web.AppRunner | None = None
        self._server: asyncio.base_events.Server | None = None
        self._pool: ConnectionPool | None = None

    async def start(self) -> None:
        """Bind and listen; raises OSError (e.g. address in use) with the address in it."""
        runner = web.AppRunner(
            self.app,
            access_log=None,
            keepalive_timeout=self.config.keepalive_s,
            lingering_time=LINGERING_S,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            handle_signals=False,
        )
        await runner.setup()
        loop = asyncio.get_running_loop()
        pool = ConnectionPool(loop, self.config.max_connections, self.config.keepalive_s)
        try:
            self._server = await loop.create_server(
                pool.factory(runner.server, self.ssl_context, HANDSHAKE_TIMEOUT_S),
                self.config.host,
                self.config.port,
                backlog=1024,
                reuse_address=True,
                reuse_port=True if self.config.reuse_port else None,
            )
        except OSError as exc:
            await runner.cleanup()
            raise OSError(
                exc.errno, f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror}"
            ) from None
        self._runner = runner
        self._pool = pool
        log.info("IEEE 2030.5 server listening on https://%s:%d", self.config.host, self.port)

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one picked for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.config.port
        return self._server.sockets[0].getsockname()[1]

    @property
    def listening(self) -> bool:
        """True when a TCP connection to the bound address is accepted right now (a fact)."""
        if self._server is None or not self._server.is_serving():
            return False
        host = self.config.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        try:
            with socket.create_connection((host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def stats(self) -> dict[str, object]:
        """Responses by status and the connection pool's counts."""
        summary = self.app[STATS].summary()
        if self._pool is not None:
            summary.update(self._pool.stats())
        return summary

    async def stop(self) -> None:
        """Stop listening, close connections, release the port."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        log.info("IEEE 2030.5 server stopped")
