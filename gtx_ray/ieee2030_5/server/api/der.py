"""Routes: /derp, /derp/{p}, /derp/{p}/derc[/{c}], /derp/{p}/actderc, /derp/{p}/dderc (read
only); the device's own /edev/{id}/der, /edev/{id}/der/{der}, its associated programs
(/edev/{id}/der/{der}/derp) and records (dercap, derg, ders, dera: GET, and PUT by the device)."""

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
from gtx_ray.ieee2030_5.server.managers.der import PART_PATHS
from gtx_ray.ieee2030_5.server.mappers import der as m


async def list_programs(request: web.Request) -> web.Response:
    return xml(m.render_program_list(await run(request, "der.list", page_request(request))))


async def get_program(request: web.Request) -> web.Response:
    return xml(m.render_program(await run(request, "der.get", int_param(request, "p"))))


async def list_controls(request: web.Request) -> web.Response:
    view = await run(request, "der.list_derc", int_param(request, "p"), page_request(request))
    return xml(m.render_control_list(view))


async def list_active(request: web.Request) -> web.Response:
    view = await run(request, "der.list_active", int_param(request, "p"), page_request(request))
    return xml(m.render_control_list(view, active=True))


async def get_control(request: web.Request) -> web.Response:
    control, now = await run(
        request, "der.get_derc", int_param(request, "p"), int_param(request, "c")
    )
    return xml(m.render_control(control, now))


async def get_default(request: web.Request) -> web.Response:
    return xml(m.render_default(await run(request, "der.get_dderc", int_param(request, "p"))))


async def list_der(request: web.Request) -> web.Response:
    device_id = int_param(request, "edev")
    page = await run(request, "der.list_der", device_id, page_request(request))
    return xml(m.render_der_list(device_id, page))


async def get_der(request: web.Request) -> web.Response:
    view = await run(request, "der.get_der", int_param(request, "edev"), int_param(request, "der"))
    return xml(m.render_der(view))


async def list_associated(request: web.Request) -> web.Response:
    device_id, der_id = int_param(request, "edev"), int_param(request, "der")
    page = await run(request, "der.list_assoc", device_id, der_id, page_request(request))
    return xml(m.render_program_list(page, f"{m.der_href(device_id, der_id)}/derp"))


def _part_routes(part: str, path: str) -> list[web.RouteDef]:
    async def get_part(request: web.Request) -> web.Response:
        device_id, der_id = int_param(request, "edev"), int_param(request, "der")
        value = await run(request, "der.get_part", device_id, der_id, part)
        return xml(m.RENDERERS[part](f"{m.der_href(device_id, der_id)}/{path}", value))

    async def put_part(request: web.Request) -> web.Response:
        value = m.PARSERS[part](await read_document(request))
        device_id, der_id = int_param(request, "edev"), int_param(request, "der")
        return written(await run(request, "der.put_part", device_id, der_id, part, value))

    href = "/edev/" + ID % "edev" + "/der/" + ID % "der" + "/" + path
    return [web.get(href, get_part), web.put(href, put_part)]


def routes() -> list[web.RouteDef]:
    p = "/derp/" + ID % "p"
    d = "/edev/" + ID % "edev" + "/der"
    out = [
        web.get("/derp", list_programs),
        web.get(p, get_program),
        web.get(p + "/derc", list_controls),
        web.get(p + "/actderc", list_active),
        web.get(p + "/dderc", get_default),
        web.get(p + "/derc/" + ID % "c", get_control),
        web.get(d, list_der),
        web.get(d + "/" + ID % "der", get_der),
        web.get(d + "/" + ID % "der" + "/derp", list_associated),
    ]
    for part, path in PART_PATHS.items():
        out.extend(_part_routes(part, path))
    return out
