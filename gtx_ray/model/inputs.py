"""Time-stamped inputs to a window besides time itself: demand-response events, prices and DER
controls.

A run is a pure function of (seed, config, inputs): the same inputs give bit-identical readings in
real time, accelerated or in a backfill, and however the run is cut into windows. Inputs carry
their own times, so an event or a tariff change takes effect at its time, not when it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

from gtx_ray.model.controls import LoadControl
from gtx_ray.model.der import DerControl, DerDefault
from gtx_ray.model.tariff import PriceInterval, TimeOfUseTariff


@dataclass(frozen=True)
class ModelInputs:
    """load_controls: demand-response events (any order); tariffs: time-of-use tariffs, each in
    force from its ``effective_from_s`` (the site's configured tariff applies before all of them);
    prices: explicit price intervals that override the tariffs while they last; der_controls: IEEE
    2030.5 DERControl events for meters with PV and/or a battery (any order); der_defaults: the
    DefaultDERControls, in force when no event is; each meter follows the first that targets it
    (none: uncontrolled)."""

    load_controls: tuple[LoadControl, ...] = ()
    tariffs: tuple[TimeOfUseTariff, ...] = ()
    prices: tuple[PriceInterval, ...] = ()
    der_controls: tuple[DerControl, ...] = ()
    der_defaults: tuple[DerDefault, ...] = ()
