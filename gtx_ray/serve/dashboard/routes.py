"""The dashboard's routes: the page at ``/`` with its two static files, and the two JSON
endpoints it polls besides the existing ones: ``/api/campus/now`` and ``/api/campus/today``.
Both carry the live view's ETag, so a poller that sends ``If-None-Match`` gets a bodiless 304
until a new interval lands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gtx_ray.serve.app import ERRORS, _etag_matches, error
from gtx_ray.serve.dashboard.assets import headers, load_assets
from gtx_ray.serve.dashboard.feed import DashboardFeed

if TYPE_CHECKING:
    from gtx_ray.serve.app import ApiContext

JSON = "application/json"


class Powers(BaseModel):
    """Sums over meters (kW averages over the interval); battery level is a mean (%)."""

    meters: int
    consumption_kw: float
    generation_kw: float = Field(description="PV")
    battery_kw: float = Field(description="+ charging / − discharging")
    import_kw: float
    export_kw: float
    net_grid_kw: float = Field(description="import − export")
    battery_level_pct: float | None = Field(description="mean state of charge; null: no battery")


class MeterNow(Powers):
    meter_id: str
    floor: int
    meter_type: str
    meters: int = 1
    battery_kw: float | None


class BuildingNow(Powers):
    building: str
    building_type: str
    meter_rows: list[MeterNow] | None = Field(description="null when over the response's bound")


class BuildingTypeNow(Powers):
    building_type: str
    buildings: int


class TotalsNow(Powers):
    buildings: int


class CampusNow(BaseModel):
    timestamp: str = Field(description="RFC 3339 UTC start of the latest interval")
    campus: str
    totals: TotalsNow
    building_types: list[BuildingTypeNow]
    buildings_total: int
    buildings_order: str = Field(description="'building' (all, by name) or 'consumption'")
    meter_rows_total: int
    meter_rows_shown: int
    buildings: list[BuildingNow]


class CampusToday(BaseModel):
    date: str | None = Field(description="the campus's local date, YYYY-MM-DD")
    utc_offset_s: int
    points: int
    timestamp: list[str] = Field(description="RFC 3339 UTC interval starts, oldest first")
    consumption_kw: list[float | None]
    generation_kw: list[float | None]
    net_grid_kw: list[float | None]
    battery_kw: list[float | None]
    battery_level_pct: list[float | None]


def _cached(request: Request, etag: bytes, body: bytes) -> Response:
    """``body`` as JSON, or 304 when the client already holds ``etag``."""
    tags = {"ETag": etag.decode(), "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("if-none-match", "").encode(), etag):
        return Response(status_code=304, headers=tags)
    return Response(body, media_type=JSON, headers=tags)


def add_dashboard_routes(app: FastAPI, ctx: ApiContext) -> None:
    """Serve the dashboard and its data on ``app`` for the simulation of ``ctx``."""
    live = ctx.live
    feed = DashboardFeed(live.campus_name, live.meters, ctx.utc_offset_s)
    live.frame_listeners.append(feed.on_frame)
    assets = load_assets()

    def static(name: str, request: Request, version: str | None = None) -> Response:
        asset = assets[name]
        answer = headers(name, asset, version)
        if _etag_matches(request.headers.get("if-none-match", "").encode(), asset.etag.encode()):
            return Response(status_code=304, headers=answer)
        return Response(asset.body, media_type=asset.content_type, headers=answer)

    @app.get("/", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        return static("index.html", request)

    @app.get("/dashboard/{name}", include_in_schema=False)
    async def dashboard_asset(
        name: str, request: Request, v: str | None = Query(None, max_length=64)
    ) -> Response:
        if name not in assets or name == "index.html":
            return error(404, f"no dashboard file {name!r}")
        return static(name, request, v)

    @app.get("/api/campus/now", response_model=CampusNow, responses=ERRORS)
    async def campus_now(request: Request) -> Response:
        """The campus now, for dashboards: totals, per building type, and per building with
        its meters (kW, battery %), bounded for any fleet: every building up to 100, else the
        100 largest consumers; meter rows up to 500. Same interval as ``/api/campus/summary``."""
        await live.ensure_fresh()
        rendered = feed.rendered
        if rendered.now_json is None:
            return error(503, "no readings yet: the first interval has not completed")
        return _cached(request, rendered.etag, rendered.now_json)

    @app.get("/api/campus/today", response_model=CampusToday, responses=ERRORS)
    async def campus_today(request: Request) -> Response:
        """Campus totals per interval for the simulated local day so far, column-wise:
        consumption, PV generation, net grid (import − export) and battery power in kW, mean
        battery level in %. One point per interval the API saw (at high speeds a sample);
        at most 1,440 points; empty before the first interval."""
        await live.ensure_fresh()
        rendered = feed.rendered
        return _cached(request, rendered.etag, rendered.today_json)
