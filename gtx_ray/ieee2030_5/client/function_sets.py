"""The event function sets a simulated meter polls, and what they teach its model.

``MeterFunctionSets`` makes, for each meter of an actor, a demand-response, a pricing and a
messaging poller, and a DER poller for a meter with PV and/or a battery (``pollers``, the
factory ``MeterClients`` takes), and turns what they learned into the model's inputs
(``model_inputs``): each EndDeviceControl becomes a ``LoadControl`` for the meters that received
it, each TimeTariffInterval a ``PriceInterval``, each DERControl a model ``DerControl`` and each
DefaultDERControl a ``DerDefault`` for the meters holding it (see ``der_inputs``). Events the run
already knows from its scenario (same mRID) are not added twice. ``advance`` tells the
demand-response and DER pollers how far simulated time has got, for the Responses they owe;
``observe`` hands each DER poller its meter's latest reading (for DERStatus and DERAvailability).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pyarrow as pa

from gtx_ray.ieee2030_5.client.der import DerPoller, DerRatings, DerReading
from gtx_ray.ieee2030_5.client.drlc import DemandResponsePoller
from gtx_ray.ieee2030_5.client.messaging import MessagingPoller
from gtx_ray.ieee2030_5.client.pollers import FunctionSetPoller
from gtx_ray.ieee2030_5.client.pricing import PricingPoller
from gtx_ray.ieee2030_5.der import DefaultDerControl, DerControlBase
from gtx_ray.ieee2030_5.der import DerControl as WireDerControl
from gtx_ray.ieee2030_5.events import EndDeviceControl, mrid_hex
from gtx_ray.model.controls import LoadControl
from gtx_ray.model.der import MODE_OF_WIRE, DerControl, DerDefault
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.tariff import PriceInterval

log = logging.getLogger(__name__)


def load_control_of(control: EndDeviceControl, meter_ids: frozenset[str]) -> LoadControl:
    """An EndDeviceControl as the model's event for ``meter_ids`` (category already checked by
    the pollers; a supersession stops shedding like a cancellation)."""
    stop = [s for s in (control.cancelled_s, control.superseded_s) if s is not None]
    shed = control.shed
    return LoadControl(
        event_id=mrid_hex(control.mrid),
        start_s=control.start,
        duration_s=control.duration,
        randomize_start_s=control.randomize_start_s,
        randomize_duration_s=control.randomize_duration_s,
        reduce_pct=shed.reduction_pct,
        reduce_kw=None if shed.reduction_kw is None else float(shed.reduction_kw),
        duty_cycle_pct=None if shed.duty_cycle_pct is None else float(shed.duty_cycle_pct),
        cooling_offset_c=None if shed.cooling_offset_c is None else float(shed.cooling_offset_c),
        meter_ids=meter_ids,
        cancelled_at_s=min(stop) if stop else None,
        cancel_randomized=control.cancel_randomized,
    )


def _modes(base: DerControlBase) -> dict[str, object]:
    """The model's modes of a DERControlBase: opModFixedW stays a signed % of each battery's
    rating (``fixed_pct``), opModMaxLimW a % of each inverter's (``max_limit_pct``)."""
    return {model: getattr(base, wire) for wire, model in MODE_OF_WIRE.items()}


def der_control_of(control: WireDerControl, primacy: int, meter_ids: frozenset[str]) -> DerControl:
    """A DERControl as the model's event for ``meter_ids`` (category already checked by the
    pollers; a supersession stops it like a cancellation): its program's ``primacy``, its
    creationTime as ``created_s``. The percentages stay percentages, which the model takes of
    each meter's own rating (opModFixedW of its battery's kW: fixed_pct / 100 × battery kW;
    opModMaxLimW of its inverter's), so one control serves meters of any size."""
    stop = [s for s in (control.cancelled_s, control.superseded_s) if s is not None]
    return DerControl(
        event_id=mrid_hex(control.mrid),
        start_s=control.start,
        duration_s=control.duration,
        randomize_start_s=control.randomize_start_s,
        randomize_duration_s=control.randomize_duration_s,
        meter_ids=meter_ids,
        device_category=control.device_category,
        primacy=primacy,
        created_s=control.creation_time,
        cancelled_at_s=min(stop) if stop else None,
        cancel_randomized=control.cancel_randomized,
        ramp_s=control.base.ramp_s,
        **_modes(control.base),  # type: ignore[arg-type]
    )


def der_default_of(default: DefaultDerControl, meter_ids: frozenset[str]) -> DerDefault:
    """A DefaultDERControl as the model's default for ``meter_ids`` (the meters holding it)."""
    return DerDefault(
        meter_ids=meter_ids,
        set_grad_w=default.set_grad_w_pct_per_s,
        **_modes(default.base),  # type: ignore[arg-type]
    )


