"""What a meter mirrors and its wire form: the quantities, their ReadingTypes and SI ↔ wire values.

Values on the wire (``wire_values``): every ReadingType has ``powerOfTenMultiplier`` -3, so a
Reading's integer ``value`` is the SI quantity in thousandths, rounded half to even:
``value = rint(x_SI × 1000)`` and ``x_SI = value × 10^-3`` to within 0.0005 (0.5 mW, 0.5 mV,
0.5 mA, 0.0005 of cos θ, 0.5 mWh) — 6 decimals of the Arrow schema's kW and kWh, 3 of its V, A
and power factor. Int48 bounds the values to ±1.4×10^11 units (140 GW, 140 GWh); rows outside or
not finite are rejected (counted), never posted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gtx_ray.ieee2030_5.codec import INT48_MAX
from gtx_ray.ieee2030_5.models import ReadingType

POWER_OF_TEN = -3
"""powerOfTenMultiplier of every ReadingType: values are thousandths of the SI unit."""

# ReadingType codes (IEEE 2030.5-2018 schema, from IEC 61968-9).
ACC_SUMMATION = 9
"""accumulationBehaviour 9 Summation: a register that accumulates over time (our Wh registers).
(3 "Cumulative" is the demand-reset accumulation of the schema's text, not an energy register.)"""
ACC_INSTANTANEOUS = 12
"""accumulationBehaviour 12 Instantaneous: a value at a point; with dataQualifier 2 (Average) and
intervalLength it is the interval average the model produces (the convention of CSIP/CSIP-AUS
site mirrors)."""
COMMODITY_ELECTRICITY_SECONDARY = 1
QUALIFIER_AVERAGE = 2
FLOW_NOT_APPLICABLE, FLOW_FORWARD, FLOW_REVERSE = 0, 1, 19
KIND_NOT_APPLICABLE, KIND_ENERGY, KIND_POWER = 0, 12, 37
UOM_A, UOM_V, UOM_W, UOM_COS_THETA, UOM_WH = 5, 29, 38, 65, 72


@dataclass(frozen=True)
class Quantity:
    """One mirrored quantity: ``key`` (used in mRIDs and tests), a description (≤ 32 chars) and
    its ReadingType (intervalLength is filled in per client with the simulation interval)."""

    key: str
    description: str
    reading_type: ReadingType


def _rt(acc: int, uom: int, kind: int, flow: int, qualifier: int | None) -> ReadingType:
    return ReadingType(
        accumulation_behaviour=acc,
        commodity=COMMODITY_ELECTRICITY_SECONDARY,
        data_qualifier=qualifier,
        flow_direction=flow,
        kind=kind,
        power_of_ten_multiplier=POWER_OF_TEN,
        uom=uom,
    )


QUANTITIES: tuple[Quantity, ...] = (
    # Grid real power: energy_consumed − energy_generated + battery_power (kW → W), + import,
    # − export ("forward" with a sign, as site mirrors do).
    Quantity(
        "power",
        "Grid real power W avg",
        _rt(ACC_INSTANTANEOUS, UOM_W, KIND_POWER, FLOW_FORWARD, QUALIFIER_AVERAGE),
    ),
    Quantity(
        "voltage",
        "Voltage V avg",
        _rt(ACC_INSTANTANEOUS, UOM_V, KIND_NOT_APPLICABLE, FLOW_NOT_APPLICABLE, QUALIFIER_AVERAGE),
    ),
    Quantity(
        "current",
        "Current A avg",
        _rt(ACC_INSTANTANEOUS, UOM_A, KIND_NOT_APPLICABLE, FLOW_NOT_APPLICABLE, QUALIFIER_AVERAGE),
    ),
    Quantity(
        "power_factor",
        "Power factor cos theta avg",
        _rt(
            ACC_INSTANTANEOUS,
            UOM_COS_THETA,
            KIND_NOT_APPLICABLE,
            FLOW_NOT_APPLICABLE,
            QUALIFIER_AVERAGE,
        ),
    ),
    # Registers: value at the end of the Reading's timePeriod (the Arrow row's interval).
    Quantity(
        "import_wh",
        "Energy import register Wh",
        _rt(ACC_SUMMATION, UOM_WH, KIND_ENERGY, FLOW_FORWARD, None),
    ),
    Quantity(
        "export_wh",
        "Energy export register Wh",
        _rt(ACC_SUMMATION, UOM_WH, KIND_ENERGY, FLOW_REVERSE, None),
    ),
)
QUANTITY_KEYS = tuple(q.key for q in QUANTITIES)

PendingReading = tuple[int, tuple[int, ...]]
"""A queued interval: (start, epoch s; wire values in ``QUANTITIES`` order)."""


def si_values(batch: pa.RecordBatch) -> np.ndarray:
    """The quantities of ``QUANTITIES`` in SI units (W, V, A, cos θ, Wh, Wh), shape (rows, 6).

    Power is grid power = energy_consumed − energy_generated + battery_power (null → 0) in
    kW × 1000; registers are kWh × 1000.
    """

    def col(name: str) -> np.ndarray:
        column = batch.column(name)
        if column.null_count:
            column = pc.fill_null(column, 0.0)
        return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)

    grid_kw = col("energy_consumed") - col("energy_generated") + col("battery_power")
    return np.column_stack(
        [
            grid_kw * 1000.0,
            col("voltage"),
            col("current"),
            col("power_factor"),
            col("import_register_kwh") * 1000.0,
            col("export_register_kwh") * 1000.0,
        ]
    )


def to_wire(si: np.ndarray, power_of_ten: int = POWER_OF_TEN) -> tuple[np.ndarray, np.ndarray]:
    """Integer wire values ``rint(si / 10^power_of_ten)`` (round half to even) and a mask of the
    rows whose every value is finite and fits the schema's Int48."""
    scaled = np.rint(np.asarray(si, np.float64) * 10.0 ** (-power_of_ten))
    ok = np.isfinite(scaled) & (np.abs(scaled) < INT48_MAX)
    if scaled.ndim == 2:
        ok = ok.all(axis=1)
    out = np.where(np.isfinite(scaled), scaled, 0.0)
    return out.astype(np.int64), ok


def wire_values(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 6) int64 values as posted for each row of a reading batch, and the valid-row mask."""
    return to_wire(si_values(batch))


def from_wire(value: int, power_of_ten: int = POWER_OF_TEN) -> float:
    """The SI value of a wire value."""
    return value * 10.0**power_of_ten
