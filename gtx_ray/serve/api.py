"""The REST API (port 4040) as a Ray Serve deployment that terminates HTTP itself.

Serve places, health-checks and restarts the ``RestApi`` replica; the replica serves the FastAPI
app (``gtx_ray.serve.app``) with uvicorn on the API port from its own thread. Serve's HTTP proxy
is not in the path: on this machine class it tops out at ~200–400 requests/s with a p99 of
~170 ms at 32 clients (``benchmarks/rest_api.py``), because every request costs a proxy hop and
an actor call. This is the shape of Serve's own "direct ingress" mode (the replica serves HTTP),
with the port chosen by us instead of from Serve's 30000–31000 range. Serve's proxy is left
disabled, so the API does not care whether or where another Serve application runs its proxy.
"""

import asyncio
import logging
import time
from typing import Any, NoReturn

from ray import serve

from gtx_ray.errors import ConfigError
from gtx_ray.fleet import MeterArrays
from gtx_ray.placement import on_node
from gtx_ray.runtime import Layout, influx_config
from gtx_ray.serve.app import ApiContext, FastReads, build_app
from gtx_ray.serve.handles import SimulationHandles
from gtx_ray.serve.http_server import ThreadedHttpServer, require_free_api_port
from gtx_ray.serve.live import LiveView
from gtx_ray.serve.origins import OriginPolicy
from gtx_ray.serve.request_metrics import RequestCounter
from gtx_ray.settings import Settings

log = logging.getLogger(__name__)


