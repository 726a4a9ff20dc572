"""Routes: /tp, /tp/{p}, /tp/{p}/rc[/{r}[/rt | /tti[/{start}[/cti[/1]]] | /acttti]] (read only)."""

from __future__ import annotations

from aiohttp import web

from gtx_ray.ieee2030_5.server.api.common import int_param, page_request, run, xml
from gtx_ray.ieee2030_5.server.api.edev import ID
from gtx_ray.ieee2030_5.server.mappers import pricing as m


def _ids(request: web.Request, *names: str) -> tuple[int, ...]:
    return tuple(int_param(request, n) for n in names)


async def list_profiles(request: web.Request) -> web.Response:
    return xml(m.render_profile_list(await run(request, "pricing.list", page_request(request))))


async def get_profile(request: web.Request) -> web.Response:
    return xml(m.render_profile(await run(request, "pricing.get", *_ids(request, "p"))))


async def list_rate_components(request: web.Request) -> web.Response:
    (p,) = _ids(request, "p")
    page = await run(request, "pricing.list_rc", p, page_request(request))
    return xml(m.render_rc_list(p, page))


async def get_rate_component(request: web.Request) -> web.Response:
    p, r = _ids(request, "p", "r")
    return xml(m.render_rc(p, await run(request, "pricing.get_rc", p, r)))


async def get_reading_type(request: web.Request) -> web.Response:
    p, r = _ids(request, "p", "r")
    return xml(m.render_rc_reading_type(p, await run(request, "pricing.get_rc", p, r)))


async def list_intervals(request: web.Request) -> web.Response:
    p, r = _ids(request, "p", "r")
    view = await run(request, "pricing.list_tti", p, r, page_request(request))
    return xml(m.render_tti_list(p, view))


async def list_active(request: web.Request) -> web.Response:
    p, r = _ids(request, "p", "r")
    view = await run(request, "pricing.list_active", p, r, page_request(request))
    return xml(m.render_tti_list(p, view, active=True))


async def get_interval(request: web.Request) -> web.Response:
    p, r, t = _ids(request, "p", "r", "t")
    interval, now = await run(request, "pricing.get_tti", p, r, t)
    return xml(m.render_tti(p, r, interval, now))


async def list_consumption(request: web.Request) -> web.Response:
    p, r, t = _ids(request, "p", "r", "t")
    interval, _ = await run(request, "pricing.get_tti", p, r, t)
    return xml(m.render_cti_list(p, r, interval))


async def get_consumption(request: web.Request) -> web.Response:
    p, r, t = _ids(request, "p", "r", "t")
    interval, _ = await run(request, "pricing.get_tti", p, r, t)
    return xml(m.render_cti(p, r, interval))


def routes() -> list[web.RouteDef]:
    p = "/tp/" + ID % "p"
    r = p + "/rc/" + ID % "r"
    t = r + "/tti/" + ID % "t"
    return [
        web.get("/tp", list_profiles),
        web.get(p, get_profile),
        web.get(p + "/rc", list_rate_components),
        web.get(r, get_rate_component),
        web.get(r + "/rt", get_reading_type),
        web.get(r + "/tti", list_intervals),
        web.get(r + "/acttti", list_active),
        web.get(t, get_interval),
        web.get(t + "/cti", list_consumption),
        web.get(t + "/cti/1", get_consumption),
    ]
