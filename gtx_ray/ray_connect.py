"""Join a Ray cluster or start Ray locally, and say in one line why not.

Ray's own failures are slow and loud: joining an address where nothing listens retries for
minutes, a cluster that refuses the token (Ray 2.60 turns token authentication on for every
cluster it starts) logs a warning a second for 20 s and then raises a bare ConnectionError, and a
local start can fail with a bare ``Exception`` ("node timed out during startup"). So before
``ray.init`` joins an address, a TCP connect (at most ``CONNECT_TIMEOUT_S`` seconds) and one GCS
call check it, and every failure becomes one of:

- ``RayUnavailable`` (a ConfigError, exit 2): the address or the token is wrong; the message
  names ``--address`` and says what to set.
- ``RayStartFailed`` (exit 1): Ray itself did not come up on this machine.

Private Ray APIs used here (``ray._private.services``, ``ray._raylet.GcsClient``, the
authentication helpers) are the ones ``ray.init`` itself calls; each is imported where used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import ray

from gtx_ray.errors import ConfigError, TokenAvailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # a TCP connect to the cluster's GCS port; a LAN answers in ms
_TOKEN_HELP = (
    "RAY_AUTH_TOKEN=<the cluster's token> (or the file named by RAY_AUTH_TOKEN_PATH, default "
    "~/.ray/auth_token; `ray get-auth-token` on the head node prints it)"
)


class RayUnavailable(ConfigError):
    """The Ray cluster named by --address / RAY_ADDRESS cannot be joined (exit 2)."""


class TokenOnThisMachine(RayUnavailable, TokenAvailable):
    """The cluster wants a token and this user has one that Ray was not told to send."""

    def __init__(self, message: str, path: str):
        RayUnavailable.__init__(self, message)
        self.path = path


class RayStartFailed(RuntimeError):
    """Ray could not be started on this machine (exit 1)."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def connect(address: str | None, namespace: str) -> bool:
    """Join ``address`` (``local`` starts a private Ray; None: a cluster running on this host,
    else a local start). True when this process started Ray (and so must shut it down)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    common: dict[str, Any] = {
        "namespace": namespace,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "configure_logging": False,
    }
    if address == "local":
        _start_local(common)
        return True
    if address:
        _check_cluster(address)
        log.info("joining the Ray cluster at %s", address)
        _join(address, common)
        return False
    from ray._private.services import find_gcs_addresses  # private API, stable since Ray 1.x

    if find_gcs_addresses():
        try:
            from ray._private.authentication.authentication_token_setup import (
                maybe_enable_token_auth_if_token_available,
            )

            # what ray.init("auto") does: a cluster found on this host gets the local token
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
            _check_cluster("auto")
            log.info("joining the Ray cluster running on this host")
            _join("auto", common)
            return False
        except (ConfigError, ConnectionError, RuntimeError, ValueError) as exc:
            log.warning(
                "could not join the Ray cluster on this host (%s): starting Ray locally "
                "(pass --address to choose a cluster)",
                one_line(exc),
            )
    log.info("no Ray cluster found: starting Ray locally")
    _start_local(common)
    return True


def _start_local(common: dict[str, Any]) -> None:
    # Ray announces at WARNING that it turned token authentication on for the cluster it
    # starts; for a private cluster of this run that is not news, and it would be a second
    # line next to a start-up error.
    auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = auth_log.level
    auth_log.setLevel(logging.ERROR)
    began = time.monotonic()
    try:
        context = ray.init(
            address="local", include_dashboard=True, dashboard_host="127.0.0.1", **common
        )
    except Exception as exc:  # Ray raises bare Exception, OSError, RuntimeError, ...
        with contextlib.suppress(Exception):
            ray.shutdown()
        logs = os.path.join(_ray_temp_dir(), "session_latest", "logs")
        where = f"its logs are in {logs}; " if os.path.isdir(logs) else ""
        raise RayStartFailed(
            f"could not start Ray locally: {one_line(exc)} ({where}check free memory and disk "
            "and RAY_TMPDIR, or join a running cluster with --address)"
        ) from None
    finally:
        auth_log.setLevel(level)
    dashboard = getattr(context, "dashboard_url", None)
    log.info(
        "Ray started locally in %.1f s%s",
        time.monotonic() - began,
        f"; its dashboard: http://{dashboard}" if dashboard else "",
    )


def _join(address: str, common: dict[str, Any]) -> None:
    from ray.exceptions import AuthenticationError

    try:
        ray.init(address=address, **common)
    except AuthenticationError as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise RayUnavailable(_auth_message(address, exc)) from None
    except Exception as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise RayUnavailable(
            f"--address {address}: could not join the Ray cluster: {one_line(exc)}"
        ) from None


def _check_cluster(address: str) -> None:
    """RayUnavailable unless the GCS that ``ray.init(address)`` would dial answers and takes
    this process's token; bounded by CONNECT_TIMEOUT_S, plus Ray's own GCS timeout when a
    listener accepts but never answers."""
    from ray.exceptions import AuthenticationError

    host, port = _dial_target(address)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise RayUnavailable(
            f"--address {address}: no Ray cluster answers at {host}:{port} ({why}); start one "
            "with `ray start --head` (it prints the address to pass), or fix --address / "
            "RAY_ADDRESS"
        ) from None
    if address.startswith("ray://"):
        return  # a Ray Client server, not a GCS: ray.init checks the rest
    from ray._private.authentication.authentication_token_setup import (
        ensure_token_if_auth_enabled,
    )
    from ray._raylet import GcsClient

    try:
        # RAY_AUTH_MODE=token without a readable token: a clear error here (GcsClient aborts)
        ensure_token_if_auth_enabled(None, create_token_if_missing=False)
        with _stderr_discarded():  # Ray's C++ client logs each failed attempt to fd 2
            GcsClient(address=f"{_bracketed(host)}:{port}")
    except AuthenticationError as exc:
        path = local_token_path()
        if path is not None:
            raise TokenOnThisMachine(_auth_message(address, exc), path) from None
        raise RayUnavailable(_auth_message(address, exc)) from None
    except Exception as exc:
        raise RayUnavailable(
            f"--address {address}: {host}:{port} does not answer as a Ray cluster "
            f"({one_line(exc)}); is it the GCS port `ray start --head` printed?"
        ) from None


def local_token_path() -> str | None:
    """This user's Ray token file (``ray start --head`` writes ``~/.ray/auth_token``) when the
    user has not chosen an authentication mode and the file exists; else None."""
    if os.environ.get("RAY_AUTH_MODE"):
        return None
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return path if os.path.isfile(path) else None


def _dial_target(address: str) -> tuple[str, int]:
    """(host, port) ``ray.init`` will connect to: Ray swaps a loopback host for this node's
    address, and ``auto`` for the cluster it finds."""
    if address.startswith("ray://"):
        text = address.removeprefix("ray://")
    else:
        from ray._private.services import canonicalize_bootstrap_address

        try:
            text = canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError) as exc:  # none or several clusters found
            raise RayUnavailable(f"--address {address}: {one_line(exc)}") from None
        if text is None:
            raise RayUnavailable(f"--address {address}: no Ray cluster found on this host")
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _auth_message(address: str, exc: BaseException) -> str:
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() != "token":
        return (
            f"--address {address}: the Ray cluster requires a token (Ray token authentication) "
            f"and none was sent: set RAY_AUTH_MODE=token and {_TOKEN_HELP}"
        )
    why = one_line(Exception(getattr(exc, "message", None) or exc), 160)  # without Ray's help
    return f"--address {address}: token refused or missing ({why}); set {_TOKEN_HELP}"


def _ray_temp_dir() -> str:
    return os.environ.get("RAY_TMPDIR") or os.path.join(tempfile.gettempdir(), "ray")


@contextlib.contextmanager
def _stderr_discarded() -> Iterator[None]:
    """File descriptor 2 goes nowhere for the duration (C++ logging bypasses sys.stderr)."""
    with contextlib.suppress(Exception):
        import sys

        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
