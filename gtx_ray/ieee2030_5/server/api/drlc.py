"""Routes: /dr, /dr/{p}, /dr/{p}/edc[/{e}], /dr/{p}/actedc (read only)."""

from __future__ import annotations

from aiohttp import web

from gtx_ray.ieee2030_5.server.api.common import int_param, page_request, run, xml
from gtx_ray.ieee2030_5.server.api.edev import ID
from gtx_ray.ieee2030_5.server.mappers import drlc as m


async def list_programs(request: web.Request) -> web.Response:
    return xml(m.render_program_list(await run(request, "drlc.list", page_request(request))))


async def get_program(request: web.Request) -> web.Response:
    return xml(m.render_program(await run(request, "drlc.get", int_param(request, "p"))))


async def list_events(request: web.Request) -> web.Response:
    view = await run(request, "drlc.list_edc", int_param(request, "p"), page_request(request))
    return xml(m.render_event_list(view))


async def list_active(request: web.Request) -> web.Response:
    view = await run(request, "drlc.list_active", int_param(request, "p"), page_request(request))
    return xml(m.render_event_list(view, active=True))


async def get_event(request: web.Request) -> web.Response:
    event, now = await run(
        request, "drlc.get_edc", int_param(request, "p"), int_param(request, "e")
    )
    return xml(m.render_event(event, now))


def routes() -> list[web.RouteDef]:
    p = "/dr/" + ID % "p"
    return [
        web.get("/dr", list_programs),
        web.get(p, get_program),
        web.get(p + "/edc", list_events),
        web.get(p + "/actedc", list_active),
        web.get(p + "/edc/" + ID % "e", get_event),
    ]
