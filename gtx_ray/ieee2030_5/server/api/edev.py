"""Routes: /edev, /edev/{id}, /edev/{id}/rg, /edev/{id}/di, /edev/{id}/fsa[/{id}]."""

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
from gtx_ray.ieee2030_5.server.mappers import edev as m

ID = r"{%s:\d{1,10}}"


async def list_end_devices(request: web.Request) -> web.Response:
    page = await run(request, "edev.list", page_request(request))
    return xml(m.render_end_device_list(page, page.poll_rate))


async def post_end_device(request: web.Request) -> web.Response:
    body = m.parse_end_device(await read_document(request))
    return written(await run(request, "edev.register", body))


async def get_end_device(request: web.Request) -> web.Response:
    return xml(m.render_end_device(await run(request, "edev.get", int_param(request, "edev"))))


async def get_registration(request: web.Request) -> web.Response:
    view = await run(request, "edev.registration", int_param(request, "edev"))
    return xml(m.render_registration(view))


async def get_device_information(request: web.Request) -> web.Response:
    device_id = int_param(request, "edev")
    info = await run(request, "edev.get_di", device_id)
    return xml(m.render_device_information(device_id, info))


async def put_device_information(request: web.Request) -> web.Response:
    info = m.parse_device_information(await read_document(request))
    return written(await run(request, "edev.put_di", int_param(request, "edev"), info))


async def list_fsa(request: web.Request) -> web.Response:
    device_id = int_param(request, "edev")
    page = await run(request, "edev.list_fsa", device_id, page_request(request))
    return xml(m.render_fsa_list(device_id, page, page.poll_rate))


async def get_fsa(request: web.Request) -> web.Response:
    device_id = int_param(request, "edev")
    fsa_id = await run(request, "edev.get_fsa", device_id, int_param(request, "fsa"))
    return xml(m.render_fsa(device_id, fsa_id))


def routes() -> list[web.RouteDef]:
    d = "/edev/" + ID % "edev"
    return [
        web.get("/edev", list_end_devices),
        web.post("/edev", post_end_device),
        web.get(d, get_end_device),
        web.get(d + "/rg", get_registration),
        web.get(d + "/di", get_device_information),
        web.put(d + "/di", put_device_information),
        web.get(d + "/fsa", list_fsa),
        web.get(d + "/fsa/" + ID % "fsa", get_fsa),
    ]
