"""REST routes of the managed campus: demand-response events, tariffs, campus notices and the
Responses devices sent, held by the built-in IEEE 2030.5 server's registry.

Operators (``/api/ieee2030_5/admin/...``, guarded like every admin route) create, list and
cancel; everyone reads what is active (``/api/ieee2030_5/dr/events``, ``/tariff``,
``/messages``). Times are RFC 3339 or epoch seconds in, epoch seconds out; prices THB/kWh.
Targets are meter ids (looked up in the certificates' ``devices.json``) or LFDIs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

LFDI = re.compile(r"[0-9A-Fa-f]{40}")
RESPONSE_SET_IDS = {"drlc": 1, "pricing": 2, "messaging": 3, "der": 4}

AdminCall = Callable[..., Awaitable[JSONResponse]]
"""``admin(request, action, **kwargs)``: an admin action of the registry as a JSON answer
(``request`` None: a public read, not guarded)."""


class DrEventIn(BaseModel):
    """A load-control event (an IEEE 2030.5 EndDeviceControl). Give at least one load-shed
    form; when several are given the meter applies the largest reduction."""

    model_config = ConfigDict(extra="forbid")

    start: int | str = Field(description="RFC 3339 time or epoch seconds")
    duration_s: int = Field(ge=1, le=86_400, description="seconds")
    reduction_pct: float | None = Field(None, gt=0, le=100, description="demand cut, %")
    reduction_kw: int | None = Field(None, gt=0, le=65_535, description="demand cut per meter, kW")
    duty_cycle_pct: int | None = Field(None, ge=0, le=100, description="cooling on-time, %")
    cooling_offset_c: int | None = Field(None, ge=1, le=10, description="setpoint raised, °C")
    targets: list[str] | None = Field(
        None, min_length=1, max_length=100_000, description="meter ids or LFDIs; default all"
    )
    device_category: int | None = Field(
        None, gt=0, lt=2**32, description="IEEE 2030.5 DeviceCategoryType bits; default C&I loads"
    )
    randomize_start_s: int = Field(0, ge=-3600, le=3600, description="seconds")
    randomize_duration_s: int = Field(0, ge=-3600, le=3600, description="seconds")
    description: str = Field("", max_length=32)


class TariffIn(BaseModel):
    """A time-of-use tariff in force from ``effective_from`` until a later one."""

    model_config = ConfigDict(extra="forbid")

    effective_from: int | str = Field(description="RFC 3339 time or epoch seconds")
    on_peak_start_hour: float = Field(ge=0, lt=24, description="local hour")
    on_peak_end_hour: float = Field(gt=0, le=24, description="local hour")
    on_peak_thb_per_kwh: float = Field(ge=-100, le=100)
    off_peak_thb_per_kwh: float = Field(ge=-100, le=100)
    ft_thb_per_kwh: float = Field(0.0, ge=-100, le=100, description="fuel adjustment, THB/kWh")
    export_thb_per_kwh: float = Field(0.0, ge=0, le=100)
    name: str = Field("MEA TOU", min_length=1, max_length=20)


class MessageIn(BaseModel):
    """A campus notice (an IEEE 2030.5 TextMessage)."""

    model_config = ConfigDict(extra="forbid")

    start: int | str = Field(description="RFC 3339 time or epoch seconds")
    duration_s: int = Field(ge=1, le=366 * 86_400)
    text: str = Field(min_length=1, max_length=1000)
    priority: int = Field(1, ge=0, le=3, description="0 low, 1 normal, 2 high, 3 critical")
    originator: str | None = Field(None, max_length=20)


def resolve_targets(targets: list[str] | None, index: dict[str, dict] | None) -> list[str] | None:
    """LFDIs for meter ids (``index``: devices.json) or LFDIs; ValueError naming an unknown."""
    if targets is None:
        return None
    out = []
    for target in targets:
        if LFDI.fullmatch(target):
            out.append(target.upper())
        elif index is not None and target in index:
            out.append(str(index[target]["lfdi"]))
        else:
            raise ValueError(f"targets: {target!r} is neither an LFDI nor a known meter id")
    return out


def add_event_routes(
    app: FastAPI,
    admin: AdminCall,
    parse_time: Callable[[str, str | None], int | None],
    devices_index: Callable[[], dict[str, dict] | None],
    error: Callable[..., JSONResponse],
    responses: dict,
    simulated_now: Callable[[], int | None],
) -> None:
    """The routes above; ``admin`` runs a registry action, ``devices_index`` gives the
    meter id → LFDI map (None when unknown), ``simulated_now`` the simulation's time (epoch s;
    None before it is known): what is active, and when a cancellation happens, is judged on
    the simulated clock, which runs ahead of the wall clock in accelerated runs."""

    def when(name: str, value: int | str) -> int:
        return int(parse_time(name, str(value)))  # type: ignore[arg-type]

    @app.post("/api/ieee2030_5/admin/dr/events", responses=responses, status_code=201)
    async def create_dr_event(body: DrEventIn, request: Request) -> JSONResponse:
        """Create a demand-response event; meters learn it at their next poll."""
        try:
            targets = resolve_targets(body.targets, devices_index() if body.targets else None)
        except ValueError as exc:
            return error(400, str(exc))
        fields = body.model_dump(exclude={"start", "targets"}, exclude_none=True)
        answer = await admin(
            request,
            "create_dr_event",
            start=when("start", body.start),
            targets=targets,
            **fields,
        )
        if answer.status_code == 200:
            answer.status_code = 201
        return answer

    @app.get("/api/ieee2030_5/admin/dr/events", responses=responses)
    async def list_dr_events(request: Request) -> JSONResponse:
        """Every event with its status and the Responses counted by status."""
        return await admin(request, "list_dr_events", at=simulated_now())

    @app.delete("/api/ieee2030_5/admin/dr/events/{event_id}", responses=responses)
    async def cancel_dr_event(
        event_id: int,
        request: Request,
        randomized: bool = Query(False, description="meters cancel with their randomisation"),
    ) -> JSONResponse:
        """Cancel an event: meters stop shedding at their next poll."""
        return await admin(
            request,
            "cancel_dr_event",
            event_id=event_id,
            randomized=randomized,
            at=simulated_now(),
        )

    @app.post("/api/ieee2030_5/admin/tariffs", responses=responses, status_code=201)
    async def add_tariff(body: TariffIn, request: Request) -> JSONResponse:
        """Add a tariff change (a new on-peak window or new prices from a time on)."""
        fields = body.model_dump(exclude={"effective_from"})
        answer = await admin(
            request,
            "add_tariff",
            effective_from=when("effective_from", body.effective_from),
            **fields,
        )
        if answer.status_code == 200:
            answer.status_code = 201
        return answer

    @app.delete("/api/ieee2030_5/admin/tariffs/{effective_from}", responses=responses)
    async def remove_tariff(effective_from: int, request: Request) -> JSONResponse:
        """Remove the tariff change effective from that time (epoch s)."""
        return await admin(request, "remove_tariff", effective_from=effective_from)

    @app.post("/api/ieee2030_5/admin/messages", responses=responses, status_code=201)
    async def create_message(body: MessageIn, request: Request) -> JSONResponse:
        """Post a campus notice to every meter."""
        fields = body.model_dump(exclude={"start"}, exclude_none=True)
        answer = await admin(request, "create_message", start=when("start", body.start), **fields)
        if answer.status_code == 200:
            answer.status_code = 201
        return answer

    @app.delete("/api/ieee2030_5/admin/messages/{message_id}", responses=responses)
    async def cancel_message(message_id: int, request: Request) -> JSONResponse:
        return await admin(request, "cancel_message", message_id=message_id, at=simulated_now())

    @app.get("/api/ieee2030_5/admin/responses", responses=responses)
    async def list_responses(
        request: Request,
        function_set: Literal["drlc", "pricing", "messaging", "der"] = Query("drlc", alias="set"),
        subject: str | None = Query(None, pattern=r"^[0-9A-Fa-f]{1,32}$", description="mRID"),
        limit: int = Query(1000, ge=1, le=100_000),
    ) -> JSONResponse:
        """Responses devices posted, newest first (one set; one event with ``subject``)."""
        return await admin(
            request,
            "list_responses",
            set_id=RESPONSE_SET_IDS[function_set],
            subject=subject,
            limit=limit,
        )

    @app.get("/api/ieee2030_5/admin/scenario", responses=responses)
    async def export_scenario(request: Request) -> JSONResponse:
        """Everything operators put on the server, as a scenario file: save it and pass it to
        ``--scenario`` to replay the run with the same events (same mRIDs), tariff changes
        notices, DER controls and DER defaults. Targets are meter ids where the certificates name
        them, else LFDIs."""
        answer = await admin(request, "export_scenario")
        if answer.status_code != 200:
            return answer
        scenario = json.loads(answer.body)["result"]
        meter_of = {str(row["lfdi"]): m for m, row in (devices_index() or {}).items()}
        for event in (*scenario["dr_events"], *scenario.get("der_controls", ())):
            if "targets" in event:
                event["targets"] = [meter_of.get(t, t) for t in event["targets"]]
        return JSONResponse(scenario)

    @app.get("/api/ieee2030_5/dr/events", responses=responses)
    async def public_dr_events(active: bool = Query(False)) -> JSONResponse:
        """Demand-response events (only those in force with ``active=true``)."""
        return await admin(None, "list_dr_events", active_only=active, at=simulated_now())

    @app.get("/api/ieee2030_5/tariff", responses=responses)
    async def public_tariff() -> JSONResponse:
        """The tariff history, the one in force now and today's price intervals."""
        return await admin(None, "list_tariffs", at=simulated_now())

    @app.get("/api/ieee2030_5/messages", responses=responses)
    async def public_messages(active: bool = Query(False)) -> JSONResponse:
        """Campus notices (only those shown now with ``active=true``)."""
        return await admin(None, "list_messages", active_only=active, at=simulated_now())
