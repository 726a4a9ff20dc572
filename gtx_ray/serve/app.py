"""The REST API's routes: the seed's endpoints plus history, OpenAPI, CORS and a simulation
control endpoint, built as a FastAPI app around one simulation's ``ApiContext``.

Read endpoints answer from the ``LiveView`` (no remote call per request). ``FastReads`` sits in
front of the app and answers the hottest polls (all readings, one meter's reading, the campus
summary, the meter list) straight from the view's pre-rendered bytes without going through
FastAPI's routing and validation; anything else, and every error path, goes to FastAPI. Every
error is JSON: ``{"error": message, "status": code}``.
"""

import asyncio
import hmac
import ipaddress
import logging
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from ray.exceptions import RayActorError, RayTaskError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gtx_ray.actors.clock import CommandExpired
from gtx_ray.serve import views
from gtx_ray.serve.der_routes import add_der_routes
from gtx_ray.serve.events_routes import add_event_routes
from gtx_ray.serve.history import (
    TOTALS_SCHEMA,
    influx_history,
    influx_totals,
    meter_history,
    totals_history,
)
from gtx_ray.serve.ieee2030_5_view import Ieee2030_5View
from gtx_ray.serve.live import Frame, LiveView
from gtx_ray.serve.origins import OriginGuard, OriginPolicy
from gtx_ray.serve.request_metrics import RequestCounter

COMMAND_DEADLINE_S = 5.0  # a simulation command the clock has not taken by then is refused
COMMAND_GRACE_S = 5.0  # how much longer we wait for its answer

log = logging.getLogger(__name__)

HISTORY_MAX_ROWS = 10_000
HISTORY_TIMEOUT_S = 5.0  # a history query (disk or InfluxDB) longer than this is a 503
HISTORY_WORKERS = 2  # history queries run at once; more wait, within HISTORY_TIMEOUT_S
ADMIN_TIMEOUT_S = 0.8  # the 2030.5 registry's answer to an admin action (a remote call)
EPOCH_SECONDS = re.compile(r"-?[0-9]{1,15}")
LAST_EPOCH_S = 253_402_300_800  # 10000-01-01T00:00:00Z
READINGS_MAX_PAGE = 10_000
DESCRIPTION = (
    "Live readings and campus summaries from the gtx_ray smart meter simulator. Powers in kW, "
    "energies in kWh, voltage in V, current in A, temperature in °C, humidity and battery level "
    "in %. Timestamps are RFC 3339 UTC, the start of the interval a reading covers.\n\n"
    "Browsers: public reads (GET outside /api/ieee2030_5/admin) answer every origin "
    "(Access-Control-Allow-Origin: *). Every other request (POST, PUT, DELETE, and every admin "
    "route) is refused with 403 when it carries an Origin that is not the API's own origin or "
    "one listed in API_CORS_ORIGINS, or Sec-Fetch-Site: cross-site / same-site; preflights for "
    "them are granted to those origins only. Requests without these headers (curl, scripts) "
    "need the admin token when one is set (Authorization: Bearer TOKEN), else a loopback "
    "client.\n\n"
    "Requests with a target over 8 KiB get 414, heads over 32 KiB or 100 fields get 431, both "
    "as JSON errors."
)


@dataclass
class ApiContext:
    """What the routes need from one running simulation."""

    live: LiveView  # its ``handles`` reach the clock and (2030.5 clients) the meter actors
    data_dir: str
    admin_token: str | None = None
    origins: OriginPolicy = field(default_factory=OriginPolicy)  # who may use protected routes
    ieee2030_5: Any = None  # handles of a running IEEE 2030.5 server
    influx: Any = None  # InfluxConfig when InfluxDB is the sink (history)
    ieee2030_5_view: Ieee2030_5View | None = None  # made from the above when not given
    utc_offset_s: int = 0  # the campus's offset from UTC (its local day, on the dashboard)

    def __post_init__(self) -> None:
        if self.ieee2030_5_view is None:
            self.ieee2030_5_view = Ieee2030_5View(self.live.handles, self.ieee2030_5)

    def clock(self) -> Any:
        """The clock actor, or None while the simulation's actors are not found yet (the live
        view's background refresh looks them up, off the event loop)."""
        return self.live.handles.clock


