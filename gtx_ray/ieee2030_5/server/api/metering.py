"""Routes: /upt[/{u}[/mr[/{m}[/rt | /r | /rs[/{s}[/r[/{k}]]]]]]] (read only)."""

from __future__ import annotations

from aiohttp import web

from gtx_ray.ieee2030_5.server.api.common import int_param, page_request, run, xml
from gtx_ray.ieee2030_5.server.api.edev import ID
from gtx_ray.ieee2030_5.server.mappers import metering as m


def _ids(request: web.Request, *names: str) -> tuple[int, ...]:
    return tuple(int_param(request, n) for n in names)


async def list_usage_points(request: web.Request) -> web.Response:
    page = await run(request, "metering.list_upt", page_request(request))
    return xml(m.render_usage_point_list(page, page.poll_rate))


async def get_usage_point(request: web.Request) -> web.Response:
    return xml(m.render_usage_point(await run(request, "metering.get_upt", *_ids(request, "u"))))


async def list_meter_readings(request: web.Request) -> web.Response:
    (u,) = _ids(request, "u")
    page = await run(request, "metering.list_mr", u, page_request(request))
    return xml(m.render_meter_reading_list(u, page))


async def get_meter_reading(request: web.Request) -> web.Response:
    u, r = _ids(request, "u", "m")
    return xml(m.render_meter_reading(u, await run(request, "metering.get_mr", u, r)))


async def get_reading_type(request: web.Request) -> web.Response:
    u, r = _ids(request, "u", "m")
    rt = await run(request, "metering.get_rt", u, r)
    return xml(m.render_reading_type(request.path, rt))


async def get_latest_reading(request: web.Request) -> web.Response:
    u, r = _ids(request, "u", "m")
    reading = await run(request, "metering.get_latest", u, r)
    return xml(m.render_reading(request.path, reading))


async def list_reading_sets(request: web.Request) -> web.Response:
    u, r = _ids(request, "u", "m")
    page = await run(request, "metering.list_rs", u, r, page_request(request))
    return xml(m.render_reading_set_list(request.path, page))


async def get_reading_set(request: web.Request) -> web.Response:
    view = await run(request, "metering.get_rs", *_ids(request, "u", "m", "s"))
    return xml(m.render_reading_set(request.path, view))


async def list_readings(request: web.Request) -> web.Response:
    u, r, s = _ids(request, "u", "m", "s")
    page = await run(request, "metering.list_r", u, r, s, page_request(request))
    return xml(m.render_reading_list(request.path, page))


async def get_reading(request: web.Request) -> web.Response:
    reading = await run(request, "metering.get_r", *_ids(request, "u", "m", "s", "k"))
    return xml(m.render_reading(request.path, reading))


def routes() -> list[web.RouteDef]:
    u = "/upt/" + ID % "u"
    mr = u + "/mr/" + ID % "m"
    rs = mr + "/rs/" + ID % "s"
    return [
        web.get("/upt", list_usage_points),
        web.get(u, get_usage_point),
        web.get(u + "/mr", list_meter_readings),
        web.get(mr, get_meter_reading),
        web.get(mr + "/rt", get_reading_type),
        web.get(mr + "/r", get_latest_reading),
        web.get(mr + "/rs", list_reading_sets),
        web.get(rs, get_reading_set),
        web.get(rs + "/r", list_readings),
        web.get(rs + "/r/" + ID % "k", get_reading),
    ]
