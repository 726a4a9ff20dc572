"""Routes: /mup (list, POST) and /mup/{id} (GET, POST readings, DELETE)."""

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
from gtx_ray.ieee2030_5.server.mappers import mirror as m


async def list_mirrors(request: web.Request) -> web.Response:
    page = await run(request, "mirror.list", page_request(request))
    return xml(m.render_mirror_list(page, page.poll_rate))


async def post_mirror(request: web.Request) -> web.Response:
    body = m.parse_mirror_usage_point(await read_document(request))
    return written(await run(request, "mirror.create_or_update", body))


async def get_mirror(request: web.Request) -> web.Response:
    return xml(m.render_mirror(await run(request, "mirror.get", int_param(request, "mup"))))


async def post_readings(request: web.Request) -> web.Response:
    readings = m.parse_meter_readings(await read_document(request))
    return written(await run(request, "mirror.post_readings", int_param(request, "mup"), readings))


async def delete_mirror(request: web.Request) -> web.Response:
    return written(await run(request, "mirror.delete", int_param(request, "mup")))


def routes() -> list[web.RouteDef]:
    one = "/mup/" + ID % "mup"
    return [
        web.get("/mup", list_mirrors),
        web.post("/mup", post_mirror),
        web.get(one, get_mirror),
        web.post(one, post_readings),
        web.delete(one, delete_mirror),
    ]
