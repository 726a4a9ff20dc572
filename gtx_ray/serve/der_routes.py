"""REST routes of the DER function set held by the built-in IEEE 2030.5 server's registry.

Operators (``/api/ieee2030_5/admin/der/...``, guarded like every admin route) create, list and
cancel DERControls and set the DefaultDERControl; everyone reads the controls
(``/api/ieee2030_5/der/controls``, ``?active=true`` for those in force) and what each device
reported about its DER (``/api/ieee2030_5/der/devices``). Times are RFC 3339 or epoch seconds
in, epoch seconds out; powers kW, percentages %, ramp times s (``gtx_ray.ieee2030_5.der``).
Targets are meter ids (looked up in the certificates' ``devices.json``) or LFDIs.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gtx_ray.serve.events_routes import AdminCall, resolve_targets

MAX_LIMIT_KW = 1_000_000.0


class DerModesIn(BaseModel):
    """DERControlBase modes; each is optional (None: not asked for)."""

    model_config = ConfigDict(extra="forbid")

    connect: bool | None = Field(None, description="opModConnect: false disconnects")
    energize: bool | None = Field(None, description="opModEnergize")
    fixed_w_pct: float | None = Field(
        None,
        ge=-100,
        le=100,
        description="opModFixedW: + discharge, % of setMaxW; - charge, % of setMaxChargeRateW",
    )
    max_lim_w_pct: float | None = Field(
        None, ge=0, le=100, description="opModMaxLimW: output at most this % of setMaxW"
    )
    ramp_s: float | None = Field(None, ge=0, le=655.35, description="rampTms, seconds")
    export_limit_kw: float | None = Field(
        None, ge=0, le=MAX_LIMIT_KW, description="csipaus:opModExpLimW at the connection point"
    )
    import_limit_kw: float | None = Field(
        None, ge=0, le=MAX_LIMIT_KW, description="csipaus:opModImpLimW at the connection point"
    )
    generation_limit_kw: float | None = Field(
        None, ge=0, le=MAX_LIMIT_KW, description="csipaus:opModGenLimW (discharge), kW"
    )
    load_limit_kw: float | None = Field(
        None, ge=0, le=MAX_LIMIT_KW, description="csipaus:opModLoadLimW (charge), kW"
    )


class DerControlIn(DerModesIn):
    """A DER control (an IEEE 2030.5 DERControl): give at least one mode."""

    start: int | str = Field(description="RFC 3339 time or epoch seconds")
    duration_s: int = Field(ge=1, le=86_400, description="seconds")
    targets: list[str] | None = Field(
        None, min_length=1, max_length=100_000, description="meter ids or LFDIs; default all"
    )
    device_category: int | None = Field(
        None, gt=0, lt=2**32, description="DeviceCategoryType bits; default PV and storage"
    )
    randomize_start_s: int = Field(0, ge=-3600, le=3600, description="seconds")
    randomize_duration_s: int = Field(0, ge=-3600, le=3600, description="seconds")
    response_required: int | None = Field(None, ge=0, le=255, description="responseRequired")
    description: str = Field("", max_length=32)


class DefaultDerControlIn(DerModesIn):
    """What DER do when no control is active (an IEEE 2030.5 DefaultDERControl)."""

    set_grad_w_pct_per_s: float | None = Field(
        None, ge=0, le=655.35, description="setGradW: ramp rate, % of setMaxW per second"
    )
    description: str = Field("", max_length=32)


def add_der_routes(
    app: FastAPI,
    admin: AdminCall,
    parse_time: Callable[[str, str | None], int | None],
    devices_index: Callable[[], dict[str, dict] | None],
    error: Callable[..., JSONResponse],
    responses: dict,
    simulated_now: Callable[[], int | None],
) -> None:
    """The routes above (arguments as for ``events_routes.add_event_routes``)."""

    @app.post("/api/ieee2030_5/admin/der/controls", responses=responses, status_code=201)
    async def create_der_control(body: DerControlIn, request: Request) -> JSONResponse:
        """Create a DER control; devices learn it at their next poll."""
        try:
            targets = resolve_targets(body.targets, devices_index() if body.targets else None)
        except ValueError as exc:
            return error(400, str(exc))
        fields = body.model_dump(exclude={"start", "targets"}, exclude_none=True)
        start = int(parse_time("start", str(body.start)))  # type: ignore[arg-type]
        answer = await admin(request, "create_der_control", start=start, targets=targets, **fields)
        if answer.status_code == 200:
            answer.status_code = 201
        return answer

    @app.get("/api/ieee2030_5/admin/der/controls", responses=responses)
    async def list_der_controls(request: Request) -> JSONResponse:
        """Every DER control with its status and the Responses counted by status."""
        return await admin(request, "list_der_controls", at=simulated_now())

    @app.get("/api/ieee2030_5/admin/der/controls/{control_id}", responses=responses)
    async def get_der_control(control_id: int, request: Request) -> JSONResponse:
        return await admin(request, "get_der_control", control_id=control_id, at=simulated_now())

    @app.delete("/api/ieee2030_5/admin/der/controls/{control_id}", responses=responses)
    async def cancel_der_control(
        control_id: int,
        request: Request,
        randomized: bool = Query(False, description="devices cancel with their randomisation"),
    ) -> JSONResponse:
        """Cancel a DER control: devices return to the default at their next poll."""
        return await admin(
            request,
            "cancel_der_control",
            control_id=control_id,
            randomized=randomized,
            at=simulated_now(),
        )

    @app.put("/api/ieee2030_5/admin/der/default", responses=responses)
    async def set_default_der_control(body: DefaultDerControlIn, request: Request) -> JSONResponse:
        """Set the DefaultDERControl of the campus DER program."""
        fields = body.model_dump(exclude_none=True)
        return await admin(request, "set_default_der_control", **fields)

    @app.get("/api/ieee2030_5/admin/der/default", responses=responses)
    async def get_default_der_control(request: Request) -> JSONResponse:
        """The DefaultDERControl (null until set)."""
        return await admin(request, "get_default_der_control")

    @app.get("/api/ieee2030_5/der/controls", responses=responses)
    async def public_der_controls(active: bool = Query(False)) -> JSONResponse:
        """DER controls (only those in force with ``active=true``)."""
        return await admin(None, "list_der_controls", active_only=active, at=simulated_now())

    @app.get("/api/ieee2030_5/der/devices", responses=responses)
    async def public_der_devices() -> JSONResponse:
        """Each registered device's DER as it reported it over IEEE 2030.5 (capability,
        settings, status, availability; null until sent), with its meter id where known."""
        answer = await admin(None, "list_der_devices")
        if answer.status_code != 200:
            return answer
        rows = json.loads(answer.body)["result"]
        meter_of = {str(row["lfdi"]): m for m, row in (devices_index() or {}).items()}
        for row in rows:
            row["meter_id"] = meter_of.get(row["lfdi"])
        return JSONResponse({"result": rows})
