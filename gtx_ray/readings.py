"""The one Arrow schema of a meter reading, used from generation to storage.

A reading covers the interval [timestamp, timestamp + interval). Powers are averages over the
interval in kW, so an interval's energy is exactly power × interval: ``energy_import_kwh`` −
``energy_export_kwh`` = (``energy_consumed`` − ``energy_generated`` + ``battery_power``) × hours.

``energy_consumed`` is the demand the meter records: the building's load less what a demand-response
event shed (``shed_kw``), plus any rebound after an event. ``energy_generated`` is the PV output
after any curtailment by DER controls (``curtailed_kw``; the PV available is their sum). Prices
are THB/kWh, costs THB.
"""

from __future__ import annotations

import pyarrow as pa

TAG_COLUMNS = ("meter_id", "building", "floor", "meter_type")

# (name, nullable, description with unit) for every float field, in schema order.
FIELD_DOCS: tuple[tuple[str, bool, str], ...] = (
    ("energy_consumed", False, "building demand (load), kW average over the interval"),
    (
        "energy_generated",
        False,
        "on-site generation (PV AC output after any curtailment), kW; 0 for consumers",
    ),
    ("solar_generation", True, "PV AC output, kW; null for meters without PV"),
    ("grid_feed_in", False, "power exported to the grid, kW"),
    ("battery_power", True, "battery AC power, kW, + charging / − discharging; null w/o battery"),
    ("battery_level", True, "battery state of charge at the interval's end, %; null w/o battery"),
    ("voltage", False, "RMS voltage, V (phase voltage 1-phase, line-to-line 3-phase)"),
    ("current", False, "RMS line current through the meter, A"),
    ("power_factor", False, "displacement power factor, 0–1"),
    ("frequency", False, "grid frequency, Hz"),
    ("temperature", False, "outdoor air temperature at the site, °C"),
    ("humidity", False, "outdoor relative humidity at the site, %"),
    ("energy_import_kwh", False, "energy imported from the grid in this interval, kWh"),
    ("energy_export_kwh", False, "energy exported to the grid in this interval, kWh"),
    ("import_register_kwh", False, "cumulative import register at the interval's end, kWh"),
    ("export_register_kwh", False, "cumulative export register at the interval's end, kWh"),
    (
        "shed_kw",
        False,
        "demand reduced by demand-response load control in this interval, kW average; 0 when "
        "none, never negative (a rebound after an event shows in energy_consumed, not here)",
    ),
    (
        "price_thb_per_kwh",
        False,
        "import price in force (tariff or price interval), THB/kWh incl. Ft",
    ),
    ("import_cost_thb", False, "cost of this interval's import: energy_import_kwh × price, THB"),
    (
        "export_credit_thb",
        False,
        "credit for this interval's export: energy_export_kwh × export price, THB",
    ),
    (
        "curtailed_kw",
        False,
        "PV output that IEEE 2030.5 DER controls curtailed in this interval (export, generation "
        "or max-power limit, disconnect), kW average; 0 when none, never negative",
    ),
    (
        "der_mode",
        True,
        "IEEE 2030.5 DER control modes holding the meter for most of the interval, a bitmask: "
        "1 disconnected, 2 export limit, 4 import limit, 8 generation limit, 16 load limit, "
        "32 fixed W, 64 max W; +128 when a DERControl (not the default) holds it; 0 none; "
        "null for meters without PV or a battery",
    ),
)
FIELD_COLUMNS = tuple(name for name, _, _ in FIELD_DOCS)

READING_SCHEMA = pa.schema(
    [
        pa.field(
            "timestamp",
            pa.timestamp("s", tz="UTC"),
            nullable=False,
            metadata={"doc": "start of the interval the reading covers, UTC"},
        ),
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("building", pa.string(), nullable=False),
        pa.field("floor", pa.int32(), nullable=False),
        pa.field(
            "meter_type",
            pa.string(),
            nullable=False,
            metadata={"doc": "consumer | prosumer | hybrid_prosumer"},
        ),
    ]
    + [
        pa.field(name, pa.float64(), nullable=nullable, metadata={"doc": doc})
        for name, nullable, doc in FIELD_DOCS
    ]
)
