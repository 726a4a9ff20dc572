"""Behind-the-meter battery dispatch, vectorized over batteries, sequential over intervals.

Policy (price-driven self-consumption, the usual setting for a Thai campus on MEA's TOU rate):
1. Surplus PV (PV above the building's load) always charges the battery.
2. In expensive intervals (``tariff.prices``: import price above the midpoint of the day's lowest
   and highest) the battery discharges to cover the building's net load.
3. Optionally (``grid_charge_off_peak``), in cheap intervals (at the day's lowest import price) the
   battery charges from the grid up to a target state of charge (off-peak energy at ~2.6 THB/kWh
   displaces on-peak energy at ~4.2 THB/kWh, which pays even after a ~10 % round-trip loss).
Under the default TOU tariff "expensive" is the on-peak window and "cheap" the rest; a moved
on-peak window, a new tariff or explicit price intervals move the dispatch with them. An operator
or demand-response signal steers it through ``override_kw`` (positive = discharge request,
negative = charge request, NaN = follow the policy).

Powers are AC-side averages over the interval, kW; the state of charge is stored energy, kWh.
The round-trip efficiency is split evenly between charging and discharging (√η each way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DispatchPolicy:
    """Battery dispatch settings (percentages of usable capacity, 0–100)."""

    reserve_pct: float = 10.0  # never discharge below this state of charge
    max_soc_pct: float = 100.0  # never charge above this state of charge
    grid_charge_off_peak: bool = True  # charge from the grid in cheap intervals
    grid_charge_target_pct: float = 90.0


@dataclass(frozen=True)
class BatteryFlows:
    """Per-interval battery powers and end-of-interval state of charge, shape (T, B)."""

    charge_kw: np.ndarray
    discharge_kw: np.ndarray
    soc_kwh: np.ndarray


def dispatch(
    soc_kwh: np.ndarray,
    capacity_kwh: np.ndarray,
    power_kw: np.ndarray,
    round_trip_efficiency: np.ndarray,
    net_load_kw: np.ndarray,
    expensive: np.ndarray,
    cheap: np.ndarray,
    interval_s: float,
    policy: DispatchPolicy,
    override_kw: np.ndarray | None = None,
) -> BatteryFlows:
    """Step B batteries through T intervals.

    soc_kwh: state of charge at the window start (B,), kWh; capacity_kwh, power_kw (inverter limit,
    both directions), round_trip_efficiency (0–1): (B,); net_load_kw: load minus PV per interval
    (T, B), kW; expensive, cheap: (T,) bool (see the module docstring). Returns charge and
    discharge powers that never both exceed zero, respect the power limit and keep the state of
    charge inside [reserve, max] (and so inside [0, capacity]).
    """
    n_intervals, n_batteries = net_load_kw.shape
    hours = interval_s / 3600.0
    eta = np.sqrt(round_trip_efficiency)
    floor_kwh = capacity_kwh * (policy.reserve_pct / 100.0)
    ceiling_kwh = capacity_kwh * (policy.max_soc_pct / 100.0)
    target_kwh = np.minimum(capacity_kwh * (policy.grid_charge_target_pct / 100.0), ceiling_kwh)
    charge = np.zeros((n_intervals, n_batteries))
    discharge = np.zeros((n_intervals, n_batteries))
    soc_out = np.zeros((n_intervals, n_batteries))
    soc = np.clip(np.asarray(soc_kwh, dtype=np.float64), 0.0, capacity_kwh)

    for t in range(n_intervals):
        net = net_load_kw[t]
        room_kw = np.maximum(ceiling_kwh - soc, 0.0) / (eta * hours)
        stored_kw = np.maximum(soc - floor_kwh, 0.0) * eta / hours
        want_charge = np.maximum(-net, 0.0)
        if policy.grid_charge_off_peak and cheap[t]:
            want_charge = np.maximum(want_charge, np.maximum(target_kwh - soc, 0.0) / (eta * hours))
        want_discharge = np.maximum(net, 0.0) if expensive[t] else np.zeros(n_batteries)
        if override_kw is not None:
            steer = ~np.isnan(override_kw)
            want_discharge = np.where(steer, np.maximum(override_kw, 0.0), want_discharge)
            want_charge = np.where(steer, np.maximum(-override_kw, 0.0), want_charge)
        c = np.minimum(np.minimum(want_charge, power_kw), room_kw)
        d = np.minimum(np.minimum(want_discharge, power_kw), stored_kw)
        d = np.where(c > 0.0, 0.0, d)
        soc = np.clip(soc + (c * eta - d / eta) * hours, 0.0, capacity_kwh)
        charge[t], discharge[t], soc_out[t] = c, d, soc
    return BatteryFlows(charge_kw=charge, discharge_kw=discharge, soc_kwh=soc_out)
