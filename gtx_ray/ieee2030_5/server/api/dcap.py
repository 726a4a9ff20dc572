"""Routes: /dcap (DeviceCapability) and /tm (Time)."""

from __future__ import annotations

from aiohttp import web

from gtx_ray.ieee2030_5.server.api.common import run, xml
from gtx_ray.ieee2030_5.server.mappers.dcap import render_device_capability, render_time


async def get_dcap(request: web.Request) -> web.Response:
    return xml(render_device_capability(await run(request, "dcap.device_capability")))


async def get_time(request: web.Request) -> web.Response:
    return xml(render_time(await run(request, "dcap.time")))


def routes() -> list[web.RouteDef]:
    return [web.get("/dcap", get_dcap), web.get("/tm", get_time)]
