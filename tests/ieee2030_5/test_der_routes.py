"""The DER REST routes (serve/der_routes.py) in-process: the FastAPI app with the real error
handlers, its admin calls run against a local registry (as the registry actor runs them).
Created controls answer 201, malformed bodies 422 (or 400) naming the field, public reads list
the active controls and each device's DER."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from gtx_ray.ieee2030_5.der import DerCapability
from gtx_ray.ieee2030_5.identity import DeviceIdentity, sfdi_from_lfdi
from gtx_ray.ieee2030_5.models import EndDeviceIn
from gtx_ray.ieee2030_5.server.dispatch import Op, execute
from gtx_ray.ieee2030_5.server.errors import ResourceError
from gtx_ray.ieee2030_5.server.managers import admin_der
from gtx_ray.ieee2030_5.server.registry import Registry
from gtx_ray.serve.app import _install_error_handlers, error, parse_time
from gtx_ray.serve.der_routes import add_der_routes

NOW = 1_767_225_600
LFDI = "AB" * 20


@pytest.fixture()
def api():
    registry = Registry()
    who = DeviceIdentity(LFDI, sfdi_from_lfdi(LFDI))
    execute(registry, [Op("edev.register", who, NOW, (EndDeviceIn(sfdi=who.sfdi),))])
    cap = DerCapability(0x4, 83, 10.0, doe_modes_supported=1)
    assert not isinstance(
        execute(registry, [Op("der.put_part", who, NOW, (1, 1, "capability", cap))])[0],
        ResourceError,
    )
    calls: list[tuple[bool, str]] = []

    async def admin(request, action: str, **kwargs) -> JSONResponse:
        calls.append((request is not None, action))
        try:
            result = getattr(admin_der, action)(registry, NOW, **kwargs)
        except ResourceError as exc:
            return error(exc.status, exc.message)
        return JSONResponse({"result": result})

    app = FastAPI()
    _install_error_handlers(app)
    index = {"AMI_METER_UTCC_001": {"lfdi": LFDI}}
    add_der_routes(app, admin, parse_time, lambda: index, error, {}, lambda: NOW + 10)

    def call(method: str, path: str, body: object = None) -> tuple[int, object]:
        return asyncio.run(_asgi(app, method, path, body))

    call.calls = calls  # type: ignore[attr-defined]
    return call


async def _asgi(app, method: str, path: str, body: object) -> tuple[int, object]:
    """One request through the ASGI app; (status, decoded JSON body)."""
    path, _, query = path.partition("?")
    data = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    received = False

    async def receive():
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": data, "more_body": False}
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    raw = b"".join(chunks)
    return status, json.loads(raw) if raw else None


def test_controls_are_created_listed_and_cancelled(api):
    status, body = api(
        "POST",
        "/api/ieee2030_5/admin/der/controls",
        {
            "start": NOW,
            "duration_s": 600,
            "export_limit_kw": 5,
            "fixed_w_pct": -25.5,
            "targets": ["AMI_METER_UTCC_001"],
        },
    )
    assert status == 201, body
    created = body["result"]
    assert created["targets"] == [LFDI]
    assert created["modes"] == {"export_limit_kw": 5.0, "fixed_w_pct": -25.5}
    status, body = api("GET", "/api/ieee2030_5/der/controls?active=true")
    assert status == 200 and [c["id"] for c in body["result"]] == [created["id"]]
    assert body["result"][0]["status"] == "active"  # judged at the simulated time
    status, body = api("GET", f"/api/ieee2030_5/admin/der/controls/{created['id']}")
    assert status == 200 and body["result"]["mrid"] == created["mrid"]
    status, body = api("DELETE", f"/api/ieee2030_5/admin/der/controls/{created['id']}")
    assert status == 200 and body["result"]["status"] == "cancelled"
    status, body = api("DELETE", f"/api/ieee2030_5/admin/der/controls/{created['id']}")
    assert status == 409
    status, body = api("GET", "/api/ieee2030_5/der/controls?active=true")
    assert body["result"] == []
    status, body = api("GET", "/api/ieee2030_5/admin/der/controls")
    assert [c["status"] for c in body["result"]] == ["cancelled"]
    # Admin routes pass the request on (to be guarded); public reads do not.
    assert (True, "create_der_control") in api.calls
    assert (False, "list_der_controls") in api.calls


def test_default_is_set_and_read(api):
    status, body = api("GET", "/api/ieee2030_5/admin/der/default")
    assert status == 200 and body["result"] is None
    status, body = api(
        "PUT",
        "/api/ieee2030_5/admin/der/default",
        {"set_grad_w_pct_per_s": 0.5, "import_limit_kw": 20, "connect": True},
    )
    assert status == 200, body
    assert body["result"]["modes"] == {"connect": True, "import_limit_kw": 20.0}
    status, body = api("GET", "/api/ieee2030_5/admin/der/default")
    assert body["result"]["set_grad_w_pct_per_s"] == 0.5


def test_devices_der_is_public_with_meter_ids(api):
    status, body = api("GET", "/api/ieee2030_5/der/devices")
    assert status == 200
    (row,) = body["result"]
    assert row["meter_id"] == "AMI_METER_UTCC_001" and row["lfdi"] == LFDI
    assert row["capability"]["rated_w_kw"] == 10.0 and row["status"] is None


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({"start": NOW, "duration_s": 600}, 400, "needs a mode"),
        ({"start": NOW, "duration_s": 0, "connect": True}, 422, "duration_s"),
        ({"start": NOW, "duration_s": 60, "fixed_w_pct": 101}, 422, "fixed_w_pct"),
        ({"start": NOW, "duration_s": 60, "export_limit_kw": -1}, 422, "export_limit_kw"),
        ({"start": NOW, "duration_s": 60, "ramp_s": 700, "connect": True}, 422, "ramp_s"),
        ({"start": NOW, "duration_s": 60, "connect": True, "power": 3}, 422, "power"),
        ({"start": "soon", "duration_s": 60, "connect": True}, 422, "start"),
        ({"start": NOW, "duration_s": 60, "connect": True, "targets": ["nobody"]}, 400, "targets"),
    ],
)
def test_malformed_controls_are_refused_naming_the_field(api, body, status, word):
    got, answer = api("POST", "/api/ieee2030_5/admin/der/controls", body)
    assert got == status, answer
    assert word in answer["error"]


def test_malformed_default_is_refused_naming_the_field(api):
    got, answer = api("PUT", "/api/ieee2030_5/admin/der/default", {"set_grad_w_pct_per_s": -1})
    assert got == 422 and "set_grad_w_pct_per_s" in answer["error"]
