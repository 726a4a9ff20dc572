"""Scenario files (``--scenario FILE``): the demand-response events, tariff changes, campus
notices and DER controls of a run, as data. A run is a pure function of (seed, config,
scenario): the events reach the meter model directly as time-stamped inputs (so a backfill
sheds exactly as a real time run does) and are published on the built-in IEEE 2030.5 server
under stable mRIDs (so 2030.5 clients, the meters included, see the same events; a meter that
learns one over 2030.5 recognises it by its mRID and does not apply it twice).

A file is JSON::

    {"description": "...",
     "dr_events": [{"start": "2025-03-03T14:00:00+07:00", "duration_s": 3600,
                    "reduction_pct": 20, "targets": ["AMI_METER_UTCC_017"],
                    "randomize_start_s": 300, "repeat": {"every_days": 7, "count": 52}}],
     "tariffs": [{"effective_from": "2025-06-01T00:00:00+07:00", "on_peak_start_hour": 13,
                  "on_peak_end_hour": 20, "on_peak_thb_per_kwh": 5.2, "off_peak_thb_per_kwh": 2.4}],
     "messages": [{"start": "...", "duration_s": 7200, "text": "...", "priority": 2}],
     "der_controls": [{"start": "2025-04-09T11:00:00+07:00", "duration_s": 7200,
                       "export_limit_kw": 0, "ramp_s": 60, "randomize_start_s": 120}],
     "der_defaults": [{"max_lim_w_pct": 80, "set_grad_w_pct_per_s": 0.27}]}

DER controls and defaults are IEEE 2030.5 DERControls and DefaultDERControls (``DerControlSpec``,
``DerDefaultSpec``). The built-in server exports everything operators put on it in this form
(``GET /api/ieee2030_5/admin/scenario``) and the meters record what they learned from any server
in it (``DATA_DIR/learned``), so a run replays from (seed, config, scenario).

Times are RFC 3339 (an offset is required) or epoch seconds; durations seconds; prices THB/kWh.
A wrong file fails with ``ConfigError`` naming the file and the field (exit code 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.der import CATEGORY_DER
from gtx_ray.ieee2030_5.events import CATEGORY_MANAGED_CI_LOADS, event_mrid, mrid_hex
from gtx_ray.model.controls import LoadControl
from gtx_ray.model.der import MODE_OF_WIRE, DerControl, DerDefault
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.tariff import PriceInterval, TimeOfUseTariff

MAX_EVENTS = 10_000
"""Most DR events a scenario may expand to (repeats included)."""


def _epoch(value: int | str, name: str) -> int:
    if isinstance(value, int):
        if not 0 <= value < 253_402_300_800:
            raise ValueError(f"{name} {value} is not an epoch time in seconds (1970-9999)")
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} {value!r} needs a UTC offset (e.g. +07:00 or Z)")
    return int(moment.timestamp())


class Repeat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_days: int = Field(ge=1, le=366)
    count: int = Field(ge=1, le=MAX_EVENTS)


class DrEventSpec(BaseModel):
    """One load-control event (or a series with ``repeat``)."""

    model_config = ConfigDict(extra="forbid")

    start: int | str
    duration_s: int = Field(ge=60, le=86_400)
    reduction_pct: float | None = Field(None, gt=0, le=100)
    reduction_kw: int | None = Field(None, gt=0, le=65_535)
    duty_cycle_pct: int | None = Field(None, ge=0, le=100)
    cooling_offset_c: int | None = Field(None, ge=1, le=10)
    targets: list[str] | None = Field(None, min_length=1)
    device_category: int = Field(CATEGORY_MANAGED_CI_LOADS, gt=0, lt=2**32)
    randomize_start_s: int = Field(0, ge=-3600, le=3600)
    randomize_duration_s: int = Field(0, ge=-3600, le=3600)
    description: str = Field("", max_length=32)
    repeat: Repeat | None = None
    mrid: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{32}$", description="keep this mRID")
    cancelled_at: int | str | None = None

    @field_validator("start")
    @classmethod
    def _start(cls, value: int | str) -> int:
        return _epoch(value, "start")

    @field_validator("cancelled_at")
    @classmethod
    def _cancelled(cls, value: int | str | None) -> int | None:
        return None if value is None else _epoch(value, "cancelled_at")

    @model_validator(mode="after")
    def _one_form(self) -> DrEventSpec:
        if self.repeat is not None and (self.mrid is not None or self.cancelled_at is not None):
            raise ValueError("mrid and cancelled_at name one event: not with repeat")
        forms = (self.reduction_pct, self.reduction_kw, self.duty_cycle_pct, self.cooling_offset_c)
        if all(f is None for f in forms):
            raise ValueError(
                "needs a load-shed form: reduction_pct, reduction_kw, duty_cycle_pct or "
                "cooling_offset_c"
            )
        return self


class TariffSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: int | str
    on_peak_start_hour: float = Field(ge=0, lt=24)
    on_peak_end_hour: float = Field(gt=0, le=24)
    on_peak_thb_per_kwh: float = Field(ge=-100, le=100)
    off_peak_thb_per_kwh: float = Field(ge=-100, le=100)
    ft_thb_per_kwh: float | None = Field(None, ge=-100, le=100)
    export_thb_per_kwh: float | None = Field(None, ge=0, le=100)
    name: str = Field("scenario tariff", min_length=1, max_length=20)

    @field_validator("effective_from")
    @classmethod
    def _from(cls, value: int | str) -> int:
        return _epoch(value, "effective_from")

    @model_validator(mode="after")
    def _window(self) -> TariffSpec:
        if self.on_peak_start_hour >= self.on_peak_end_hour:
            raise ValueError("on_peak_start_hour must be before on_peak_end_hour")
        return self


class MessageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int | str
    duration_s: int = Field(ge=1, le=366 * 86_400)
    text: str = Field(min_length=1, max_length=1000)
    priority: int = Field(1, ge=0, le=3)
    originator: str | None = Field(None, max_length=20)

    @field_validator("start")
    @classmethod
    def _start(cls, value: int | str) -> int:
        return _epoch(value, "start")


class DerModesSpec(BaseModel):
    """The DERControlBase modes of a DER control or default: limits in kW at the connection
    point (export, import) or of the DER (generation, load); ``fixed_w_pct`` a signed % of each
    battery's power (+ discharge); ``max_lim_w_pct`` a % of the inverter's rating."""

    model_config = ConfigDict(extra="forbid")

    connect: bool | None = None
    energize: bool | None = None
    export_limit_kw: float | None = Field(None, ge=0, le=1e6)
    import_limit_kw: float | None = Field(None, ge=0, le=1e6)
    generation_limit_kw: float | None = Field(None, ge=0, le=1e6)
    load_limit_kw: float | None = Field(None, ge=0, le=1e6)
    fixed_w_pct: float | None = Field(None, ge=-100, le=100)
    max_lim_w_pct: float | None = Field(None, ge=0, le=100)

    def modes(self) -> dict[str, bool | float]:
        """The modes set, by their ``DERControlBase`` names (``ieee2030_5.der``)."""
        return {m: getattr(self, m) for m in DER_MODES if getattr(self, m) is not None}

    def model_modes(self) -> dict[str, bool | float | None]:
        """The modes as the model's ``DerControl`` / ``DerDefault`` fields."""
        return {model: getattr(self, wire) for wire, model in MODE_OF_WIRE.items()}


