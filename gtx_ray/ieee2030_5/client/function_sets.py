"""The event function sets a simulated meter polls, and what they teach its model.

``MeterFunctionSets`` makes, for each meter of an actor, a demand-response, a pricing and a
messaging poller (``pollers``, the factory ``MeterClients`` takes) and turns what they learned
into the model's inputs (``model_inputs``): each EndDeviceControl becomes a ``LoadControl``
for the meters that received it, each TimeTariffInterval a ``PriceInterval``. Events the run
already knows from its scenario (same mRID) are not added twice. ``advance`` tells the
demand-response pollers how far simulated time has got, for the Responses they owe.
"""

from __future__ import annotations

from collections.abc import Sequence

from gtx_ray.ieee2030_5.client.drlc import DemandResponsePoller
from gtx_ray.ieee2030_5.client.messaging import MessagingPoller
from gtx_ray.ieee2030_5.client.pollers import FunctionSetPoller
from gtx_ray.ieee2030_5.client.pricing import PricingPoller
from gtx_ray.ieee2030_5.events import EndDeviceControl, mrid_hex
from gtx_ray.model.controls import LoadControl
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.tariff import PriceInterval


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


class MeterFunctionSets:
    """The pollers of an actor's meters. ``categories``: meter id → DeviceCategoryType bits."""

    def __init__(self, categories: dict[str, int]) -> None:
        self.categories = categories
        self.drlc: dict[str, DemandResponsePoller] = {}
        self.pricing: dict[str, PricingPoller] = {}
        self.messaging: dict[str, MessagingPoller] = {}

    def pollers(self, meter_id: str) -> Sequence[FunctionSetPoller]:
        """The factory for ``MeterClients(pollers=...)``: one of each per meter."""
        drlc = self.drlc[meter_id] = DemandResponsePoller(self.categories[meter_id])
        pricing = self.pricing[meter_id] = PricingPoller()
        messaging = self.messaging[meter_id] = MessagingPoller(meter_id)
        return [drlc, pricing, messaging]

    def advance(self, sim_now_s: int) -> None:
        for poller in self.drlc.values():
            poller.advance(sim_now_s)

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
        if not learned and not prices:
            return base
        return ModelInputs(
            load_controls=base.load_controls + learned,
            tariffs=base.tariffs,
            prices=base.prices + tuple(prices[s] for s in sorted(prices)),
        )

    def learned_scenario(self) -> dict:
        """What the meters learned, as a scenario file (``gtx_ray.scenario``): each event with
        its mRID, the meters that received it as targets and, when it was cancelled or
        superseded, ``cancelled_at``; the import prices as ``prices``. Replaying it with
        ``--scenario`` gives the model the same inputs."""
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
        }
