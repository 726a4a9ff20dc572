"""Throwaway database servers for tests and benchmarks: real binaries, loopback only, temp dirs.

``influxd_server(workdir)`` (InfluxDB 1.x) and ``victoria_metrics_server(workdir)`` return a
``Server`` that is not running yet; ``start()`` launches it on 127.0.0.1 on a free port and waits
until ``/ping`` answers. ``stop()`` (SIGTERM, then SIGKILL), ``kill()`` (SIGKILL, like a crash) and
``restart()`` act only on the process this object started, by its PID; the data directory and the
port survive a restart. A missing binary raises ``ServerUnavailable`` with the package to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

INFLUXD = "influxd"
VICTORIA_METRICS = "victoria-metrics"
_PACKAGES = {INFLUXD: "influxdb", VICTORIA_METRICS: "victoria-metrics"}


class ServerUnavailable(RuntimeError):
    """A server binary is missing or the server did not come up; the message says what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(name: str) -> str:
    """Absolute path of a server binary, or ServerUnavailable naming the Debian package."""
    path = shutil.which(name) or (
        f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
    )
    if path is None:
        raise ServerUnavailable(
            f"{name} is not installed: run scripts/test (it installs it) or "
            f"`apt-get install -y {_PACKAGES.get(name, name)}`"
        )
    return path


@dataclass
class Server:
    """One server process bound to 127.0.0.1:port with its files under workdir."""

    name: str
    argv: list[str]
    workdir: Path
    port: int
    process: subprocess.Popen | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = 30.0) -> Server:
        """Launch the process and wait until /ping answers; ServerUnavailable with the log tail
        if it exits or does not answer within ``timeout_s`` seconds."""
        if self.running():
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnavailable(
                    f"{self.name} exited with code {self.process.returncode} at start; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self.ping():
                return self
            time.sleep(0.05)
        self.kill()
        raise ServerUnavailable(
            f"{self.name} did not answer /ping on {self.url} within {timeout_s:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def ping(self, timeout_s: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=timeout_s) as response:
                return response.status in (200, 204)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout_s: float = 15.0) -> None:
        """Graceful stop: SIGTERM, then SIGKILL after ``timeout_s`` seconds."""
        if not self.running():
            self.process = None
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL, like a crash or an OOM kill; waits until the process is gone."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self, hard: bool = False, timeout_s: float = 30.0) -> Server:
        """Stop (or SIGKILL when ``hard``) and start again on the same port and data directory."""
        self.kill() if hard else self.stop()
        return self.start(timeout_s=timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


INFLUXD_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {auth}
  log-enabled = false
  flux-enabled = false
"""


def influxd_server(workdir: str | Path, auth_enabled: bool = False) -> Server:
    """An InfluxDB 1.x server (``influxd -config``) with meta, data and WAL under ``workdir``.

    With ``auth_enabled`` the first user must be created as admin
    (``CREATE USER ... WITH ALL PRIVILEGES`` through /query needs no credentials until then).
    """
    binary = find_binary(INFLUXD)
    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    port, rpc_port = free_port(), free_port()
    config = root / "influxdb.conf"
    config.write_text(
        INFLUXD_CONFIG.format(
            root=root, port=port, rpc_port=rpc_port, auth="true" if auth_enabled else "false"
        )
    )
    return Server(name="influxd", argv=[binary, "-config", str(config)], workdir=root, port=port)


def victoria_metrics_server(workdir: str | Path) -> Server:
    """A single-node VictoriaMetrics keeping 3 years, deduplicating same-timestamp samples (so a
    retried write is not stored twice)."""
    binary = find_binary(VICTORIA_METRICS)
    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        binary,
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={root / 'data'}",
        "-retentionPeriod=3y",
        "-dedup.minScrapeInterval=1ms",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    return Server(name="victoria-metrics", argv=argv, workdir=root, port=port)