class DerControlSpec(DerModesSpec):
    """One IEEE 2030.5 DERControl for the meters with PV and/or a battery (or a series with
    ``repeat``): at least one mode (``DerModesSpec``); ``primacy`` of its program (lower wins
    when controls overlap; the built-in server publishes every control in one program);
    ``created_at``: its creationTime (among equal primacy the later created wins; default a day
    before its start); ``cancelled_at``: when it was cancelled or superseded (epoch s or
    RFC 3339)."""

    start: int | str
    duration_s: int = Field(ge=60, le=86_400)
    ramp_s: float | None = Field(None, ge=0, le=655.35)
    targets: list[str] | None = Field(None, min_length=1)
    device_category: int = Field(CATEGORY_DER, gt=0, lt=2**32)
    randomize_start_s: int = Field(0, ge=-3600, le=3600)
    randomize_duration_s: int = Field(0, ge=-3600, le=3600)
    primacy: int = Field(1, ge=0, le=255)
    description: str = Field("", max_length=32)
    repeat: Repeat | None = None
    mrid: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{32}$", description="keep this mRID")
    created_at: int | str | None = None
    cancelled_at: int | str | None = None

    @field_validator("start")
    @classmethod
    def _start(cls, value: int | str) -> int:
        return _epoch(value, "start")

    @field_validator("created_at", "cancelled_at")
    @classmethod
    def _time(cls, value: int | str | None, info: ValidationInfo) -> int | None:
        return None if value is None else _epoch(value, str(info.field_name))

    @model_validator(mode="after")
    def _one_mode(self) -> DerControlSpec:
        if not self.modes():
            raise ValueError(f"needs a mode: one of {', '.join(DER_MODES)}")
        one = (self.mrid, self.created_at, self.cancelled_at)
        if self.repeat is not None and any(v is not None for v in one):
            raise ValueError("mrid, created_at and cancelled_at name one control: not with repeat")
        return self

    def created_s(self, start_s: int) -> int:
        """The creationTime of the occurrence starting at ``start_s``, epoch s."""
        return start_s - 86_400 if self.created_at is None else int(self.created_at)


