"""A real headless browser for tests: Debian's ``chromium``, driven over the Chrome DevTools
Protocol (CDP) with aiohttp's websocket client, so no extra Python package is needed.

``Chromium(workdir).start()`` launches it on loopback with its own profile under ``workdir``
and a DevTools port chosen by chromium itself (read from ``DevToolsActivePort``, so two browsers
never race for a port); ``page()`` connects to its first tab. ``Page`` calls CDP methods
synchronously (its websocket runs on an event loop in a background thread) and keeps the events
of the domains it enabled. ``stop()`` ends only the process group this object started.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp

from tests.servers import ServerUnavailable, find_binary

CHROMIUM = "chromium"
START_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 60.0
MAX_EVENTS = 10_000
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in containers
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class CdpError(RuntimeError):
    """A CDP call failed, or a page script threw; the message says which."""


class Page:
    """One tab over one websocket."""

    def __init__(self, ws_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self.events: deque[dict] = deque(maxlen=MAX_EVENTS)
        self._run(self._connect(ws_url))

    def _run(self, coroutine: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    async def _connect(self, ws_url: str) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(ws_url, max_msg_size=256 * 2**20)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id"), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools connection closed"))

    async def _call(self, method: str, params: dict) -> dict:
        self._next_id += 1
        future = self._loop.create_future()
        self._pending[self._next_id] = future
        await self._ws.send_str(
            json.dumps({"id": self._next_id, "method": method, "params": params})
        )
        answer = await future
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def call(self, method: str, timeout_s: float = CALL_TIMEOUT_S, **params: Any) -> dict:
        """Call a CDP method (``Page.navigate``, ``Runtime.evaluate`` …) and return its result."""
        return self._run(self._call(method, params), timeout_s)

    def evaluate(self, expression: str, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        """The JSON value of a page expression (promises awaited); a thrown error is CdpError."""
        result = self.call(
            "Runtime.evaluate",
            timeout_s,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"page script failed: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, interval_s: float = 0.05) -> Any:
        """Evaluate ``expression`` until it is truthy; return that value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout_s:.0f} s: {expression}")
            time.sleep(interval_s)

    def metrics(self) -> dict[str, float]:
        """``Performance.getMetrics`` as a dict (JSHeapUsedSize in bytes, Nodes, …)."""
        result = self.call("Performance.getMetrics")
        return {m["name"]: m["value"] for m in result["metrics"]}

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the viewport) as a PNG file."""
        result = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    def close(self) -> None:
        async def _close() -> None:
            await self._ws.close()
            await self._session.close()

        with contextlib.suppress(Exception):
            self._run(_close(), 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class Chromium:
    """One headless chromium process with its profile under ``workdir``."""

    def __init__(self, workdir: Path, window: tuple[int, int] = (1280, 1600)) -> None:
        self.workdir = workdir
        self.window = window
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self) -> Chromium:
        binary = find_binary(CHROMIUM)
        profile = self.workdir / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "chromium.log").open("wb")
        argv = [
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={self.window[0]},{self.window[1]}",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (active.exists() and active.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.workdir / "chromium.log").read_text(errors="replace")[-2000:]
                raise ServerUnavailable(f"chromium did not start its DevTools endpoint:\n{tail}")
            time.sleep(0.05)
        self.port = int(active.read_text().splitlines()[0])
        return self

    def page(self) -> Page:
        """Connect to the first tab (chromium opens one on about:blank)."""
        url = f"http://127.0.0.1:{self.port}/json/list"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with urllib.request.urlopen(url, timeout=10) as response:
                targets = [t for t in json.load(response) if t.get("type") == "page"]
            if targets:
                return Page(targets[0]["webSocketDebuggerUrl"])
            if time.monotonic() > deadline:
                raise ServerUnavailable("chromium opened no tab")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the browser, then SIGKILL to its process group (its renderers)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None