@serve.deployment(
    num_replicas=1,
    ray_actor_options={"num_cpus": 0},
    health_check_period_s=5,
    max_constructor_retry_count=3,
    graceful_shutdown_wait_loop_s=0.5,  # its requests take milliseconds: a stop takes ~1 s,
    graceful_shutdown_timeout_s=3,  # not Serve's default 20 s
)
class RestApi:
    """One replica serving the API on host:port (one is plenty: see the module docstring)."""

    def __init__(
        self,
        meters: MeterArrays,
        campus_name: str,
        handles: SimulationHandles,
        data_dir: str,
        host: str,
        port: int,
        app_name: str,
        admin_token: str | None = None,
        ieee2030_5: Any = None,
        influx: Any = None,
        utc_offset_s: int = 0,
        cors_origins: tuple[str, ...] = (),
    ):
        live = LiveView(meters, campus_name, handles)
        ctx = ApiContext(
            live=live,
            data_dir=data_dir,
            admin_token=admin_token or None,
            origins=OriginPolicy.build(host, cors_origins),
            ieee2030_5=ieee2030_5,
            influx=influx,
            utc_offset_s=utc_offset_s,
        )
        counter = RequestCounter()

        async def background() -> None:
            await asyncio.gather(live.run(), counter.run(), ctx.ieee2030_5_view.run())

        self._server = ThreadedHttpServer(
            FastReads(build_app(ctx), live, counter), host, port, background=background
        )
        self._live, self._app_name, self._removing = live, app_name, False

    def check_health(self) -> None:
        """Serve calls this every few seconds: a dead HTTP server fails it (Serve replaces the
        replica). When the simulation's actors are dead for good (e.g. its driver was
        SIGKILLed while joined to a long-lived cluster), the API removes itself and frees the
        port instead of serving stale data forever."""
        self._server.check()
        if self._live.gone is not None and not self._removing:
            self._removing = True
            log.warning("REST API %r: %s; removing it", self._app_name, self._live.gone)
            serve.delete(self._app_name, _blocking=False)

    def __del__(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.stop()


def start_serve() -> None:
    """Start Ray Serve for the REST API: its controller, no proxy (the replica serves HTTP
    itself); nothing when it runs already."""
    serve.start(proxy_location="Disabled")


def start_rest_api(
    settings: Settings,
    layout: Layout,
    host: str,
    port: int,
    admin_token: str | None,
    ieee2030_5: Any = None,
    meters_are_clients: bool = False,
) -> str:
    """Serve the REST API of the simulation ``settings`` and ``layout`` describe (Ray must be
    connected). It may be deployed before the simulation's actors exist: it finds them by name
    and answers 503 "starting" until then. ``ieee2030_5``: the handles of a running IEEE 2030.5
    server, for its status endpoint; ``meters_are_clients``: the meter actors run 2030.5
    clients, for the clients endpoint. The replica runs on the home node (``placement``; the
    driver's unless ``--home-node`` chose another), so host:port is that machine's. Returns
    the Serve application's name (the simulation's Ray namespace, so simulations in other
    namespaces keep their own API)."""
    require_free_api_port(host, port)
    app_name = settings.namespace
    handles = SimulationHandles(
        settings.namespace, layout.meter_actor_names if meters_are_clients else None
    )
    start_serve()
    deployment = RestApi.options(
        ray_actor_options={"num_cpus": 0, **on_node(settings.home_node)}
    ).bind(
        layout.meters,
        layout.campus.site.name,
        handles,
        str(settings.data_dir),
        host,
        port,
        app_name,
        admin_token,
        ieee2030_5,
        influx_config(settings),
        layout.campus.site.utc_offset_s,
        cors_origins=settings.api_cors_origins,
    )
    try:  # not serve.run: it polls for RUNNING once a second; the port says it sooner
        serve.run_many(
            [serve.RunTarget(deployment, name=app_name, route_prefix=None)],
            wait_for_applications_running=False,
        )
    except Exception as exc:
        _failed(app_name, host, port, str(exc))
    _wait_listening(app_name, host, port)
    log.info("REST API on http://%s:%d (docs at /docs)", host, port)
    return app_name


def _deployment_error(app_name: str) -> str | None:
    """The last line of the failed deployment's message (the constructor's exception)."""
    try:
        app = serve.status().applications[app_name]
        message = app.deployments["RestApi"].message
    except Exception:
        return None
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _failed(app_name: str, host: str, port: int, why: str) -> NoReturn:
    """Remove the application and raise ConfigError saying why it did not start (the replica
    constructor's exception when Serve has it, e.g. the port was taken)."""
    reason = _deployment_error(app_name) or why
    stop_rest_api(app_name)
    raise ConfigError(f"REST API did not start on {host}:{port}: {reason}") from None


def _app_status(app_name: str) -> str | None:
    """Serve's status of the application (``DEPLOYING``, ``RUNNING``, ``DEPLOY_FAILED`` ...)."""
    try:
        app = serve.status().applications.get(app_name)
    except Exception:  # the controller is busy or restarting: ask again
        return None
    return None if app is None else str(app.status.value)


def _answers(host: str, port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/openapi.json", timeout=5):
            return True
    except OSError:
        return False


def _wait_listening(
    app_name: str, host: str, port: int, timeout_s: float = 30.0, poll_s: float = 0.05
) -> None:
    """Return once the API answers on host:port (polled every ``poll_s`` seconds; Serve's status
    every 0.5 s). No limit while Serve deploys the replica (a busy machine may take long);
    ``timeout_s`` seconds once Serve reports it running. ConfigError when the deployment fails
    or the port stays silent."""
    probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    deadline: float | None = None
    next_status = time.monotonic()
    while not _answers(probe, port):
        if time.monotonic() < next_status:
            time.sleep(poll_s)
            continue
        next_status = time.monotonic() + 0.5
        status = _app_status(app_name)
        if status == "DEPLOY_FAILED":
            _failed(app_name, host, port, "the deployment failed")
        if status == "RUNNING" and deadline is None:
            deadline = time.monotonic() + timeout_s
        if deadline is not None and time.monotonic() > deadline:
            stop_rest_api(app_name)
            raise ConfigError(f"the REST API is not answering on {host}:{port}")
        time.sleep(poll_s)


def stop_rest_api(app_name: str) -> None:
    """Delete the API's Serve application (its replica closes the port)."""
    try:
        serve.delete(app_name)
    except Exception as exc:  # Serve already gone with the cluster
        log.debug("REST API stop: %s", exc)