class DerDefaultSpec(DerModesSpec):
    """A DefaultDERControl: the modes the DERs follow when no control is in force (and the
    modes a control leaves unset); ``set_grad_w_pct_per_s`` (setGradW): the ramp rate of
    controls without their own ``ramp_s`` and of every return to the default, % of the rated
    power per second. ``targets``: the meters it is for (None: every DER); where several
    defaults target a meter, the first listed wins. The built-in server can publish only a
    default for every DER (one program): one with targets reaches the model only."""

    set_grad_w_pct_per_s: float | None = Field(None, ge=0, le=655.35)
    targets: list[str] | None = Field(None, min_length=1)
    description: str = Field("", max_length=32)
    mrid: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{32}$", description="keep this mRID")


DER_MODES = tuple(DerModesSpec.model_fields)


class PriceSpec(BaseModel):
    """An explicit import price for an interval (what a meter learned from a server's
    TimeTariffIntervals), overriding the tariff there."""

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0)
    duration_s: int = Field(ge=1, le=366 * 86_400)
    import_thb_per_kwh: float = Field(ge=-1000, le=1000)


class ScenarioFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    dr_events: list[DrEventSpec] = Field(default_factory=list)
    tariffs: list[TariffSpec] = Field(default_factory=list)
    messages: list[MessageSpec] = Field(default_factory=list)
    prices: list[PriceSpec] = Field(default_factory=list)
    der_controls: list[DerControlSpec] = Field(default_factory=list)
    der_defaults: list[DerDefaultSpec] = Field(default_factory=list, max_length=1000)


@dataclass(frozen=True)
class ScenarioEvent:
    """One occurrence of a scenario DR event: its stable mRID (hex) and its parameters."""

    mrid: str
    start: int
    spec: DrEventSpec


@dataclass(frozen=True)
class ScenarioDerControl:
    """One occurrence of a scenario DER control: its stable mRID (hex) and its parameters."""

    mrid: str
    start: int
    spec: DerControlSpec