def _scenario_modes(control: DerControl | DerDefault) -> dict[str, object]:
    """The modes a model control sets, by their scenario-file (2030.5) names."""
    return {
        wire: getattr(control, model)
        for wire, model in MODE_OF_WIRE.items()
        if getattr(control, model) is not None
    }


class MeterFunctionSets:
    """The pollers of an actor's meters. ``categories``: meter id → DeviceCategoryType bits;
    ``ders``: meter id → its DER ratings, for the meters with PV and/or a battery (only those
    get a DER poller)."""

    def __init__(
        self, categories: dict[str, int], ders: dict[str, DerRatings] | None = None
    ) -> None:
        self.categories = categories
        self.ders = ders or {}
        self.drlc: dict[str, DemandResponsePoller] = {}
        self.pricing: dict[str, PricingPoller] = {}
        self.messaging: dict[str, MessagingPoller] = {}
        self.der: dict[str, DerPoller] = {}

    def pollers(self, meter_id: str) -> Sequence[FunctionSetPoller]:
        """The factory for ``MeterClients(pollers=...)``: one of each per meter (DER only for a
        meter with PV or a battery)."""
        drlc = self.drlc[meter_id] = DemandResponsePoller(self.categories[meter_id])
        pricing = self.pricing[meter_id] = PricingPoller()
        messaging = self.messaging[meter_id] = MessagingPoller(meter_id)
        out: list[FunctionSetPoller] = [drlc, pricing, messaging]
        ratings = self.ders.get(meter_id)
        if ratings is not None and (ratings.has_pv or ratings.has_battery):
            der = self.der[meter_id] = DerPoller(self.categories[meter_id], ratings)
            out.append(der)
        return out

    def advance(self, sim_now_s: int) -> None:
        for poller in self.drlc.values():
            poller.advance(sim_now_s)
        for der in self.der.values():
            der.advance(sim_now_s)

    def observe(self, batch: pa.RecordBatch) -> list[str]:
        """Hand each DER poller its meter's latest reading in ``batch`` (a step's readings).
        Returns the meters whose DER operating state changed: wake them
        (``MeterClients.wake``) to push their DERStatus now."""
        if not self.der or batch.num_rows == 0:
            return []
        meter_ids = batch.column("meter_id").to_pylist()
        times = batch.column("timestamp").cast(pa.int64()).to_numpy()
        latest: dict[str, int] = {}
        for row, meter_id in enumerate(meter_ids):
            if meter_id in self.der and (
                meter_id not in latest or times[row] >= times[latest[meter_id]]
            ):
                latest[meter_id] = row

        def value(name: str, row: int) -> float | None:
            v = batch.column(name)[row].as_py()
            return None if v is None else float(v)

        changed = []
        for meter_id, row in latest.items():
            if self.der[meter_id].observe(
                DerReading(
                    time_s=int(times[row]),
                    pv_kw=value("solar_generation", row) or 0.0,
                    battery_level_pct=value("battery_level", row),
                    curtailed_kw=value("curtailed_kw", row) or 0.0,
                    battery_kw=value("battery_power", row) or 0.0,
                )
            ):
                changed.append(meter_id)
        return changed

    def der_inputs(
        self, base: ModelInputs
    ) -> tuple[tuple[DerControl, ...], tuple[DerDefault, ...]]:
        """The model's DER controls and defaults from what the DER pollers learned.

        Controls: one model control per DERControl, for every meter that received it, with the
        lowest primacy a meter saw it under (``der_control_of``). Controls whose mRID the
        scenario already has are left out.

        Defaults: each distinct DefaultDERControl the meters hold, for the meters that hold it
        (a server may give meters programs with different defaults); its setGradW paces those
        meters' events. The scenario's defaults come first, so where one targets a meter it wins.
        """
        known = {c.event_id for c in base.der_controls}
        shared: dict[int, tuple[WireDerControl, int, set[str]]] = {}
        for meter_id, poller in self.der.items():
            for control, primacy in poller.controls():
                if mrid_hex(control.mrid) in known:
                    continue
                _, lowest, meters = shared.setdefault(control.mrid, (control, primacy, set()))
                meters.add(meter_id)
                if primacy < lowest:
                    shared[control.mrid] = (control, primacy, meters)
        controls = tuple(
            der_control_of(c, p, frozenset(m))
            for c, p, m in sorted(shared.values(), key=lambda e: (e[0].start, e[0].mrid))
        )
        return controls, base.der_defaults + self._held_defaults()

    def _held_defaults(self) -> tuple[DerDefault, ...]:
        """One model default per distinct DefaultDERControl the meters hold, for its holders
        (in mRID order, so the same knowledge gives the same inputs)."""
        holders: dict[DefaultDerControl, set[str]] = {}
        for meter_id, poller in self.der.items():
            d = poller.default()
            if d is not None:
                holders.setdefault(d, set()).add(meter_id)
        return tuple(
            der_default_of(d, frozenset(holders[d]))
            for d in sorted(holders, key=lambda d: (d.mrid, d.updated))
        )

    def model_inputs(self, base: ModelInputs) -> ModelInputs:
        """``base`` (the scenario's) plus what the meters learned over IEEE 2030.5."""
        known = {c.event_id for c in base.load_controls}
        receivers: dict[int, tuple[EndDeviceControl, set[str]]] = {}
        for meter_id, poller in self.drlc.items():
            for control in poller.controls():
                if mrid_hex(control.mrid) in known:
                    continue
                entry = receivers.setdefault(control.mrid, (control, set()))
                entry[1].add(meter_id)
        learned = tuple(
            load_control_of(control, frozenset(meters))
            for control, meters in sorted(receivers.values(), key=lambda e: e[0].start)
        )
        prices: dict[int, PriceInterval] = {}
        for poller in self.pricing.values():
            for i in poller.intervals():
                prices[i.start] = PriceInterval(i.start, i.duration, i.price_thb_per_kwh)
        der_controls, der_defaults = self.der_inputs(base)
        if not learned and not prices and not der_controls and der_defaults == base.der_defaults:
            return base
        return ModelInputs(
            load_controls=base.load_controls + learned,
            tariffs=base.tariffs,
            prices=base.prices + tuple(prices[s] for s in sorted(prices)),
            der_controls=base.der_controls + der_controls,
            der_defaults=der_defaults,
        )

    def learned_scenario(self) -> dict:
        """What the meters learned, as a scenario file (``gtx_ray.scenario``): each event with
        its mRID, the meters that received it as targets and, when it was cancelled or
        superseded, ``cancelled_at``; the import prices as ``prices``. Replaying it with
        ``--scenario`` gives the model the same inputs: the DER controls and defaults too
        (``learned_der``)."""
        receivers: dict[int, tuple[EndDeviceControl, set[str]]] = {}
        for meter_id, poller in self.drlc.items():
            for control in poller.controls():
                receivers.setdefault(control.mrid, (control, set()))[1].add(meter_id)
        events = []
        for control, meters in sorted(receivers.values(), key=lambda e: (e[0].start, e[0].mrid)):
            model = load_control_of(control, frozenset(meters))
            row = {
                "start": model.start_s,
                "duration_s": model.duration_s,
                "randomize_start_s": model.randomize_start_s,
                "randomize_duration_s": model.randomize_duration_s,
                "targets": sorted(meters),
                "device_category": control.device_category,
                "mrid": model.event_id,
            }
            for key, name in (
                ("reduction_pct", "reduce_pct"),
                ("duty_cycle_pct", "duty_cycle_pct"),
                ("cooling_offset_c", "cooling_offset_c"),
            ):
                if getattr(model, name) is not None:
                    row[key] = getattr(model, name)
            if model.reduce_kw is not None:
                row["reduction_kw"] = int(model.reduce_kw)
            if model.cancelled_at_s is not None:
                row["cancelled_at"] = model.cancelled_at_s
            events.append(row)
        prices: dict[int, dict] = {}
        for poller in self.pricing.values():
            for i in poller.intervals():
                prices[i.start] = {
                    "start": i.start,
                    "duration_s": i.duration,
                    "import_thb_per_kwh": i.price_thb_per_kwh,
                }
        return {
            "description": "learned over IEEE 2030.5 by " + ", ".join(sorted(self.drlc)[:3]),
            "dr_events": events,
            "prices": [prices[s] for s in sorted(prices)],
            **self.learned_der(),
        }

    def learned_der(self) -> dict[str, list[dict]]:
        """The DER controls the meters received (targets: the receivers; primacy: the lowest
        they saw it under; ``cancelled_at`` when cancelled or superseded) and each distinct
        default the meters hold (targets: its holders), as scenario entries."""
        controls, defaults = self.der_inputs(ModelInputs())
        rows = []
        for c in controls:
            row: dict[str, object] = {
                "start": c.start_s,
                "duration_s": c.duration_s,
                **_scenario_modes(c),
                "randomize_start_s": c.randomize_start_s,
                "randomize_duration_s": c.randomize_duration_s,
                "device_category": c.device_category,
                "primacy": c.primacy,
                "targets": sorted(c.meter_ids or ()),
                "mrid": c.event_id,
                "created_at": c.created_s,
            }
            if c.ramp_s is not None:
                row["ramp_s"] = c.ramp_s
            if c.cancelled_at_s is not None:
                row["cancelled_at"] = c.cancelled_at_s
            rows.append(row)
        held = []
        for d in defaults:
            row = {**_scenario_modes(d), "targets": sorted(d.meter_ids or ())}
            if d.set_grad_w is not None:
                row["set_grad_w_pct_per_s"] = d.set_grad_w
            held.append(row)
        return {"der_controls": rows, "der_defaults": held}
