"""Routes: /msg, /msg/{p}, /msg/{p}/txt[/{t}], /msg/{p}/acttxt (read only)."""

from __future__ import annotations

from aiohttp import web

from gtx_ray.ieee2030_5.server.api.common import int_param, page_request, run, xml
from gtx_ray.ieee2030_5.server.api.edev import ID
from gtx_ray.ieee2030_5.server.mappers import messaging as m


async def list_programs(request: web.Request) -> web.Response:
    return xml(m.render_program_list(await run(request, "msg.list", page_request(request))))


async def get_program(request: web.Request) -> web.Response:
    return xml(m.render_program(await run(request, "msg.get", int_param(request, "p"))))


async def list_messages(request: web.Request) -> web.Response:
    view = await run(request, "msg.list_txt", int_param(request, "p"), page_request(request))
    return xml(m.render_message_list(view))


async def list_active(request: web.Request) -> web.Response:
    view = await run(request, "msg.list_active", int_param(request, "p"), page_request(request))
    return xml(m.render_message_list(view, active=True))


async def get_message(request: web.Request) -> web.Response:
    message, now = await run(
        request, "msg.get_txt", int_param(request, "p"), int_param(request, "t")
    )
    return xml(m.render_message(message, now))


def routes() -> list[web.RouteDef]:
    p = "/msg/" + ID % "p"
    return [
        web.get("/msg", list_programs),
        web.get(p, get_program),
        web.get(p + "/txt", list_messages),
        web.get(p + "/acttxt", list_active),
        web.get(p + "/txt/" + ID % "t", get_message),
    ]
