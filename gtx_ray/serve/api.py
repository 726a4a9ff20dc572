"""The REST API on Ray Serve (port 4040): the seed's endpoints plus history, OpenAPI, CORS and a
simulation control endpoint.

Requests are answered from a snapshot of the aggregator (latest reading per meter, storage status)
and the clock's status, refreshed at most once per ``SNAPSHOT_MAX_AGE_S`` by whichever request
finds it stale, and pre-rendered to JSON; a request costs no remote call while the snapshot is
fresh. Every error is JSON: ``{"error": message, "status": code}``.
"""

import asyncio
import ipaddress
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from gtx_ray.actors.meter import fleet_group
from gtx_ray.errors import ConfigError
from gtx_ray.fleet import CampusConfig
from gtx_ray.runtime import influx_config
from gtx_ray.serve import views
from gtx_ray.serve.history import influx_history, meter_history

log = logging.getLogger(__name__)

APP_NAME = "gtx_ray"
SNAPSHOT_MAX_AGE_S = 1.0
HISTORY_MAX_ROWS = 10_000
READINGS_MAX_PAGE = 10_000

app = FastAPI(
    title="gtx_ray REST API",
    version="1.0",
    description="Live readings and campus summaries from the gtx_ray smart meter simulator. "
    "Powers in kW, energies in kWh, voltage in V, current in A, temperature in °C, humidity and "
    "battery level in %. Timestamps are RFC 3339 UTC, the start of the interval a reading covers.",
)
app.add_middleware(
    CORSMiddleware,
    allow_origins=["*"],
    allow_methods=["GET", "POST"],
    allow_headers=["*"],
    expose_headers=["X-Total-Count"],
)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


@app.exception_handler(StarletteHTTPException)
async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _error(exc.status_code, str(exc.detail))


@app.exception_handler(RequestValidationError)
async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return _error(422, "invalid request: " + "; ".join(problems))


@app.exception_handler(Exception)
async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in the REST API")
    return _error(500, f"internal error: {type(exc).__name__}")


class ErrorBody(BaseModel):
    error: str
    status: int


class SimulationCommand(BaseModel):
    """``POST /api/simulation``: pause, resume or stop the clock, or change its speed."""

    action: Literal["pause", "resume", "stop"] | None = None
    speed: float | Literal["max"] | None = Field(
        default=None, description="simulated seconds per wall second, or 'max'"
    )


class PreRegistration(BaseModel):
    lfdi: str = Field(description="40 hex digits")


class Rates(BaseModel):
    poll_rate: int | None = Field(default=None, ge=1, lt=2**32, description="seconds")
    post_rate: int | None = Field(default=None, ge=1, lt=2**32, description="seconds")
    device_id: int | None = Field(default=None, description="one end device; default all")


ERRORS = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}}


