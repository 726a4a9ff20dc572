"""PV and battery operation of meters under IEEE 2030.5 DER controls, sequential over intervals.

In each interval a meter operates under one or more settings (``DerModes``), each with a weight
from ``der.control_weights``: the default control (or none) and the events in force; its interval
averages (PV output, battery charge and discharge) are the weighted averages of its operation
under each, all from the same state of charge, so the state of charge stays within its limits and
the energy balance load − PV + charge − discharge = import − export holds exactly.

Operation under one setting, per meter, kW (interval averages; limits unset = unconstrained):

1. Off: ``connect`` or ``energize`` False → PV 0, battery 0.
2. PV: the uncontrolled AC output, capped at ``max_limit_pct`` % of the inverter's rating and at
   ``generation_limit_kw``.
3. Battery: the price policy (or the operator's override) asks for a charge or discharge
   (``battery.Bank.wants``); a ``fixed_kw`` / ``fixed_pct`` set-point replaces it (+ discharge /
   − charge; a % of the battery's rating). Then
   the limits: power and state of charge, charge ≤ ``load_limit_kw``.
4. Import limit (``import_limit_kw``): when import would exceed it, the battery charges less, then
   discharges more, within its power, its stored energy and the generation limit. The building's
   load is never curtailed: an import limit the battery cannot meet is left unmet.
5. Discharge ≤ ``generation_limit_kw`` − PV; a battery does not charge and discharge at once.
6. Export limit (``export_limit_kw``, at the connection point): when export would exceed it, the
   battery discharges less, then charges more (up to its power, room and the load limit), then PV
   is curtailed; so the battery stores surplus before any PV is spilled, and the limit is always
   met (with PV 0 and no discharge export is 0).

Limits are constraints and the set-point (or the price policy) the objective: a ``fixed_kw``
set-point is followed as far as the limits allow. An active control's ``fixed_kw`` beats the
operator's override. Curtailment is the uncontrolled PV output less the PV output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gtx_ray.model.battery import Bank, DispatchPolicy
from gtx_ray.model.der import DerControl, DerDefault, DerMeters, default_of


@dataclass(frozen=True)
class DerModes:
    """One setting per meter, arrays of shape (D,): on (bool, False = disconnected or not
    energised); pv_cap_kw, generation_limit_kw, load_limit_kw, import_limit_kw,
    export_limit_kw: kW, +inf where unset; fixed_kw: battery set-point, kW, NaN where unset."""

    on: np.ndarray
    pv_cap_kw: np.ndarray
    generation_limit_kw: np.ndarray
    load_limit_kw: np.ndarray
    import_limit_kw: np.ndarray
    export_limit_kw: np.ndarray
    fixed_kw: np.ndarray

    @staticmethod
    def of(
        control: DerControl | None, defaults: tuple[DerDefault, ...], meters: DerMeters
    ) -> DerModes:
        """The setting of ``control`` (None: no event), its unset modes taken from the default
        each meter follows (the first of ``defaults`` that targets it)."""
        n = len(meters)
        chosen = default_of(defaults, meters)

        def from_defaults(value_of, unset: float) -> np.ndarray:
            out = np.full(n, unset)
            for i, default in enumerate(defaults):
                value = value_of(default)
                if value is not None:
                    out = np.where(chosen == i, value, out)
            return out

        def mode(name: str, unset: float) -> np.ndarray:
            mine = getattr(control, name) if control is not None else None
            if mine is not None:
                return np.full(n, float(mine))
            return from_defaults(lambda d: _float(getattr(d, name)), unset)

        pct = mode("max_limit_pct", np.inf)
        if control is not None and _sets_fixed(control):
            fixed_kw = _fixed_kw(control, meters)
        else:
            fixed_kw = from_defaults(lambda d: _fixed_kw(d, meters), np.nan)
        return DerModes(
            on=(mode("connect", 1.0) != 0.0) & (mode("energize", 1.0) != 0.0),
            pv_cap_kw=np.where(np.isinf(pct), np.inf, pct / 100.0 * meters.inverter_kw),
            generation_limit_kw=mode("generation_limit_kw", np.inf),
            load_limit_kw=mode("load_limit_kw", np.inf),
            import_limit_kw=mode("import_limit_kw", np.inf),
            export_limit_kw=mode("export_limit_kw", np.inf),
            fixed_kw=fixed_kw,
        )


def _float(value: bool | float | None) -> float | None:
    return None if value is None else float(value)


def _fixed_kw(control: DerControl | DerDefault, meters: DerMeters) -> np.ndarray | None:
    """(D,) battery set-point, kW, of a control that sets opModFixedW (a signed % of each
    battery's rating, or kW), None when it does not."""
    if control.fixed_pct is not None:
        return control.fixed_pct / 100.0 * meters.battery_kw
    if control.fixed_kw is not None:
        return np.full(len(meters), float(control.fixed_kw))
    return None


def _sets_fixed(control: DerControl) -> bool:
    return control.fixed_kw is not None or control.fixed_pct is not None


@dataclass(frozen=True)
class DerFlows:
    """Per-interval operation of D meters, shape (T, D): PV AC output, kW; battery charge and
    discharge, kW (both may exceed 0 in an interval that mixes settings); state of charge at each
    interval's end, kWh."""

    pv_kw: np.ndarray
    charge_kw: np.ndarray
    discharge_kw: np.ndarray
    soc_kwh: np.ndarray


def operate(
    modes: DerModes,
    load_kw: np.ndarray,
    pv_free_kw: np.ndarray,
    soc_kwh: np.ndarray,
    bank: Bank,
    expensive: bool,
    cheap: bool,
    hours: float,
    policy: DispatchPolicy,
    override_kw: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(PV, charge, discharge), kW, (D,): one interval under one setting (module docstring).
    Without any mode set this is exactly ``battery.dispatch``'s interval."""
    pv = np.minimum(np.minimum(pv_free_kw, modes.pv_cap_kw), modes.generation_limit_kw)
    pv = np.where(modes.on, pv, 0.0)
    room_kw, stored_kw = bank.headroom(soc_kwh, hours)
    want_c, want_d = bank.wants(soc_kwh, load_kw - pv, expensive, cheap, hours, policy, override_kw)
    fixed = ~np.isnan(modes.fixed_kw)
    if fixed.any():
        want_d = np.where(fixed, np.maximum(modes.fixed_kw, 0.0), want_d)
        want_c = np.where(fixed, np.maximum(-modes.fixed_kw, 0.0), want_c)
    c = np.minimum(np.minimum(want_c, bank.power_kw), room_kw)
    d = np.minimum(np.minimum(want_d, bank.power_kw), stored_kw)
    c = np.minimum(c, modes.load_limit_kw)
    gen_room_kw = np.maximum(modes.generation_limit_kw - pv, 0.0)

    # Import limit: charge less, then discharge more.
    over = (load_kw - pv + c - d) - modes.import_limit_kw
    less_c = np.minimum(np.maximum(over, 0.0), c)
    c = c - less_c
    more_d = np.maximum(over - less_c, 0.0)
    d_max = np.minimum(np.minimum(bank.power_kw, stored_kw), gen_room_kw)
    d = np.where(more_d > 0.0, np.maximum(d, np.minimum(d + more_d, d_max)), d)
    d = np.minimum(d, gen_room_kw)
    d = np.where(c > 0.0, 0.0, d)

    # Export limit: discharge less, then charge more, then curtail PV.
    excess = (pv + d - load_kw - c) - modes.export_limit_kw
    less_d = np.minimum(np.maximum(excess, 0.0), d)
    d = d - less_d
    excess = excess - less_d
    c_max = np.minimum(np.minimum(bank.power_kw, room_kw), modes.load_limit_kw)
    more_c = np.where(excess > 0.0, np.minimum(excess, np.maximum(c_max - c, 0.0)), 0.0)
    c = c + more_c
    pv = pv - np.maximum(excess - more_c, 0.0)

    return pv, np.where(modes.on, c, 0.0), np.where(modes.on, d, 0.0)


MODE_BITS = {
    "disconnected": 1,
    "export_limit": 2,
    "import_limit": 4,
    "generation_limit": 8,
    "load_limit": 16,
    "fixed_w": 32,
    "max_lim_w": 64,
    "event": 128,
}
"""Bits of a reading's ``der_mode``: the modes of the setting that holds a DER meter for most of
an interval (``event``: a DERControl holds it, not the default control); 0: unconstrained."""


def mode_bits(modes: DerModes) -> np.ndarray:
    """(D,) int: the ``MODE_BITS`` of one setting (``event`` not included)."""
    b = MODE_BITS
    return (
        np.where(~modes.on, b["disconnected"], 0)
        | np.where(np.isfinite(modes.export_limit_kw), b["export_limit"], 0)
        | np.where(np.isfinite(modes.import_limit_kw), b["import_limit"], 0)
        | np.where(np.isfinite(modes.generation_limit_kw), b["generation_limit"], 0)
        | np.where(np.isfinite(modes.load_limit_kw), b["load_limit"], 0)
        | np.where(np.isfinite(modes.fixed_kw), b["fixed_w"], 0)
        | np.where(np.isfinite(modes.pv_cap_kw), b["max_lim_w"], 0)
    )


def modes_in_force(settings: tuple[tuple[np.ndarray, DerModes], ...]) -> np.ndarray:
    """(T, D) int: the ``MODE_BITS`` of the setting with the largest weight in each interval (the
    default, first, on a tie), with ``event`` when that is an event. ``settings`` as
    ``der_dispatch`` takes them."""
    weights = np.stack([w for w, _ in settings])  # (S, T, D)
    winner = np.argmax(weights, axis=0)  # (T, D)
    bits = np.stack([mode_bits(m) for _, m in settings])  # (S, D)
    chosen = np.take_along_axis(bits, winner, axis=0)  # (T, D): bits[winner[t, d], d]
    return chosen | np.where(winner > 0, MODE_BITS["event"], 0)


def der_dispatch(
    settings: tuple[tuple[np.ndarray, DerModes], ...],
    load_kw: np.ndarray,
    pv_free_kw: np.ndarray,
    soc_kwh: np.ndarray,
    bank: Bank,
    expensive: np.ndarray,
    cheap: np.ndarray,
    interval_s: int,
    policy: DispatchPolicy,
    override_kw: np.ndarray | None = None,
) -> DerFlows:
    """Step D meters through T intervals under weighted settings.

    settings: (weight (T, D), modes) pairs, the default (or no control) first; weights in each
    interval sum to 1. load_kw, pv_free_kw: (T, D) demand and uncontrolled PV output, kW;
    soc_kwh: (D,) state of charge at the window start, kWh (0 without a battery; such meters have
    a bank of 0 kWh and 0 kW); expensive, cheap: (T,) bool price flags; override_kw: (D,) operator
    battery command, kW, NaN = the policy.
    """
    n_intervals, n_meters = load_kw.shape
    hours = interval_s / 3600.0
    pv_out = np.zeros((n_intervals, n_meters))
    charge = np.zeros((n_intervals, n_meters))
    discharge = np.zeros((n_intervals, n_meters))
    soc_out = np.zeros((n_intervals, n_meters))
    soc = np.clip(np.asarray(soc_kwh, dtype=np.float64), 0.0, bank.capacity_kwh)
    for t in range(n_intervals):
        pv, c, d = np.zeros(n_meters), np.zeros(n_meters), np.zeros(n_meters)
        for weight, modes in settings:
            w = weight[t]
            if not w.any():
                continue
            pv_s, c_s, d_s = operate(
                modes,
                load_kw[t],
                pv_free_kw[t],
                soc,
                bank,
                expensive[t],
                cheap[t],
                hours,
                policy,
                override_kw,
            )
            pv, c, d = pv + w * pv_s, c + w * c_s, d + w * d_s
        pv = np.minimum(pv, pv_free_kw[t])
        soc = bank.settle(soc, c, d, hours)
        pv_out[t], charge[t], discharge[t], soc_out[t] = pv, c, d, soc
    return DerFlows(pv_kw=pv_out, charge_kw=charge, discharge_kw=discharge, soc_kwh=soc_out)
