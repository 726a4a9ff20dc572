"""Connection bounds of the 2030.5 server over real mutual TLS: idle connections are closed after
the keep-alive time, sooner when the pool fills; a connection beyond the bound is refused."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest

from gtx_ray.ieee2030_5.pki import device_credentials
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.connections import ConnectionPool
from gtx_ray.ieee2030_5.tls import client_context
from tests.ieee2030_5.helpers import ThreadedServer

METER = "AMI_METER_UTCC_012"


class Conn:
    """A raw keep-alive TLS connection that sends GET /tm and reads one answer at a time."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.tls = ctx.wrap_socket(raw, server_hostname="localhost")

    def get(self) -> bytes:
        self.tls.sendall(b"GET /tm HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while b"</Time>" not in data:
            chunk = self.tls.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            data += chunk
        return data

    def closed_by_server(self, wait_s: float) -> bool:
        """True when the server closes the connection within ``wait_s`` seconds."""
        self.tls.settimeout(wait_s)
        try:
            return self.tls.recv(1) == b""
        except TimeoutError:
            return False
        except (ssl.SSLError, ConnectionError):
            return True

    def close(self) -> None:
        self.tls.close()


@pytest.fixture()
def ctx(certs_dir):
    creds = device_credentials(certs_dir, METER)
    return client_context(creds.ca, creds.cert_chain, creds.key)


def _server(certs_dir, **kw) -> ThreadedServer:
    return ThreadedServer(Ieee2030_5Config(certs_dir=certs_dir, port=0, **kw))


def test_idle_connection_is_closed_after_keepalive(certs_dir, ctx):
    srv = _server(certs_dir, keepalive_s=2, max_connections=100)
    try:
        c = Conn(srv.port, ctx)
        assert b"200 OK" in c.get()
        started = time.monotonic()
        assert not c.closed_by_server(1.0)  # still open well inside the keep-alive time
        assert c.closed_by_server(10.0)
        assert 1.5 < time.monotonic() - started < 8.0
        c.close()
    finally:
        srv.stop()


def test_idle_connections_closed_sooner_when_the_pool_fills(certs_dir, ctx):
    """With all 5 allowed connections open, idle ones go after about a second, not after the
    60 s keep-alive; with 3 of 5 open the limit is already back to ~48 s, so at least 2 go."""
    srv = _server(certs_dir, keepalive_s=60, max_connections=5)
    conns = []
    try:
        for _ in range(5):
            conns.append(Conn(srv.port, ctx))
            conns[-1].get()
        time.sleep(8.0)
        closed = sum(c.closed_by_server(0.5) for c in conns)
        assert closed >= 2, closed
        assert srv.stats()["connections_closed_idle"] == closed
        assert srv.stats()["connections_open"] == 5 - closed
        fresh = Conn(srv.port, ctx)  # the server keeps serving new connections
        assert b"200 OK" in fresh.get()
        fresh.close()
    finally:
        for c in conns:
            c.close()
        srv.stop()


def test_connection_beyond_the_bound_is_refused(certs_dir, ctx):
    srv = _server(certs_dir, keepalive_s=60, max_connections=3)
    conns = []
    try:
        for _ in range(3):
            conns.append(Conn(srv.port, ctx))
        for c in conns:
            c.get()
        # Every open connection has just been used: none has been idle long enough to be
        # closed, so a fourth is refused before its handshake, and counted.
        with pytest.raises((ssl.SSLError, OSError)):
            Conn(srv.port, ctx).get()
        assert srv.stats()["connections_refused"] == 1
        assert srv.stats()["connections_open"] == 3
        for c in conns:
            assert b"200 OK" in c.get()  # the admitted ones were not disturbed
    finally:
        for c in conns:
            c.close()
        srv.stop()


class _IdleConn:
    """What the pool sees of an established connection idle for 100 s."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.closing = False
        self.established = True
        self.last_seen = loop.time() - 100.0

    def close_idle(self) -> None:
        self.closing = True


def test_connections_the_pool_closes_leave_room_before_they_are_gone():
    """``in_use`` (asked on every new connection) counts open connections the pool is not
    closing: closed idle ones make room at once, and go from ``open`` when released."""
    loop = asyncio.new_event_loop()
    try:
        pool = ConnectionPool(loop, max_connections=4, keepalive_s=1.0)
        conns = [_IdleConn(loop) for _ in range(4)]
        assert all(pool.admit(c) for c in conns)  # type: ignore[arg-type]
        assert pool.in_use == 4 and not pool.admit(_IdleConn(loop))  # type: ignore[arg-type]
        pool._sweep()  # all idle: all closing, still open until their close completes
        assert pool.in_use == 0 and len(pool.open) == 4 and pool.closed_idle == 4
        fresh = _IdleConn(loop)
        assert pool.admit(fresh)  # type: ignore[arg-type]
        for c in conns:
            pool.release(c)  # type: ignore[arg-type]
        assert pool.in_use == 1 and pool.open == {fresh}
        pool.release(fresh)  # type: ignore[arg-type]
        assert pool.in_use == 0 and not pool.open
        pool.close()
    finally:
        loop.close()