def _parse_time(name: str, value: str | None) -> int | None:
    """RFC 3339 / ISO 8601 (UTC unless an offset is given) or epoch seconds."""
    if value is None:
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StarletteHTTPException(
            422, f"{name}={value!r} is not an RFC 3339 time or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@serve.deployment(num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class RestApi:
    """One replica is plenty for the campus; see the module docstring."""

    def __init__(
        self,
        campus: CampusConfig,
        fleet_size: int | None,
        seed: int,
        interval_s: int,
        data_dir: str,
        aggregator: Any,
        clock: Any,
        admin_token: str | None = None,
        ieee2030_5: Any = None,
        meter_actors: list | None = None,
        influx: Any = None,
    ):
        self._meters = fleet_group(
            campus, fleet_size, seed, 0, len(campus.meters) if fleet_size is None else fleet_size
        )
        self._campus_name = campus.site.name
        self._interval_s = interval_s
        self._data_dir = data_dir
        self._aggregator = aggregator
        self._clock = clock
        self._admin_token = admin_token or None
        self._ieee2030_5 = ieee2030_5
        self._meter_actors = meter_actors
        self._influx = influx
        self._phases = {
            m: int(p) for m, p in zip(self._meters.meter_id, self._meters.phases, strict=True)
        }
        self._index = {m: i for i, m in enumerate(self._meters.meter_id)}
        self._lock = asyncio.Lock()
        self._taken_at = 0.0
        self._latest = pa.table({})
        self._readings: list[dict] = []
        self._readings_by_meter: dict[str, dict] = {}
        self._readings_json = b"[]"
        self._summary: dict | None = None
        self._summary_json = b""
        self._storage: dict = {}
        self._clock_status: dict = {}
        self._meters_json = b"[]"
        self._meters_json_at = -1.0  # snapshot time the meters list was rendered for

    async def _fresh(self) -> None:
        """Refresh the snapshot if it is older than SNAPSHOT_MAX_AGE_S (one refresh at a time)."""
        if time.monotonic() - self._taken_at < SNAPSHOT_MAX_AGE_S:
            return
        async with self._lock:
            if time.monotonic() - self._taken_at < SNAPSHOT_MAX_AGE_S:
                return
            (latest, storage), clock = await asyncio.gather(
                self._aggregator.snapshot.remote(), self._clock.status.remote()
            )
            readings = views.reading_dicts(latest, self._phases)
            self._latest = latest
            self._readings = readings
            self._readings_by_meter = {r["meter_id"]: r for r in readings}
            self._readings_json = json.dumps(readings).encode()
            self._summary = (
                views.campus_summary(self._campus_name, self._meters, latest)
                if latest.num_rows
                else None
            )
            self._summary_json = json.dumps(self._summary).encode() if self._summary else b""
            self._storage, self._clock_status = storage, clock
            self._taken_at = time.monotonic()

    def _problem(self) -> str | None:
        """Why the simulation is not producing, or None."""
        clock, storage = self._clock_status, self._storage
        if clock.get("error"):
            return f"clock stopped on an error: {clock['error']}"
        if storage.get("last_error"):
            return f"storage failing: {storage['last_error']}"
        if clock.get("finished"):
            return "the simulation has finished"
        if clock.get("paused"):
            return "the simulation is paused"
        if not clock.get("running"):
            return "the clock is not running"
        return None

    @app.get("/health", responses={503: {"model": ErrorBody}})
    async def health(self) -> JSONResponse:
        """Liveness of the simulation: 200 while it produces readings, else 503 with a reason."""
        await self._fresh()
        body = {
            "status": "healthy",
            "timestamp": views.rfc3339(time.time()),
            "meters_active": self._latest.num_rows,
            "campus": self._campus_name,
            "simulated_time": views.rfc3339(self._storage.get("stored_until_s")),
            "rows_stored": self._storage.get("rows_stored", 0),
        }
        problem = self._problem()
        if problem is not None:
            return JSONResponse(
                {**body, "status": "unhealthy", "reason": problem, "error": problem},
                status_code=503,
            )
        return JSONResponse(body)

    @app.get("/api/meters")
    async def meters(self) -> Response:
        """Every meter: building, floor, type, phases, capacity (kW), PV (kWp), battery (kWh)."""
        await self._fresh()
        if self._meters_json_at != self._taken_at:  # render on demand, once per snapshot
            levels = {r["meter_id"]: r["battery_level"] for r in self._readings}
            self._meters_json = json.dumps(views.meter_list(self._meters, levels)).encode()
            self._meters_json_at = self._taken_at
        return Response(self._meters_json, media_type="application/json")

    @app.get("/api/readings", responses=ERRORS)
    async def readings(
        self,
        limit: int = Query(READINGS_MAX_PAGE, ge=0, le=READINGS_MAX_PAGE),
        offset: int = Query(0, ge=0),
    ) -> Response:
        """The latest reading of every meter (``[]`` before the first interval), paged."""
        await self._fresh()
        headers = {"X-Total-Count": str(len(self._readings))}
        if offset == 0 and limit >= len(self._readings):
            return Response(self._readings_json, media_type="application/json", headers=headers)
        page = self._readings[offset : offset + limit]
        return JSONResponse(page, headers=headers)

    @app.get("/api/meters/{meter_id}/reading", responses=ERRORS)
    async def meter_reading(self, meter_id: str) -> JSONResponse:
        """The latest reading of one meter."""
        await self._fresh()
        if meter_id not in self._index:
            return _error(404, f"unknown meter {meter_id!r}")
        reading = self._readings_by_meter.get(meter_id)
        if reading is None:
            return _error(503, f"no reading from {meter_id} yet")
        return JSONResponse(reading)

    def _history(self, meter_id: str, start_s: int, end_s: int, limit: int):
        """From InfluxDB 1.x when that is the sink; else (or when the query fails, e.g. a 2.x
        server without InfluxQL) from the Parquet data dir."""
        if self._influx is not None:
            try:
                return influx_history(self._influx, meter_id, start_s, end_s, limit)
            except Exception as exc:
                log.warning("history from InfluxDB failed (%s); using the data dir", exc)
        return meter_history(self._data_dir, meter_id, start_s, end_s, limit)

    @app.get("/api/meters/{meter_id}/readings", responses=ERRORS)
    async def meter_readings(
        self,
        meter_id: str,
        start: str | None = Query(None, description="RFC 3339 or epoch s; default end − 1 day"),
        end: str | None = Query(
            None,
            description="RFC 3339 or epoch s (exclusive); default just after the latest reading",
        ),
        limit: int = Query(1000, ge=1, le=HISTORY_MAX_ROWS),
        format: Literal["json", "csv"] = "json",
    ) -> Response:
        """Stored readings of one meter in [start, end), oldest first, as JSON or CSV."""
        if meter_id not in self._index:
            return _error(404, f"unknown meter {meter_id!r}")
        await self._fresh()
        end_s = _parse_time("end", end)
        if end_s is None:
            end_s = int(self._storage.get("stored_until_s") or time.time())
        start_s = _parse_time("start", start)
        if start_s is None:
            start_s = end_s - 86_400
        if start_s >= end_s:
            return _error(422, "start must be before end")
        table = await asyncio.to_thread(self._history, meter_id, start_s, end_s, limit)
        rows = views.reading_dicts(table, self._phases)
        if format == "csv":
            return PlainTextResponse(views.readings_csv(rows), media_type="text/csv")
        return JSONResponse(rows)

    @app.get("/api/campus/summary", responses=ERRORS)
    async def campus_summary(self) -> Response:
        """Campus totals (kW) over the latest reading of every meter, with per-building totals."""
        await self._fresh()
        if self._summary is None:
            return _error(503, "no readings yet: the first interval has not completed")
        return Response(self._summary_json, media_type="application/json")

    @app.get("/api/ieee2030_5/status")
    async def ieee2030_5_status(self) -> JSONResponse:
        """The IEEE 2030.5 server: enabled, port, listening, devices, mirrored readings."""
        if self._ieee2030_5 is None:
            return JSONResponse(
                {
                    "enabled": False,
                    "running": False,
                    "port": None,
                    "registered_devices": 0,
                    "readings_mirrored": 0,
                    "errors": [],
                    "reason": "the IEEE 2030.5 server is not running",
                }
            )
        from gtx_ray.ieee2030_5.service import status_ieee2030_5_async

        status = await status_ieee2030_5_async(self._ieee2030_5)
        clients = None
        if self._meter_actors:
            summaries = await asyncio.gather(
                *[a.ieee2030_5_summary.remote() for a in self._meter_actors]
            )
            clients = {
                key: sum(s[key] for s in summaries)
                for key in (
                    "meters",
                    "registered",
                    "posts_ok",
                    "posts_failed",
                    "readings_posted",
                    "readings_dropped",
                )
            }
        return JSONResponse(
            {**status, "running": bool(status.get("listening")), "clients": clients}
        )

    @app.get("/api/ieee2030_5/clients")
    async def ieee2030_5_clients(
        self,
        limit: int = Query(READINGS_MAX_PAGE, ge=0, le=READINGS_MAX_PAGE),
        offset: int = Query(0, ge=0),
    ) -> JSONResponse:
        """One entry per meter's IEEE 2030.5 client: meter_id, LFDI, SFDI, EndDevice and
        MirrorUsagePoint hrefs, registered, last post time, posts ok/failed, readings dropped."""
        if not self._meter_actors:
            return JSONResponse([], headers={"X-Total-Count": "0"})
        groups = await asyncio.gather(*[a.ieee2030_5_clients.remote() for a in self._meter_actors])
        rows = [row for group in groups for row in group]
        return JSONResponse(
            rows[offset : offset + limit], headers={"X-Total-Count": str(len(rows))}
        )

    def _refuse(self, request: Request) -> JSONResponse | None:
        """403 unless the caller may use operator endpoints: loopback clients, or anyone with the
        admin token when one is configured (then the token is required from everyone)."""
        if self._admin_token is not None:
            if request.headers.get("authorization") != f"Bearer {self._admin_token}":
                return _error(403, "a valid admin token is required (Authorization: Bearer ...)")
        elif not _is_loopback(request.client.host if request.client else None):
            return _error(403, "operator endpoints are only allowed from loopback")
        return None

    async def _admin(self, request: Request, action: str, **kwargs: Any) -> JSONResponse:
        """Run an IEEE 2030.5 registry admin action; map refusals to 4xx."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        if self._ieee2030_5 is None or self._ieee2030_5.registry is None:
            return _error(503, "the IEEE 2030.5 server is not running")
        from gtx_ray.ieee2030_5.errors import ResourceError

        try:
            result = await self._ieee2030_5.registry.admin.remote(action, **kwargs)
        except Exception as exc:
            cause = getattr(exc, "cause", exc)
            if isinstance(cause, ResourceError):
                return _error(cause.status, cause.message)
            raise
        return JSONResponse({"result": result})

    @app.get("/api/ieee2030_5/admin/devices", responses={403: {"model": ErrorBody}, **ERRORS})
    async def admin_devices(self, request: Request) -> JSONResponse:
        """Every registered end device (id, LFDI, SFDI, rates, mirror usage points)."""
        return await self._admin(request, "list_devices")

    @app.post("/api/ieee2030_5/admin/devices", responses={403: {"model": ErrorBody}, **ERRORS})
    async def admin_preregister(self, body: PreRegistration, request: Request) -> JSONResponse:
        """Pre-register an LFDI (the allow-list); returns the EndDevice id."""
        return await self._admin(request, "preregister", lfdi=body.lfdi)

    @app.delete(
        "/api/ieee2030_5/admin/devices/{device_id}", responses={403: {"model": ErrorBody}, **ERRORS}
    )
    async def admin_remove(self, device_id: int, request: Request) -> JSONResponse:
        """Remove an end device and what it owns."""
        return await self._admin(request, "remove_device", device_id=device_id)

    @app.delete("/api/ieee2030_5/admin/mirrors", responses={403: {"model": ErrorBody}, **ERRORS})
    async def admin_clear_mirrors(
        self, request: Request, lfdi: str | None = Query(None, description="only this LFDI")
    ) -> JSONResponse:
        """Remove the mirror usage points of one LFDI, or of every device."""
        return await self._admin(request, "clear_mirrors", lfdi=lfdi)

    @app.put("/api/ieee2030_5/admin/rates", responses={403: {"model": ErrorBody}, **ERRORS})
    async def admin_rates(self, body: Rates, request: Request) -> JSONResponse:
        """Set pollRate / postRate (s) globally, or for one end device."""
        return await self._admin(
            request,
            "set_rates",
            poll_rate=body.poll_rate,
            post_rate=body.post_rate,
            device_id=body.device_id,
        )

    @app.get("/api/simulation")
    async def simulation(self) -> JSONResponse:
        """Clock state: simulated time, speed, paused, progress."""
        clock = await self._clock.status.remote()
        return JSONResponse(
            {
                **clock,
                "next_start": views.rfc3339(clock["next_start_s"]),
                "speed": "max" if clock["speed"] is None else clock["speed"],
            }
        )

    @app.post("/api/simulation", responses={403: {"model": ErrorBody}, **ERRORS})
    async def control(self, command: SimulationCommand, request: Request) -> JSONResponse:
        """Pause, resume or stop the clock, or set its speed. Loopback clients only, unless an
        admin token is configured (then ``Authorization: Bearer TOKEN`` from anywhere)."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        if command.action is None and command.speed is None:
            return _error(422, "give an action (pause, resume, stop) and/or a speed")
        if command.speed is not None:
            speed = None if command.speed == "max" else float(command.speed)
            if speed is not None and not speed > 0:
                return _error(422, "speed must be > 0 or 'max'")
            await self._clock.set_speed.remote(speed)
        if command.action is not None:
            await getattr(self._clock, command.action).remote()
        self._taken_at = 0.0  # the next read sees the new state
        return await self.simulation()


def start_rest_api(
    simulation: Any,
    host: str,
    port: int,
    admin_token: str | None,
    ieee2030_5: Any = None,
    meters_are_clients: bool = False,
) -> None:
    """Serve the REST API for a started simulation (Ray must be connected). ``ieee2030_5``: the
    handles of a running IEEE 2030.5 server, for its status endpoint; ``meters_are_clients``:
    the meter actors run 2030.5 clients, for the clients endpoint."""
    settings = simulation.settings
    serve.start(http_options={"host": host, "port": port})
    deployment = RestApi.bind(
        simulation.campus,
        settings.meters,
        settings.seed,
        settings.interval_s,
        str(settings.data_dir),
        simulation.aggregator,
        simulation.clock,
        admin_token,
        ieee2030_5,
        simulation.meter_actors if meters_are_clients else None,
        influx_config(settings),
    )
    serve.run(deployment, name=APP_NAME, route_prefix="/", blocking=False)
    _check_listening(host, port)
    log.info("REST API on http://%s:%d (docs at /docs)", host, port)


def _check_listening(host: str, port: int, timeout_s: float = 30.0) -> None:
    """Ray Serve is one per cluster: if it already ran with other HTTP options, ours are ignored
    and the API would silently answer elsewhere. Fail clearly instead."""
    import urllib.error
    import urllib.request

    probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://{probe}:{port}/-/healthz", timeout=5):
                return
        except urllib.error.HTTPError:
            return  # something answers HTTP on the port: Serve's proxy
        except OSError:
            if time.monotonic() > deadline:
                stop_rest_api()
                raise ConfigError(
                    f"the REST API is not answering on {host}:{port}: Ray Serve probably already "
                    "runs in this cluster with another port (Serve is one per cluster); use that "
                    "port with --api-port, or `serve shutdown` first"
                ) from None
            time.sleep(0.5)


def stop_rest_api() -> None:
    try:
        serve.delete(APP_NAME)
    except Exception as exc:  # Serve already gone with the cluster
        log.debug("REST API stop: %s", exc)
