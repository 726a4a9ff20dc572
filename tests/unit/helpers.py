"""Helpers for the model tests: run a model over long spans and check the physics."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel, MeterState

DAY_S = 86_400


def run(
    model: MeterModel,
    start_s: int,
    n_intervals: int,
    window: int,
    inputs: ModelInputs | None = None,
) -> tuple[pa.Table, MeterState]:
    """Step ``n_intervals`` in windows of ``window`` intervals (with ``inputs``); return the
    readings and state."""
    state = model.initial_state(start_s)
    batches = []
    done = 0
    while done < n_intervals:
        n = min(window, n_intervals - done)
        result = model.step(state, n, inputs=inputs)
        batches.append(result.batch)
        state = result.state
        done += n
    return pa.Table.from_batches(batches), state


def column(table: pa.Table, name: str, n_meters: int) -> np.ndarray:
    """A float column as an array of shape (T, M) (nulls become NaN)."""
    values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
    return values.reshape(-1, n_meters)


def assert_physics(table: pa.Table, model: MeterModel, interval_s: int) -> None:
    """The invariants every reading must satisfy (DESIGN.md §3.5)."""
    m = model.meters
    n = len(m)
    hours = interval_s / 3600.0
    load = column(table, "energy_consumed", n)
    pv = column(table, "energy_generated", n)
    battery = np.nan_to_num(column(table, "battery_power", n))
    imp = column(table, "energy_import_kwh", n)
    exp = column(table, "energy_export_kwh", n)

    # Energy balance each interval: consumption − generation + charge − discharge = import − export.
    lhs = (load - pv + battery) * hours
    np.testing.assert_allclose(lhs, imp - exp, rtol=0, atol=1e-9 * max(1.0, np.abs(lhs).max()))
    assert np.all(imp >= 0) and np.all(exp >= 0)
    assert not np.any((imp > 0) & (exp > 0)), "import and export in the same interval"
    np.testing.assert_allclose(column(table, "grid_feed_in", n) * hours, exp, rtol=1e-12, atol=0)

    for register in ("import_register_kwh", "export_register_kwh"):
        values = column(table, register, n)
        assert np.all(np.diff(values, axis=0) >= 0), f"{register} decreased"
    np.testing.assert_allclose(
        np.diff(column(table, "import_register_kwh", n), axis=0), imp[1:], rtol=1e-9, atol=1e-6
    )

    level = column(table, "battery_level", n)
    has_battery = m.battery_kwh > 0
    assert np.all(np.isnan(level[:, ~has_battery]))
    assert np.all((level[:, has_battery] >= 0) & (level[:, has_battery] <= 100 + 1e-9))
    assert np.all(np.abs(battery[:, has_battery]) <= m.battery_kw[has_battery] + 1e-9)

    solar = column(table, "solar_generation", n)
    assert np.all(np.isnan(solar[:, m.pv_kwp == 0]))
    assert np.all(pv[:, m.pv_kwp == 0] == 0)
    assert np.all(pv >= 0)
    assert np.all(pv <= m.pv_kwp + 1e-9), "PV above its kWp"
    assert np.all(pv <= m.inverter_kw + 1e-9) or not m.pv_kwp.any()
    curtailed = column(table, "curtailed_kw", n)
    assert np.all(curtailed >= 0) and np.all(curtailed[:, m.pv_kwp == 0] == 0)
    assert np.all(pv + curtailed <= m.inverter_kw + 1e-9), "PV available above the inverter"

    volts = column(table, "voltage", n)
    nominal = np.where(m.phases == 3, 400.0, 230.0)
    assert np.all(np.abs(volts / nominal - 1) <= 0.06 + 1e-12)
    pf = column(table, "power_factor", n)
    assert np.all((pf > 0.69) & (pf <= 1.0))
    amps = column(table, "current", n)
    factor = np.where(m.phases == 3, np.sqrt(3.0), 1.0)
    np.testing.assert_allclose(
        amps * volts * pf * factor / 1000.0, np.abs(load - pv + battery), rtol=1e-9, atol=1e-9
    )
    hz = column(table, "frequency", n)
    assert np.all(np.abs(hz - 50.0) <= 0.2)

    # Demand response sheds at most the whole load; prices are positive; costs are energy × price.
    assert np.all(column(table, "shed_kw", n) >= 0) and np.all(load >= 0)
    price = column(table, "price_thb_per_kwh", n)
    assert np.all(price > 0)
    assert np.array_equal(column(table, "import_cost_thb", n), imp * price)
    credit = column(table, "export_credit_thb", n)
    assert np.all(credit >= 0) and np.all(credit[exp == 0] == 0)
