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


@dataclass(frozen=True)
class Bank:
    """B batteries' fixed limits for one policy, arrays of shape (B,).

    capacity_kwh; power_kw: inverter limit, both directions, kW; eta: one-way efficiency
    (√ round-trip, 0–1); floor_kwh / ceiling_kwh: the reserve and the maximum state of charge, kWh;
    target_kwh: the state of charge cheap-interval grid charging aims at, kWh.
    """

    capacity_kwh: np.ndarray
    power_kw: np.ndarray
    eta: np.ndarray
    floor_kwh: np.ndarray
    ceiling_kwh: np.ndarray
    target_kwh: np.ndarray

    @staticmethod
    def of(
        capacity_kwh: np.ndarray,
        power_kw: np.ndarray,
        round_trip_efficiency: np.ndarray,
        policy: DispatchPolicy,
    ) -> Bank:
        ceiling_kwh = capacity_kwh * (policy.max_soc_pct / 100.0)
        return Bank(
            capacity_kwh=capacity_kwh,
            power_kw=power_kw,
            eta=np.sqrt(round_trip_efficiency),
            floor_kwh=capacity_kwh * (policy.reserve_pct / 100.0),
            ceiling_kwh=ceiling_kwh,
            target_kwh=np.minimum(
                capacity_kwh * (policy.grid_charge_target_pct / 100.0), ceiling_kwh
            ),
        )

    def headroom(self, soc_kwh: np.ndarray, hours: float) -> tuple[np.ndarray, np.ndarray]:
        """(room, stored), kW: the AC charge power that fills the battery to its ceiling and the
        AC discharge power that empties it to its floor within one interval of ``hours``."""
        room_kw = np.maximum(self.ceiling_kwh - soc_kwh, 0.0) / (self.eta * hours)
        stored_kw = np.maximum(soc_kwh - self.floor_kwh, 0.0) * self.eta / hours
        return room_kw, stored_kw

    def wants(
        self,
        soc_kwh: np.ndarray,
        net_load_kw: np.ndarray,
        expensive: bool,
        cheap: bool,
        hours: float,
        policy: DispatchPolicy,
        override_kw: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(charge, discharge), kW: what the policy (or the override) asks of each battery in one
        interval, before the power and state-of-charge limits."""
        want_charge = np.maximum(-net_load_kw, 0.0)
        if policy.grid_charge_off_peak and cheap:
            want_charge = np.maximum(
                want_charge, np.maximum(self.target_kwh - soc_kwh, 0.0) / (self.eta * hours)
            )
        want_discharge = np.maximum(net_load_kw, 0.0) if expensive else np.zeros(len(soc_kwh))
        if override_kw is not None:
            steer = ~np.isnan(override_kw)
            want_discharge = np.where(steer, np.maximum(override_kw, 0.0), want_discharge)
            want_charge = np.where(steer, np.maximum(-override_kw, 0.0), want_charge)
        return want_charge, want_discharge

    def settle(
        self, soc_kwh: np.ndarray, charge_kw: np.ndarray, discharge_kw: np.ndarray, hours: float
    ) -> np.ndarray:
        """State of charge after one interval of these AC powers, kWh."""
        return np.clip(
            soc_kwh + (charge_kw * self.eta - discharge_kw / self.eta) * hours,
            0.0,
            self.capacity_kwh,
        )


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
    bank = Bank.of(capacity_kwh, power_kw, round_trip_efficiency, policy)
    charge = np.zeros((n_intervals, n_batteries))
    discharge = np.zeros((n_intervals, n_batteries))
    soc_out = np.zeros((n_intervals, n_batteries))
    soc = np.clip(np.asarray(soc_kwh, dtype=np.float64), 0.0, capacity_kwh)

    for t in range(n_intervals):
        room_kw, stored_kw = bank.headroom(soc, hours)
        want_charge, want_discharge = bank.wants(
            soc, net_load_kw[t], expensive[t], cheap[t], hours, policy, override_kw
        )
        c = np.minimum(np.minimum(want_charge, power_kw), room_kw)
        d = np.minimum(np.minimum(want_discharge, power_kw), stored_kw)
        d = np.where(c > 0.0, 0.0, d)
        soc = bank.settle(soc, c, d, hours)
        charge[t], discharge[t], soc_out[t] = c, d, soc
    return BatteryFlows(charge_kw=charge, discharge_kw=discharge, soc_kwh=soc_out)
