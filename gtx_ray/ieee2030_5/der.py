"""Value types of the DER function set both sides share: DERControls (with their
DERControlBase modes, including the CSIP-AUS dynamic operating envelopes), the
DefaultDERControl, and what a device reports about its DER (DERCapability, DERSettings,
DERStatus, DERAvailability). Plain frozen dataclasses; the server stores and renders them, the
meters' side parses documents into them.

Units (what the fields hold; the wire form is in brackets):
- power kW [ActivePower / ApparentPower / ReactivePower: value × 10^multiplier W or VA or var];
  energy kWh [WattHour: value × 10^multiplier Wh];
- percentages % [PerCent / SignedPerCent: hundredths of a percent]; times epoch s; durations s;
- ``ramp_s`` s [rampTms: hundredths of a second]; ``set_grad_w_pct_per_s`` %/s of setMaxW
  [setGradW: hundredths of a percent per second].
- ``fixed_w_pct`` (opModFixedW, IEEE 2030.5-2018): a signed setpoint in % of the DER's rated
  power: positive is discharge/generation as a % of setMaxW (setMaxDischargeRateW for storage),
  negative is charge as a % of setMaxChargeRateW. ``max_lim_w_pct`` (opModMaxLimW): the largest
  active power output as a % of setMaxW.
- The CSIP-AUS limits (namespace ``CSIPAUS_NS``) are at the connection point (export, import)
  or of the device itself (generation, load), kW, never negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from gtx_ray.ieee2030_5.events import (
    CATEGORY_PV_AND_STORAGE,
    CATEGORY_PV_SYSTEM,
    RESPOND_RECEIVED,
    RESPOND_SPECIFIC,
    TargetedEvent,
)

CSIPAUS_NS = "https://csipaus.org/ns"
"""Namespace of the CSIP-AUS extensions (opModExpLimW ..., doeModesSupported/Enabled)."""

# DeviceCategoryType bits of DER (IEEE 2030.5-2018)
CATEGORY_OTHER_STORAGE = 1 << 25
CATEGORY_DER = CATEGORY_PV_SYSTEM | CATEGORY_PV_AND_STORAGE | CATEGORY_OTHER_STORAGE
"""The default deviceCategory of a DERControl: PV, PV and storage, other storage."""

# DERControlType bits (modesSupported / modesEnabled)
MODE_CHARGE = 1 << 0
MODE_DISCHARGE = 1 << 1
MODE_CONNECT = 1 << 2
MODE_ENERGIZE = 1 << 3
MODE_FIXED_W = 1 << 7
MODE_MAX_LIM_W = 1 << 20

# DOEControlType bits (CSIP-AUS doeModesSupported / doeModesEnabled)
DOE_EXP_LIM_W = 1 << 0
DOE_IMP_LIM_W = 1 << 1
DOE_GEN_LIM_W = 1 << 2
DOE_LOAD_LIM_W = 1 << 3

# DERType
DER_TYPE_PV = 4
DER_TYPE_OTHER_STORAGE = 80
DER_TYPE_PV_AND_STORAGE = 83

INT16_MAX = 32_767
UINT16_MAX = 65_535


def to_power(kw: float, signed: bool = True) -> tuple[int, int]:
    """``kw`` as the wire's (value, power-of-ten multiplier) in W: the smallest multiplier ≥ 0
    whose value fits Int16 (``signed``) or UInt16. ValueError when it cannot be written."""
    if not math.isfinite(kw) or (not signed and kw < 0):
        raise ValueError(f"{kw} kW cannot be written as a power")
    watts = kw * 1000.0
    limit = INT16_MAX if signed else UINT16_MAX
    for multiplier in range(0, 10):
        value = round(watts / 10**multiplier)
        if abs(value) <= limit:
            return value, multiplier
    raise ValueError(f"{kw} kW is too large to be written as a power")


def from_power(value: int, multiplier: int) -> float:
    """(value, power-of-ten multiplier) in W or Wh as kW or kWh."""
    return value * 10.0**multiplier / 1000.0


@dataclass(frozen=True, slots=True)
class DerControlBase:
    """The modes a DERControl (or the DefaultDERControl) asks for; None: not asked.

    connect: opModConnect (False: disconnect, galvanic isolation). energize: opModEnergize.
    fixed_w_pct: opModFixedW, -100..100 % (see the module docstring for the reference).
    max_lim_w_pct: opModMaxLimW, 0..100 % of setMaxW. ramp_s: rampTms, 0..655.35 s.
    export_limit_kw / import_limit_kw: csipaus:opModExpLimW / opModImpLimW at the connection
    point; generation_limit_kw / load_limit_kw: csipaus:opModGenLimW / opModLoadLimW of the
    device (discharge / charge), kW ≥ 0.
    """

    connect: bool | None = None
    energize: bool | None = None
    fixed_w_pct: float | None = None
    max_lim_w_pct: float | None = None
    ramp_s: float | None = None
    export_limit_kw: float | None = None
    import_limit_kw: float | None = None
    generation_limit_kw: float | None = None
    load_limit_kw: float | None = None

    def is_empty(self) -> bool:
        """True when no mode is asked for (``ramp_s`` alone is not a mode)."""
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "ramp_s")


@dataclass(frozen=True, slots=True)
class DerControl(TargetedEvent):
    """One DERControl of a DERProgram (an event, like ``events.EndDeviceControl``).

    randomize_start_s/randomize_duration_s: -3600..3600 s. device_category: DeviceCategoryType
    bits. targets: LFDIs it is addressed to (None: every device). response_required: RESPOND_*
    bits. cancelled_s / superseded_s: when that happened (epoch s).
    """

    id: int
    program_id: int
    mrid: int
    description: str
    creation_time: int
    start: int
    duration: int
    base: DerControlBase
    device_category: int = CATEGORY_DER
    randomize_start_s: int = 0
    randomize_duration_s: int = 0
    targets: frozenset[str] | None = None
    response_required: int = RESPOND_RECEIVED | RESPOND_SPECIFIC
    cancelled_s: int | None = None
    cancel_randomized: bool = False
    superseded_s: int | None = None


@dataclass(frozen=True, slots=True)
class DefaultDerControl:
    """What a DER does when no DERControl is active: ``base`` and setGradW (%/s of setMaxW;
    None: not set). ``updated``: when the operator set it (epoch s)."""

    program_id: int
    mrid: int
    description: str
    base: DerControlBase
    set_grad_w_pct_per_s: float | None = None
    updated: int = 0


@dataclass(frozen=True, slots=True)
class DerCapability:
    """DERCapability: what the DER can do (ratings, kW / kVA / kWh).

    modes_supported: DERControlType bits (MODE_*); der_type: DERType (DER_TYPE_*);
    doe_modes_supported: CSIP-AUS DOEControlType bits (DOE_*; 0 when the device says none).
    """

    modes_supported: int
    der_type: int
    rated_w_kw: float
    rated_va_kva: float | None = None
    rated_wh_kwh: float | None = None
    max_charge_rate_kw: float | None = None
    max_discharge_rate_kw: float | None = None
    doe_modes_supported: int = 0


@dataclass(frozen=True, slots=True)
class DerSettings:
    """DERSettings: how the DER is set up now. updated_time: epoch s; set_max_w_kw: setMaxW;
    set_grad_w_pct_per_s: setGradW (%/s of setMaxW); modes_enabled: DERControlType bits;
    doe_modes_enabled: CSIP-AUS DOEControlType bits."""

    updated_time: int
    set_max_w_kw: float
    set_grad_w_pct_per_s: float
    modes_enabled: int | None = None
    set_max_va_kva: float | None = None
    set_max_wh_kwh: float | None = None
    set_max_charge_rate_kw: float | None = None
    set_max_discharge_rate_kw: float | None = None
    doe_modes_enabled: int | None = None


@dataclass(frozen=True, slots=True)
class DerStatus:
    """DERStatus at ``reading_time`` (epoch s). Connect statuses are ConnectStatusType bits
    (0 connected, 1 available, 2 operating, 3 test, 4 fault); inverter_status,
    operational_mode_status and storage_mode_status are the standard's codes;
    state_of_charge_pct in %. Each status's own dateTime is taken to be ``reading_time``."""

    reading_time: int
    gen_connect_status: int | None = None
    inverter_status: int | None = None
    operational_mode_status: int | None = None
    state_of_charge_pct: float | None = None
    storage_mode_status: int | None = None
    stor_connect_status: int | None = None
    alarm_status: int | None = None


@dataclass(frozen=True, slots=True)
class DerAvailability:
    """DERAvailability at ``reading_time`` (epoch s): how long (s) it can deliver, reserves
    (%), the active (kW) and reactive (kvar) power available now."""

    reading_time: int
    availability_duration_s: int | None = None
    max_charge_duration_s: int | None = None
    reserve_charge_pct: float | None = None
    reserve_pct: float | None = None
    stat_w_avail_kw: float | None = None
    stat_var_avail_kvar: float | None = None