_Occurrence = TypeVar("_Occurrence", "ScenarioEvent", "ScenarioDerControl")


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: events expanded (repeats), tariffs sorted by effective_from."""

    description: str
    events: tuple[ScenarioEvent, ...]
    tariffs: tuple[TariffSpec, ...]
    messages: tuple[MessageSpec, ...]
    prices: tuple[PriceSpec, ...] = ()
    der_controls: tuple[ScenarioDerControl, ...] = ()
    der_defaults: tuple[DerDefaultSpec, ...] = ()

    @staticmethod
    def empty() -> Scenario:
        return Scenario("", (), (), ())


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_scenario(data: object, source: str = "scenario") -> Scenario:
    """A Scenario from parsed JSON; ConfigError naming ``source`` and the field."""
    try:
        parsed = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _field_path(tuple(p for p in first["loc"] if p not in ("function-after",)))
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {where or 'file'}: {message}{more}") from None
    events = []
    for i, spec in enumerate(parsed.dr_events):
        repeat = spec.repeat or Repeat(every_days=1, count=1)
        for k in range(repeat.count):
            start = int(spec.start) + k * repeat.every_days * 86_400
            mrid = spec.mrid.upper() if spec.mrid else mrid_hex(event_mrid("scenario", i, k, start))
            events.append(ScenarioEvent(mrid, start, spec))
    if len(events) > MAX_EVENTS:
        raise ConfigError(f"{source}: dr_events expand to {len(events)} events, over {MAX_EVENTS}")
    tariffs = tuple(sorted(parsed.tariffs, key=lambda t: int(t.effective_from)))
    starts = [int(t.effective_from) for t in tariffs]
    if len(set(starts)) != len(starts):
        raise ConfigError(f"{source}: tariffs: two tariff changes share an effective_from")
    prices = tuple(sorted(parsed.prices, key=lambda p: p.start))
    der = []
    for i, spec in enumerate(parsed.der_controls):
        repeat = spec.repeat or Repeat(every_days=1, count=1)
        for k in range(repeat.count):
            start = int(spec.start) + k * repeat.every_days * 86_400
            mrid = spec.mrid.upper() if spec.mrid else mrid_hex(event_mrid("der", i, k, start))
            der.append(ScenarioDerControl(mrid, start, spec))
    if len(der) > MAX_EVENTS:
        raise ConfigError(f"{source}: der_controls expand to {len(der)}, over {MAX_EVENTS}")
    return Scenario(
        parsed.description,
        tuple(events),
        tariffs,
        tuple(parsed.messages),
        prices,
        tuple(der),
        tuple(parsed.der_defaults),
    )


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file, or every ``*.json`` of a directory merged (what the
    meters of a run recorded, ``DATA_DIR/learned``); ConfigError (exit 2) for anything wrong."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise ConfigError(f"--scenario {path}: a directory without scenario files (*.json)")
        return merge_scenarios([_load_file(f) for f in files])
    return _load_file(path)


def _load_file(path: Path) -> Scenario:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--scenario {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--scenario {path}: unreadable ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--scenario {path}: not JSON ({exc})") from None
    return parse_scenario(data, f"--scenario {path}")


def merge_scenarios(parts: list[Scenario]) -> Scenario:
    """One scenario of several: an event or DER control named in more than one (same mRID)
    reaches the union of their targets; tariff changes and prices keep one per start; notices
    and DER defaults all (in the order of the parts: where two target a meter, the earlier
    wins)."""
    events = _union_of_targets(e for part in parts for e in part.events)
    der = _union_of_targets(c for part in parts for c in part.der_controls)
    tariffs = {int(t.effective_from): t for part in parts for t in part.tariffs}
    prices = {p.start: p for part in parts for p in part.prices}
    return Scenario(
        "; ".join(p.description for p in parts if p.description),
        tuple(sorted(events, key=lambda e: (e.start, e.mrid))),
        tuple(tariffs[k] for k in sorted(tariffs)),
        tuple(m for part in parts for m in part.messages),
        tuple(prices[k] for k in sorted(prices)),
        tuple(sorted(der, key=lambda c: (c.start, c.mrid))),
        tuple(d for part in parts for d in part.der_defaults),
    )


def _union_of_targets(items: Iterable[_Occurrence]) -> list[_Occurrence]:
    """One occurrence per mRID, reaching the union of the targets it has anywhere (every
    meter when any occurrence is untargeted)."""
    merged: dict[str, _Occurrence] = {}
    for item in items:
        seen = merged.get(item.mrid)
        if seen is not None and seen.spec.targets is not None and item.spec.targets is not None:
            targets = sorted(set(seen.spec.targets) | set(item.spec.targets))
            item = replace(item, spec=item.spec.model_copy(update={"targets": targets}))
        elif seen is not None and seen.spec.targets is None:
            item = seen
        merged[item.mrid] = item
    return list(merged.values())


def server_actions(
    scenario: Scenario, lfdi_of: dict[str, str], campus_tariff: TimeOfUseTariff | None = None
) -> list[tuple[str, dict[str, object]]]:
    """The admin actions that publish ``scenario`` on the built-in IEEE 2030.5 server:
    (action, keyword arguments) in order. ``lfdi_of``: meter id → LFDI (devices.json);
    ``campus_tariff``: where a tariff change leaves out Ft or the export credit.
    Events keep their scenario mRIDs and a creation time one day before they start, so
    publishing again (a restart on the same state file) changes nothing."""
    actions: list[tuple[str, dict[str, object]]] = []
    for t in scenario.tariffs:
        fields = t.model_dump(exclude_none=True)
        fields["effective_from"] = int(t.effective_from)
        if campus_tariff is not None:
            fields.setdefault("ft_thb_per_kwh", campus_tariff.ft_thb_per_kwh)
            fields.setdefault("export_thb_per_kwh", campus_tariff.export_thb_per_kwh)
        actions.append(("add_tariff", fields))
    for e in scenario.events:
        actions.append(_publish("create_dr_event", "dr_events", e, e.start - 86_400, lfdi_of))
    for c in scenario.der_controls:
        created = c.spec.created_s(c.start)
        actions.append(_publish("create_der_control", "der_controls", c, created, lfdi_of))
    everyone = [d for d in scenario.der_defaults if d.targets is None]
    if everyone:  # the first one wins for every meter it targets (see DerDefaultSpec)
        d = everyone[0]
        mrid = d.mrid.upper() if d.mrid else mrid_hex(event_mrid("dderc-scenario", _content(d)))
        options = {"set_grad_w_pct_per_s": d.set_grad_w_pct_per_s, "description": d.description}
        actions.append(("set_default_der_control", {**d.modes(), **options, "mrid": mrid}))
    for m in scenario.messages:
        fields = m.model_dump(exclude={"start"}, exclude_none=True)
        actions.append(("create_message", {**fields, "start": int(m.start)}))
    return actions


def _publish(
    action: str,
    section: str,
    item: ScenarioEvent | ScenarioDerControl,
    creation_time: int,
    lfdi_of: dict[str, str],
) -> tuple[str, dict[str, object]]:
    """The admin action that publishes one occurrence of a DR event or DER control: its fields,
    start, mRID and creation time, targets as LFDIs, ``cancelled_s`` when it was cancelled."""
    spec = item.spec
    targets = None
    if spec.targets is not None:
        missing = [m for m in spec.targets if m not in lfdi_of]
        if missing:
            raise ConfigError(
                f"scenario: {section} targets {missing[:3]} are not meters of this run"
            )
        targets = [lfdi_of[m] for m in spec.targets]
    model_only = {"start", "targets", "repeat", "mrid", "created_at", "cancelled_at", "primacy"}
    fields = spec.model_dump(exclude=model_only, exclude_none=True)
    if spec.cancelled_at is not None:
        fields["cancelled_s"] = int(spec.cancelled_at)
    return action, {
        **fields,
        "start": item.start,
        "targets": targets,
        "mrid": item.mrid,
        "creation_time": creation_time,
    }


def model_inputs(scenario: Scenario, campus_tariff: TimeOfUseTariff) -> ModelInputs:
    """The scenario as the meter model's inputs: its events (targets by meter id, or every
    meter of the event's device category) and the configured tariff followed by the
    scenario's changes (a change that leaves out Ft or the export credit keeps the
    configured one)."""
    controls = tuple(
        LoadControl(
            event_id=e.mrid,
            start_s=e.start,
            duration_s=e.spec.duration_s,
            randomize_start_s=e.spec.randomize_start_s,
            randomize_duration_s=e.spec.randomize_duration_s,
            reduce_pct=e.spec.reduction_pct,
            reduce_kw=None if e.spec.reduction_kw is None else float(e.spec.reduction_kw),
            duty_cycle_pct=None if e.spec.duty_cycle_pct is None else float(e.spec.duty_cycle_pct),
            cooling_offset_c=(
                None if e.spec.cooling_offset_c is None else float(e.spec.cooling_offset_c)
            ),
            meter_ids=frozenset(e.spec.targets) if e.spec.targets is not None else None,
            device_category=e.spec.device_category,
            cancelled_at_s=None if e.spec.cancelled_at is None else int(e.spec.cancelled_at),
        )
        for e in scenario.events
    )
    return ModelInputs(
        load_controls=controls,
        tariffs=(campus_tariff, *(model_tariff(t, campus_tariff) for t in scenario.tariffs)),
        prices=tuple(
            PriceInterval(p.start, p.duration_s, p.import_thb_per_kwh) for p in scenario.prices
        ),
        der_controls=tuple(model_der_control(c) for c in scenario.der_controls),
        der_defaults=tuple(
            DerDefault(
                meter_ids=frozenset(d.targets) if d.targets is not None else None,
                set_grad_w=d.set_grad_w_pct_per_s,
                **d.model_modes(),  # type: ignore[arg-type]
            )
            for d in scenario.der_defaults
        ),
    )


def model_der_control(c: ScenarioDerControl) -> DerControl:
    """A scenario DER control as the model's (created when it says, else a day before it
    starts, as published)."""
    s = c.spec
    return DerControl(
        event_id=c.mrid,
        start_s=c.start,
        duration_s=s.duration_s,
        randomize_start_s=s.randomize_start_s,
        randomize_duration_s=s.randomize_duration_s,
        meter_ids=frozenset(s.targets) if s.targets is not None else None,
        device_category=s.device_category,
        primacy=s.primacy,
        created_s=s.created_s(c.start),
        cancelled_at_s=None if s.cancelled_at is None else int(s.cancelled_at),
        ramp_s=s.ramp_s,
        **s.model_modes(),  # type: ignore[arg-type]
    )


def _content(d: DerDefaultSpec) -> str:
    """A default's content as canonical JSON (its mRID is made from it: stable across runs)."""
    return json.dumps(d.model_dump(exclude={"mrid"}), sort_keys=True)


def model_tariff(spec: TariffSpec, base: TimeOfUseTariff) -> TimeOfUseTariff:
    """A scenario tariff change as the model's tariff (unset Ft, export credit: ``base``'s)."""
    return TimeOfUseTariff(
        effective_from_s=int(spec.effective_from),
        on_peak_start_hour=spec.on_peak_start_hour,
        on_peak_end_hour=spec.on_peak_end_hour,
        on_peak_thb_per_kwh=spec.on_peak_thb_per_kwh,
        off_peak_thb_per_kwh=spec.off_peak_thb_per_kwh,
        ft_thb_per_kwh=base.ft_thb_per_kwh if spec.ft_thb_per_kwh is None else spec.ft_thb_per_kwh,
        export_thb_per_kwh=(
            base.export_thb_per_kwh if spec.export_thb_per_kwh is None else spec.export_thb_per_kwh
        ),
        name=spec.name,
    )
