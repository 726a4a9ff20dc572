"""TLS connections of the 2030.5 server: how many, how long idle, how refused.

The server terminates TLS per connection with ``TlsConnection`` (asyncio's own TLS protocol,
which ``loop.create_server(ssl=...)`` would use, with three changes) and admits connections
through a ``ConnectionPool``:

- A refused handshake (no certificate, unknown CA, TLS version or cipher suite not offered) ends
  with the TLS alert OpenSSL wrote, so the client learns why; asyncio's protocol drops that alert
  and closes the socket bare (the client sees only an unexpected EOF).
- Its read buffer is ``READ_BUFFER_BYTES`` instead of asyncio's 256 KiB: TLS records are at most
  16 KiB, and the buffer is the largest part of an idle connection's memory.
- The pool bounds open connections (``max_connections``, handshakes included) and closes idle
  ones: after ``keepalive_s`` normally, sooner as the pool fills (linearly from ``keepalive_s``
  at half full down to ``MIN_IDLE_S`` when full, checked every ``SWEEP_EVERY_S``). A
  connection beyond the bound is closed at once, before its handshake (the cheapest refusal,
  which is what an overloaded server can afford), and counted in ``refused``.

An idle connection is one that has received nothing for a while; closing it is graceful: a
request still in progress (a slow registry) is answered first.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto
from collections.abc import Callable

log = logging.getLogger(__name__)

READ_BUFFER_BYTES = 32 * 1024
"""Per-connection TLS read buffer, bytes (asyncio's default is 256 KiB)."""
MIN_IDLE_S = 1.0
"""Shortest idle time before a connection may be closed (when the pool is full), seconds."""
SWEEP_EVERY_S = 1.0
"""How often idle connections are looked for while the pool is over half full, seconds."""
SHUTDOWN_TIMEOUT_S = 5.0
"""Longest wait for the client's close_notify when a connection is closed, seconds."""


class TlsConnection(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol around one aiohttp request handler, admitted by
    ``pool``; it remembers when it last received bytes (``last_seen``, loop time in s)."""

    max_size = READ_BUFFER_BYTES

    def __init__(
        self,
        pool: ConnectionPool,
        app_protocol: asyncio.Protocol,
        context: ssl.SSLContext,
        handshake_timeout_s: float,
    ) -> None:
        super().__init__(
            pool.loop,
            app_protocol,
            context,
            None,
            server_side=True,
            ssl_handshake_timeout=handshake_timeout_s,
            ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        self.pool = pool
        self.app = app_protocol
        self.last_seen = pool.loop.time()
        self.admitted = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.pool.admit(self):
            transport.abort()
            return
        self.admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.pool.release(self)
        if self.admitted:
            super().connection_lost(exc)

    def buffer_updated(self, nbytes: int) -> None:
        self.last_seen = self._loop.time()
        super().buffer_updated(nbytes)

    def _do_handshake(self) -> None:
        # asyncio's version goes straight to closing on an SSLError, leaving the alert that
        # OpenSSL wrote in the outgoing buffer; send it first (the socket write is immediate).
        try:
            self._sslobj.do_handshake()
        except sslproto.SSLAgainErrors:
            self._process_outgoing()
        except ssl.SSLError as exc:
            try:
                self._process_outgoing()
            except Exception:  # the alert is a courtesy; closing is what matters
                log.debug("could not send the TLS alert", exc_info=True)
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    @property
    def established(self) -> bool:
        """True once the handshake is done and the request handler has the connection."""
        return self._app_state == sslproto.AppProtocolState.STATE_CON_MADE

    def close_idle(self) -> None:
        """Close gracefully: now when no request is in progress, else after its response."""
        self.closing = True
        app = self.app
        if getattr(app, "_request_in_progress", False):
            app.close()  # aiohttp: no further request on this connection, close after this one
        elif hasattr(app, "force_close"):
            app.force_close()  # aiohttp's close() does not end an idle connection
        elif self._transport is not None:
            self._transport.close()


class ConnectionPool:
    """Open TLS connections: at most ``max_connections``, idle ones closed after
    ``keepalive_s`` seconds, sooner when more than half the pool is in use."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, max_connections: int, keepalive_s: float
    ) -> None:
        self.loop = loop
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self.open: set[TlsConnection] = set()
        self._closing: set[TlsConnection] = set()  # of ``open``, closed by the pool, not gone yet
        self.refused = 0
        self.closed_idle = 0
        self._sweeper: asyncio.TimerHandle | None = None

    def factory(
        self,
        handler_factory: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext,
        handshake_timeout_s: float,
    ) -> Callable[[], TlsConnection]:
        """A protocol factory for ``loop.create_server`` (without its ``ssl`` argument)."""

        def make() -> TlsConnection:
            return TlsConnection(self, handler_factory(), context, handshake_timeout_s)

        return make

    @property
    def in_use(self) -> int:
        """Open connections that are not already closing (O(1): ``admit`` asks on every new
        connection, and a scan of thousands of open ones there starved the server's loop)."""
        return len(self.open) - len(self._closing)

    def idle_limit_s(self) -> float:
        """How long a connection may stay idle now, seconds (shorter as the pool fills)."""
        half = self.max_connections / 2
        n = self.in_use
        if n <= half:
            return self.keepalive_s
        fill = min(1.0, (n - half) / max(1.0, self.max_connections - half))
        return max(MIN_IDLE_S, self.keepalive_s - fill * (self.keepalive_s - MIN_IDLE_S))

    def admit(self, conn: TlsConnection) -> bool:
        """Take ``conn`` if there is room; False (counted in ``refused``) when the pool is full."""
        if self.in_use >= self.max_connections:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning(
                    "2030.5 server: %d connections open, the limit; refused %d so far",
                    len(self.open),
                    self.refused,
                )
            return False
        self.open.add(conn)
        if self._sweeper is None and self.in_use > self.max_connections / 2:
            self._sweeper = self.loop.call_later(SWEEP_EVERY_S, self._sweep)
        return True

    def release(self, conn: TlsConnection) -> None:
        self.open.discard(conn)
        self._closing.discard(conn)

    def _sweep(self) -> None:
        self._sweeper = None
        limit = self.idle_limit_s()
        now = self.loop.time()
        for conn in list(self.open):
            if not conn.closing and conn.established and now - conn.last_seen > limit:
                self._closing.add(conn)
                conn.close_idle()
                self.closed_idle += 1
        if self.in_use > self.max_connections / 2:
            self._sweeper = self.loop.call_later(SWEEP_EVERY_S, self._sweep)

    def close(self) -> None:
        """Stop sweeping (the server closes the connections themselves)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def stats(self) -> dict[str, int]:
        return {
            "connections_open": len(self.open),
            "connections_refused": self.refused,
            "connections_closed_idle": self.closed_idle,
        }