STARTING = "the simulation is starting"


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
WAITING = {503: {"model": ErrorBody, "description": "not known yet: the body says what it awaits"}}
ADMIN_ERRORS = {
    403: {
        "model": ErrorBody,
        "description": "cross-origin browser request, missing/wrong admin token, or not loopback",
    },
    **ERRORS,
}


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


def parse_time(name: str, value: str | None) -> int | None:
    """RFC 3339 / ISO 8601 (UTC unless an offset is given) or epoch seconds, 1970–9999."""
    if value is None:
        return None
    text = value.strip()
    if EPOCH_SECONDS.fullmatch(text):
        epoch_s = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise StarletteHTTPException(
                422, f"{name}={value!r} is not an RFC 3339 time or epoch seconds"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        epoch_s = int(moment.timestamp())
    if not 0 <= epoch_s < LAST_EPOCH_S:
        raise StarletteHTTPException(422, f"{name}={value!r} is outside 1970–9999")
    return epoch_s


def is_loopback(host: str | None) -> bool:
    """Loopback, including IPv4 loopback seen through an IPv6 socket (``::ffff:127.0.0.1``)."""
    try:
        address = ipaddress.ip_address(host) if host is not None else None
    except ValueError:
        return host == "localhost"
    if address is None:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return error(422, "invalid request: " + "; ".join(problems))

    @app.exception_handler(Exception)
    async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in the REST API")
        return error(500, f"internal error: {type(exc).__name__}")


def build_app(ctx: ApiContext) -> FastAPI:
    """The FastAPI app for one simulation (wrap it in ``FastReads`` to serve it)."""
    live = ctx.live
    app = FastAPI(title="gtx_ray REST API", version="1.0", description=DESCRIPTION)
    app.add_middleware(OriginGuard, policy=ctx.origins)
    _install_error_handlers(app)
    _add_live_routes(app, live)
    _add_history_route(app, ctx)
    _add_simulation_routes(app, ctx)
    _add_ieee2030_5_routes(app, ctx)
    from gtx_ray.serve.dashboard import add_dashboard_routes  # it builds on this module

    add_dashboard_routes(app, ctx)
    return app


def _add_live_routes(app: FastAPI, live: LiveView) -> None:
    @app.get("/health", responses={503: {"model": ErrorBody}})
    async def health() -> JSONResponse:
        """Liveness of the simulation: 200 while it produces readings, else 503 with a reason."""
        await live.ensure_fresh()
        body = {
            "status": "healthy",
            "timestamp": views.rfc3339(time.time()),
            "meters_active": live.frame.latest.num_rows,
            "campus": live.campus_name,
            "simulated_time": views.rfc3339(live.storage.get("stored_until_s")),
            "rows_stored": live.storage.get("rows_stored", 0),
            # losses of the window pipeline (a node, an actor) the clock resumed from, and the
            # last one; each was generated again from the checkpoint, so no interval is missing
            "recoveries": live.clock_status.get("recoveries", 0),
            "last_recovery": live.clock_status.get("last_recovery"),
        }
        problem = live.problem()
        if problem is not None:
            return JSONResponse(
                {**body, "status": "unhealthy", "reason": problem, "error": problem},
                status_code=503,
            )
        return JSONResponse(body)

    @app.get("/api/meters")
    async def meters() -> Response:
        """Every meter: building, floor, type, phases, capacity (kW), PV (kWp), battery (kWh)."""
        await live.ensure_fresh()
        return Response(live.meters_json(live.frame), media_type="application/json")

    @app.get("/api/readings", responses=ERRORS)
    async def readings(
        limit: int = Query(READINGS_MAX_PAGE, ge=0, le=READINGS_MAX_PAGE),
        offset: int = Query(0, ge=0),
    ) -> Response:
        """The latest reading of every meter (``[]`` before the first interval), paged."""
        await live.ensure_fresh()
        frame = live.frame
        rows = frame.readings
        headers = {"X-Total-Count": str(len(rows))}
        if offset == 0 and limit >= len(rows):
            return Response(frame.readings_json, media_type="application/json", headers=headers)
        return JSONResponse(rows[offset : offset + limit], headers=headers)

    @app.get("/api/meters/{meter_id}/reading", responses=ERRORS)
    async def meter_reading(meter_id: str) -> Response:
        """The latest reading of one meter."""
        await live.ensure_fresh()
        if meter_id not in live.index:
            return error(404, f"unknown meter {meter_id!r}")
        body = live.meter_json(live.frame, meter_id)
        if body is None:
            return error(503, f"no reading from {meter_id} yet")
        return Response(body, media_type="application/json")

    @app.get("/api/campus/summary", responses=ERRORS)
    async def campus_summary() -> Response:
        """Campus totals (kW) over the latest reading of every meter, with per-building totals."""
        await live.ensure_fresh()
        frame = live.frame
        if frame.summary is None:
            return error(503, "no readings yet: the first interval has not completed")
        return Response(frame.summary_json, media_type="application/json")


def _add_history_route(app: FastAPI, ctx: ApiContext) -> None:
    live = ctx.live
    # its own threads: a slow disk or database never starves the live view's worker threads
    workers = ThreadPoolExecutor(HISTORY_WORKERS, thread_name_prefix="rest-api-history")
    buildings: dict[str, list[str]] = {}
    for meter_id, building in zip(live.meters.meter_id, live.meters.building, strict=True):
        buildings.setdefault(str(building), []).append(str(meter_id))

    def history(meter_id: str, start_s: int, end_s: int, limit: int):
        """From InfluxDB 1.x when that is the sink; else (or when the query fails, e.g. a 2.x
        server without InfluxQL) from the Parquet data dir."""
        if ctx.influx is not None:
            try:
                return influx_history(ctx.influx, meter_id, start_s, end_s, limit)
            except Exception as exc:
                log.warning("history from InfluxDB failed (%s); using the data dir", exc)
        return meter_history(ctx.data_dir, meter_id, start_s, end_s, limit)

    def totals(building: str | None, start_s: int, end_s: int, limit: int):
        """Per-interval totals of a building (None: the campus), from the same source."""
        if ctx.influx is not None:
            interval_s = int(live.clock_status.get("interval_s") or 0)
            try:
                if interval_s > 0:
                    return influx_totals(ctx.influx, building, start_s, end_s, interval_s, limit)
            except Exception as exc:
                log.warning("totals from InfluxDB failed (%s); using the data dir", exc)
        meter_ids = None if building is None else buildings[building]
        return totals_history(ctx.data_dir, meter_ids, start_s, end_s, limit)

    def time_range(start: str | None, end: str | None) -> tuple[int, int]:
        end_s = parse_time("end", end)
        if end_s is None:
            end_s = int(live.storage.get("stored_until_s") or time.time())
        start_s = parse_time("start", start)
        if start_s is None:
            start_s = end_s - 86_400
        return start_s, end_s

    async def run_query(query, *args) -> Any:
        """``query(*args)`` on the history threads; TimeoutError past HISTORY_TIMEOUT_S."""
        running = asyncio.get_running_loop().run_in_executor(workers, query, *args)
        return await asyncio.wait_for(running, HISTORY_TIMEOUT_S)

    def too_slow() -> JSONResponse:
        source = "InfluxDB" if ctx.influx is not None else "the data dir"
        return error(
            503,
            f"the stored readings did not come back from {source} within "
            f"{HISTORY_TIMEOUT_S:.0f} s (busy); retry, or ask for a shorter range",
        )

    @app.get("/api/meters/{meter_id}/readings", responses=ERRORS)
    async def meter_readings(
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
        if meter_id not in live.index:
            return error(404, f"unknown meter {meter_id!r}")
        await live.ensure_fresh()
        start_s, end_s = time_range(start, end)
        if start_s >= end_s:
            return error(422, "start must be before end")
        try:
            table = await run_query(history, meter_id, start_s, end_s, limit)
        except TimeoutError:
            return too_slow()
        rows = views.reading_dicts(table, live.phases)
        if format == "csv":
            return PlainTextResponse(views.readings_csv(rows), media_type="text/csv")
        return JSONResponse(rows)

    async def totals_response(
        building: str | None, start: str | None, end: str | None, limit: int, format: str
    ) -> Response:
        await live.ensure_fresh()
        start_s, end_s = time_range(start, end)
        if start_s >= end_s:
            return error(422, "start must be before end")
        try:
            table = await run_query(totals, building, start_s, end_s, limit)
        except TimeoutError:
            return too_slow()
        rows = views.totals_dicts(table)
        if format == "csv":
            csv_text = views.rows_csv(rows, TOTALS_SCHEMA.names)
            return PlainTextResponse(csv_text, media_type="text/csv")
        return JSONResponse(rows)

    @app.get("/api/buildings/{building}/readings", responses=ERRORS)
    async def building_readings(
        building: str,
        start: str | None = Query(None, description="RFC 3339 or epoch s; default end − 1 day"),
        end: str | None = Query(None, description="RFC 3339 or epoch s (exclusive)"),
        limit: int = Query(1000, ge=1, le=HISTORY_MAX_ROWS, description="most intervals"),
        format: Literal["json", "csv"] = "json",
    ) -> Response:
        """Stored history of one building, one row per interval in [start, end), oldest first:
        its meters that reported, consumption, generation, grid export and battery power (kW,
        summed over the meters), grid import and export energy (kWh) and net grid power (kW);
        JSON or CSV."""
        if building not in buildings:
            return error(404, f"unknown building {building!r}; see GET /api/campus/summary")
        return await totals_response(building, start, end, limit, format)

    @app.get("/api/campus/readings", responses=ERRORS)
    async def campus_readings(
        start: str | None = Query(None, description="RFC 3339 or epoch s; default end − 1 day"),
        end: str | None = Query(None, description="RFC 3339 or epoch s (exclusive)"),
        limit: int = Query(1000, ge=1, le=HISTORY_MAX_ROWS, description="most intervals"),
        format: Literal["json", "csv"] = "json",
    ) -> Response:
        """Stored history of the whole campus (or fleet), one row per interval in [start, end),
        oldest first, with the same totals as a building's; JSON or CSV."""
        return await totals_response(None, start, end, limit, format)


def _refusal(ctx: ApiContext, request: Request) -> JSONResponse | None:
    """403 unless the caller may use operator endpoints: loopback clients, or anyone with the
    admin token when one is configured (then the token is required from everyone). The peer is
    the TCP peer: forwarding headers are not trusted. (Browser pages of other origins were
    already refused by ``OriginGuard``.)"""
    if ctx.admin_token is not None:
        given = request.headers.get("authorization", "").encode("latin-1")  # the raw bytes
        if not hmac.compare_digest(given, f"Bearer {ctx.admin_token}".encode()):
            return error(403, "a valid admin token is required (Authorization: Bearer ...)")
    elif not is_loopback(request.client.host if request.client else None):
        return error(403, "operator endpoints are only allowed from loopback")
    return None


def _add_simulation_routes(app: FastAPI, ctx: ApiContext) -> None:
    @app.get("/api/simulation", responses=WAITING)
    async def simulation() -> JSONResponse:
        """Clock state: simulated time, speed, paused, progress (from the live view, at most
        about a second old; 503 while the clock is not known or cannot be reached)."""
        live = ctx.live
        clock = live.clock_status
        if not clock or live.refresh_error is not None or live.gone is not None:
            return error(503, live.problem() or STARTING)
        return JSONResponse(
            {
                **clock,
                # when the first interval was stored (UTC epoch s; None: not yet)
                "first_stored_at": live.storage.get("first_stored_at"),
                "next_start": views.rfc3339(clock["next_start_s"]),
                "speed": "max" if clock["speed"] is None else clock["speed"],
            }
        )

    @app.post("/api/simulation", responses=ADMIN_ERRORS)
    async def control(command: SimulationCommand, request: Request) -> JSONResponse:
        """Pause, resume or stop the clock, or set its speed. Loopback clients only, unless an
        admin token is configured (then ``Authorization: Bearer TOKEN`` from anywhere)."""
        refused = _refusal(ctx, request)
        if refused is not None:
            return refused
        if command.action is None and command.speed is None:
            return error(422, "give an action (pause, resume, stop) and/or a speed")
        speed = None
        if command.speed is not None and command.speed != "max":
            speed = float(command.speed)
            if not (math.isfinite(speed) and speed > 0):
                return error(422, "speed must be a finite number > 0 or 'max'")
        actor = ctx.clock()
        if actor is None:
            return error(503, STARTING)
        # The clock refuses a command that reaches it after the deadline, and we wait longer
        # than that: a 503 here means "not applied, and never applied later".
        deadline_s = time.time() + COMMAND_DEADLINE_S
        try:
            await asyncio.wait_for(
                actor.command.remote(
                    command.action, speed, command.speed is not None, deadline_s=deadline_s
                ),
                COMMAND_DEADLINE_S + COMMAND_GRACE_S,
            )
        except (RayActorError, TimeoutError, RayTaskError) as exc:
            if isinstance(exc, RayTaskError) and not isinstance(exc.cause, CommandExpired):
                raise
            return error(
                503,
                f"not applied: the clock did not take the command within {COMMAND_DEADLINE_S:g} s "
                f"({type(exc).__name__}); it will not apply it later, send it again",
            )
        await ctx.live.refresh_now()  # the next read sees the new state
        return await simulation()


def _add_ieee2030_5_routes(app: FastAPI, ctx: ApiContext) -> None:
    view = ctx.ieee2030_5_view

    @app.get("/api/ieee2030_5/status", responses=WAITING)
    async def ieee2030_5_status() -> JSONResponse:
        """The IEEE 2030.5 server: enabled, port, listening, devices, mirrored readings, and
        totals over the meters' clients (null, with ``clients_reason``, while not known yet).
        From a view refreshed in the background; ``updated`` is when its oldest part was
        answered. 503 until the server has answered once."""
        if ctx.ieee2030_5 is None:
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
        status, waiting = view.server_status()
        if status is None:
            return error(503, waiting)
        clients, clients_waiting = view.client_totals()
        body = {**status, "running": bool(status.get("listening")), "clients": clients}
        if clients_waiting:
            body["clients_reason"] = clients_waiting
        return JSONResponse({**body, "updated": views.rfc3339(view.updated_s())})

    @app.get("/api/ieee2030_5/clients", responses=WAITING)
    async def ieee2030_5_clients(
        limit: int = Query(READINGS_MAX_PAGE, ge=0, le=READINGS_MAX_PAGE),
        offset: int = Query(0, ge=0),
    ) -> JSONResponse:
        """One entry per meter's IEEE 2030.5 client: meter_id, LFDI, SFDI, EndDevice and
        MirrorUsagePoint hrefs, registered, last post time, posts ok/failed, readings dropped.
        Each meter actor's last answer to a background refresh; 503, saying what it waits for,
        until every meter actor has answered once."""
        rows, waiting = view.clients()
        if rows is None:
            return error(503, waiting)
        return JSONResponse(
            rows[offset : offset + limit], headers={"X-Total-Count": str(len(rows))}
        )

    async def admin(request: Request | None, action: str, **kwargs: Any) -> JSONResponse:
        """Run an IEEE 2030.5 registry admin action; map refusals to 4xx. ``request`` None:
        a public read, not guarded."""
        refused = _refusal(ctx, request) if request is not None else None
        if refused is not None:
            return refused
        if ctx.ieee2030_5 is None:  # not a passing state: this run has none
            return error(
                404,
                "this run has no built-in IEEE 2030.5 server (it was disabled, or the meters "
                "are clients of an outside server)",
            )
        if ctx.ieee2030_5.registry is None:
            return error(503, "the IEEE 2030.5 server is not running")
        from gtx_ray.ieee2030_5.server.errors import ResourceError

        try:
            result = await asyncio.wait_for(
                ctx.ieee2030_5.registry.admin.remote(action, **kwargs), ADMIN_TIMEOUT_S
            )
        except TimeoutError:
            return error(
                503,
                f"the IEEE 2030.5 registry did not answer within {ADMIN_TIMEOUT_S} s (busy); "
                "a change may still be applied: check GET /api/ieee2030_5/admin/devices",
            )
        except Exception as exc:
            cause = getattr(exc, "cause", exc)
            if isinstance(cause, ResourceError):
                return error(cause.status, cause.message)
            if isinstance(exc, RayActorError):
                return error(503, f"the IEEE 2030.5 registry is not running: {type(exc).__name__}")
            raise
        return JSONResponse({"result": result})

    def devices_index() -> dict[str, dict] | None:
        from gtx_ray.errors import ConfigError
        from gtx_ray.ieee2030_5.pki import load_devices_index

        if ctx.ieee2030_5 is None:
            return None
        try:
            return load_devices_index(ctx.ieee2030_5.config.certs_dir)
        except ConfigError:
            return None

    def simulated_now() -> int | None:
        clock = ctx.live.clock_status
        return int(clock["next_start_s"]) if clock and "next_start_s" in clock else None

    add_event_routes(app, admin, parse_time, devices_index, error, ADMIN_ERRORS, simulated_now)
    add_der_routes(app, admin, parse_time, devices_index, error, ADMIN_ERRORS, simulated_now)

    @app.get("/api/ieee2030_5/admin/devices", responses=ADMIN_ERRORS)
    async def admin_devices(request: Request) -> JSONResponse:
        """Every registered end device (id, LFDI, SFDI, rates, mirror usage points)."""
        return await admin(request, "list_devices")

    @app.post("/api/ieee2030_5/admin/devices", responses=ADMIN_ERRORS)
    async def admin_preregister(body: PreRegistration, request: Request) -> JSONResponse:
        """Pre-register an LFDI (the allow-list); returns the EndDevice id."""
        return await admin(request, "preregister", lfdi=body.lfdi)

    @app.delete("/api/ieee2030_5/admin/devices/{device_id}", responses=ADMIN_ERRORS)
    async def admin_remove(device_id: int, request: Request) -> JSONResponse:
        """Remove an end device and what it owns."""
        return await admin(request, "remove_device", device_id=device_id)

    @app.delete("/api/ieee2030_5/admin/mirrors", responses=ADMIN_ERRORS)
    async def admin_clear_mirrors(
        request: Request, lfdi: str | None = Query(None, description="only this LFDI")
    ) -> JSONResponse:
        """Remove the mirror usage points of one LFDI, or of every device."""
        return await admin(request, "clear_mirrors", lfdi=lfdi)

    @app.put("/api/ieee2030_5/admin/rates", responses=ADMIN_ERRORS)
    async def admin_rates(body: Rates, request: Request) -> JSONResponse:
        """Set pollRate / postRate (s) globally, or for one end device."""
        return await admin(
            request,
            "set_rates",
            poll_rate=body.poll_rate,
            post_rate=body.post_rate,
            device_id=body.device_id,
        )


class FastReads:
    """ASGI front that answers plain ``GET``s of the hot read endpoints (no query string) from
    the live view's pre-rendered bytes, with the same headers the FastAPI routes send (CORS
    included) plus an ``ETag``: a poller that sends ``If-None-Match`` gets a bodiless 304 until a
    new interval arrives. Misses (unknown meter, no reading yet, paging) fall through to the app,
    which produces the proper error or page. Every answer is counted in ``counter``."""

    def __init__(self, app: Any, live: LiveView, counter: RequestCounter) -> None:
        self.app = app
        self.live = live
        self.counter = counter

    def _body(self, path: str, frame: Frame) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
        live = self.live
        if path == "/api/readings":
            count = str(len(frame.readings)).encode()
            return frame.readings_json, [(b"x-total-count", count)]
        if path == "/api/campus/summary":
            return (frame.summary_json, []) if frame.summary is not None else None
        if path == "/api/meters":
            return live.meters_json(frame), []
        if path.startswith("/api/meters/") and path.endswith("/reading"):
            meter_id = path[len("/api/meters/") : -len("/reading")]
            body = live.meter_json(frame, meter_id) if meter_id in live.index else None
            return (body, []) if body is not None else None
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            await self.live.ensure_fresh()
            frame = self.live.frame
            found = self._body(scope["path"], frame)
            if found is not None:
                await self._answer(scope, send, frame, *found)
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless the app starts a response

        async def counting_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.counter.record(scope["path"], status)

    async def _answer(
        self,
        scope: dict,
        send: Any,
        frame: Frame,
        body: bytes,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        request_headers = dict(scope["headers"])
        headers = [
            (b"etag", frame.etag),
            (b"cache-control", b"no-cache"),
            (b"vary", b"Origin"),  # as Starlette's CORS middleware: caches must key on it
            *extra,
        ]
        if b"origin" in request_headers:
            headers.append((b"access-control-allow-origin", b"*"))
            headers.append((b"access-control-expose-headers", b"X-Total-Count, ETag"))
        if _etag_matches(request_headers.get(b"if-none-match"), frame.etag):
            status, body = 304, b""
        else:
            status = 200
            headers.append((b"content-type", b"application/json"))
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.counter.record(scope["path"], status)


def _etag_matches(if_none_match: bytes | None, etag: bytes) -> bool:
    """RFC 9110 §13.1.2: weak comparison against a list of tags, or ``*``."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")]
    return b"*" in tags or etag in tags
