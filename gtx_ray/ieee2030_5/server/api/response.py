"""Routes: /rsps, /rsps/{s}, /rsps/{s}/rsp (GET the caller's own, POST a Response),
/rsps/{s}/rsp/{r}."""

from __future__ import annotations

from aiohttp import web

from gtx_ray.ieee2030_5.server.api.common import (
    int_param,
    page_request,
    read_document,
    run,
    written,
    xml,
)
from gtx_ray.ieee2030_5.server.api.edev import ID
from gtx_ray.ieee2030_5.server.mappers import response as m


async def list_sets(request: web.Request) -> web.Response:
    return xml(m.render_set_list(await run(request, "rsp.list_sets", page_request(request))))


async def get_set(request: web.Request) -> web.Response:
    return xml(m.render_set(await run(request, "rsp.get_set", int_param(request, "s"))))


async def list_responses(request: web.Request) -> web.Response:
    set_id, page = await run(request, "rsp.list", int_param(request, "s"), page_request(request))
    return xml(m.render_response_list(set_id, page))


async def post_response(request: web.Request) -> web.Response:
    body = m.parse_response(await read_document(request))
    return written(await run(request, "rsp.post", int_param(request, "s"), body))


async def get_response(request: web.Request) -> web.Response:
    response = await run(request, "rsp.get", int_param(request, "s"), int_param(request, "r"))
    return xml(m.render_response(response))


def routes() -> list[web.RouteDef]:
    s = "/rsps/" + ID % "s"
    return [
        web.get("/rsps", list_sets),
        web.get(s, get_set),
        web.get(s + "/rsp", list_responses),
        web.post(s + "/rsp", post_response),
        web.get(s + "/rsp/" + ID % "r", get_response),
    ]
