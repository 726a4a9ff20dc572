"""A group of meters stepped over a window of intervals: parameters + state + window in, one Arrow
RecordBatch + new state out. The same code steps one meter or 100,000.

The group's state is three numbers per meter (import and export registers, battery energy) plus the
start of the next interval; nothing else carries over between windows, so a window can be replayed
from a saved state and yields the same batch, and a fleet split into groups steps exactly like the
whole fleet (every random stream is keyed by the seed and the meter id, never by position).

Demand-response events and prices come in as time-stamped ``ModelInputs``: the demand a meter
records is the load model's demand − the shed of the events in force + the rebound after them,
and the battery dispatches against the prices in force; both are pure functions of the inputs and
time, so a window cut anywhere (inside an event, inside a rebound) changes nothing. IEEE 2030.5 DER
controls (``ModelInputs.der_controls`` / ``der_defaults``) steer the PV and batteries of meters that
have them the same way (``der``, ``der_dispatch``): PV curtailed by them shows in ``curtailed_kw``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from gtx_ray.fleet import METER_TYPES, CampusConfig, MeterArrays
from gtx_ray.model.battery import Bank, dispatch
from gtx_ray.model.calendar import calendar_days
from gtx_ray.model.controls import ControlledMeters, device_category_of, rebound_kw, shed_kw
from gtx_ray.model.der import DerMeters, control_weights
from gtx_ray.model.der_dispatch import DerFlows, DerModes, der_dispatch, modes_in_force
from gtx_ray.model.electrical import current_a, grid_frequency_hz, power_factor, voltage_v
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.load import meter_load_kw, type_constants
from gtx_ray.model.noise import hash_keys, uniform
from gtx_ray.model.solar import solar_resource
from gtx_ray.model.tariff import Prices, prices
from gtx_ray.model.weather import site_weather
from gtx_ray.readings import FIELD_COLUMNS, READING_SCHEMA

_STREAM_REGISTER, _STREAM_PV_DERATE = 401, 402
_RESIDUE = 1e-12  # grid flows this small relative to the flows through a DER meter are rounding


@dataclass(frozen=True)
class MeterState:
    """Where a group of meters stands: the start of its next interval (UTC epoch s) and, per meter,
    the import/export registers (kWh) and the stored battery energy (kWh, NaN without a battery)."""

    next_start_s: int
    import_register_kwh: np.ndarray
    export_register_kwh: np.ndarray
    soc_kwh: np.ndarray

    def take(self, index: np.ndarray | slice) -> MeterState:
        return replace(
            self,
            import_register_kwh=self.import_register_kwh[index],
            export_register_kwh=self.export_register_kwh[index],
            soc_kwh=self.soc_kwh[index],
        )


@dataclass(frozen=True)
class WindowResult:
    """A stepped window: the readings (rows = intervals × meters, time-major) and the new state."""

    batch: pa.RecordBatch
    state: MeterState


def _accumulate(register: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Register after each interval, summed in time order ((r + e0) + e1) …, so that one window of
    96 intervals and 96 windows of one give bit-identical registers."""
    return np.cumsum(np.vstack([register[None, :], energy]), axis=0)[1:]


class MeterModel:
    """Steps a fixed group of meters at one site with one seed and one interval length (s)."""

    def __init__(self, meters: MeterArrays, campus: CampusConfig, seed: int, interval_s: int):
        if interval_s <= 0 or 86_400 % interval_s:
            raise ValueError(f"interval must divide a day into whole intervals, got {interval_s} s")
        self.meters = meters
        self.seed = int(seed)
        self.interval_s = int(interval_s)
        self._utc_offset_s = campus.site.utc_offset_s
        self._holiday_country = campus.site.holiday_country
        self._site = campus.model_site()
        self._climate = campus.model_climate()
        self._pv = campus.model_pv()
        self._policy = campus.model_policy()
        self._terms = campus.model_terms()
        self._tariff = campus.model_tariff()
        self._controlled = ControlledMeters.of(
            meters.meter_id, meters.key, meters.meter_type, meters.building_type
        )
        self._battery = np.flatnonzero(meters.battery_kwh > 0)
        # Meters with PV and/or a battery: the distributed energy resources DER controls steer.
        self._is_der = (meters.pv_kwp > 0) | (meters.battery_kwh > 0)
        self._der = np.flatnonzero(self._is_der)
        self._der_battery = np.flatnonzero(meters.battery_kwh[self._der] > 0)  # within _der
        self._der_meters = DerMeters(
            meter_id=np.asarray(meters.meter_id, dtype=object)[self._der],
            key=np.asarray(meters.key, dtype=np.uint64)[self._der],
            category=device_category_of(meters.meter_type[self._der]),
            inverter_kw=meters.inverter_kw[self._der],
            battery_kw=np.where(meters.battery_kwh > 0, meters.battery_kw, 0.0)[self._der],
        )
        has_bank = meters.battery_kwh[self._der] > 0
        self._der_bank = Bank.of(
            np.where(has_bank, meters.battery_kwh[self._der], 0.0),
            np.where(has_bank, meters.battery_kw[self._der], 0.0),
            np.where(has_bank, meters.battery_efficiency[self._der], 1.0),
            self._policy,
        )
        self._has_pv = meters.pv_kwp > 0
        self._three_phase = meters.phases == 3
        self._base_pf = type_constants("power_factor")[meters.building_type]
        # Losses the site-wide PV design misses (shading, soiling, orientation): 0–8 %.
        derate = 1.0 - 0.08 * uniform(hash_keys(self.seed, meters.key), _STREAM_PV_DERATE)
        self._pv_kwp_derated = meters.pv_kwp * derate
        self._meter_id = pa.array(meters.meter_id, pa.string())
        self._building = pa.array(meters.building, pa.string())
        self._floor = pa.array(meters.floor, pa.int32())
        self._meter_type = pa.array(
            np.array(METER_TYPES, dtype=object)[meters.meter_type], pa.string()
        )

    def __len__(self) -> int:
        return len(self.meters)

    def initial_state(self, start_s: int) -> MeterState:
        """State at ``start_s`` (aligned down to the interval): registers at a plausible, seeded
        reading (0–2,000 full-load hours of history), batteries half full."""
        m = self.meters
        keys = hash_keys(self.seed, m.key)
        history_h = 2000.0 * uniform(keys, _STREAM_REGISTER)
        return MeterState(
            next_start_s=int(start_s) // self.interval_s * self.interval_s,
            import_register_kwh=np.round(m.capacity_kw * history_h, 3),
            export_register_kwh=np.round(m.pv_kwp * history_h * 0.3, 3),
            soc_kwh=np.where(m.battery_kwh > 0, 0.5 * m.battery_kwh, np.nan),
        )

    def model_load_kw(
        self, mids_s: np.ndarray, index: np.ndarray | slice = slice(None)
    ) -> np.ndarray:
        """The load model's demand (no load control), kW, of meters ``index`` of the group at
        interval mid-points ``mids_s`` (UTC epoch s): shape (T, K). A pure function of seed,
        meter and time."""
        m = self.meters
        mids_s = np.asarray(mids_s, dtype=np.float64)
        days = calendar_days(mids_s, self._utc_offset_s, self._terms, self._holiday_country)
        weather = site_weather(self.seed, mids_s, self._utc_offset_s, self._climate)
        return meter_load_kw(
            self.seed,
            m.key[index],
            m.building_type[index],
            m.capacity_kw[index],
            mids_s,
            days,
            weather.temperature_c,
        )

    def step(
        self,
        state: MeterState,
        n_intervals: int,
        override_kw: np.ndarray | None = None,
        inputs: ModelInputs | None = None,
    ) -> WindowResult:
        """Advance every meter by ``n_intervals`` intervals from ``state.next_start_s``.

        override_kw: optional battery command per meter of the group (kW, + discharge, − charge,
        NaN = follow the policy), held for the whole window; an active DER control's fixed_kw
        beats it. inputs: demand-response events, tariffs, price intervals and DER controls (None:
        none, the configured tariff only).
        """
        if n_intervals < 1:
            raise ValueError(f"a window needs at least one interval, got {n_intervals}")
        inputs = inputs if inputs is not None else ModelInputs()
        m = self.meters
        n_meters = len(m)
        hours = self.interval_s / 3600.0
        starts = state.next_start_s + self.interval_s * np.arange(n_intervals, dtype=np.int64)
        mids = starts + self.interval_s / 2.0

        days = calendar_days(mids, self._utc_offset_s, self._terms, self._holiday_country)
        weather = site_weather(self.seed, mids, self._utc_offset_s, self._climate)
        model_kw = meter_load_kw(
            self.seed, m.key, m.building_type, m.capacity_kw, mids, days, weather.temperature_c
        )  # (T, M), like every array below
        if inputs.load_controls:
            controls = (inputs.load_controls, self.seed, self._controlled, starts, self.interval_s)
            shed = shed_kw(*controls, model_kw)
            load_kw = model_kw - shed + rebound_kw(*controls, self.model_load_kw)
        else:
            shed = np.zeros_like(model_kw)
            load_kw = model_kw
        price = prices(
            (self._tariff, *inputs.tariffs),
            inputs.prices,
            starts,
            self.interval_s,
            self._utc_offset_s,
            self._holiday_country,
        )
        if self._has_pv.any():
            sun = solar_resource(mids, self._site, weather, self._pv)
            pv_kw = np.minimum(
                sun.ac_kw_per_kwp[:, None] * self._pv_kwp_derated[None, :], m.inverter_kw[None, :]
            )
        else:
            pv_kw = np.zeros((n_intervals, n_meters))

        battery_kw = np.zeros((n_intervals, n_meters))  # + charging, − discharging
        level_pct = np.full((n_intervals, n_meters), np.nan)
        curtailed_kw = np.zeros((n_intervals, n_meters))
        der_mode = np.zeros((n_intervals, n_meters))
        new_soc = state.soc_kwh.copy()
        b = self._battery
        override = None if override_kw is None else np.asarray(override_kw, np.float64)
        der_flows = bool(inputs.der_controls or inputs.der_defaults) and len(self._der)
        if der_flows:
            j = self._der
            flows, der_mode[:, j] = self._der_flows(
                inputs, starts, load_kw[:, j], pv_kw[:, j], state, price, override
            )
            curtailed_kw[:, j] = np.maximum(pv_kw[:, j] - flows.pv_kw, 0.0)
            pv_kw[:, j] = flows.pv_kw
            battery_kw[:, j] = flows.charge_kw - flows.discharge_kw
            level_pct[:, b] = flows.soc_kwh[:, self._der_battery] / m.battery_kwh[b] * 100.0
            new_soc[b] = flows.soc_kwh[-1, self._der_battery]
        elif len(b):
            flows = dispatch(
                state.soc_kwh[b],
                m.battery_kwh[b],
                m.battery_kw[b],
                m.battery_efficiency[b],
                load_kw[:, b] - pv_kw[:, b],
                price.expensive,
                price.cheap,
                self.interval_s,
                self._policy,
                None if override is None else override[b],
            )
            battery_kw[:, b] = flows.charge_kw - flows.discharge_kw
            level_pct[:, b] = flows.soc_kwh / m.battery_kwh[b] * 100.0
            new_soc[b] = flows.soc_kwh[-1]

        grid_kw = load_kw - pv_kw + battery_kw  # + import, − export
        if der_flows:
            # A DER limit met exactly (export 0, say) leaves a rounding residue of a few ulp of the
            # flows through the meter: read it as 0, so the registers do not creep.
            j = self._der
            through_kw = load_kw[:, j] + pv_kw[:, j] + curtailed_kw[:, j] + np.abs(battery_kw[:, j])
            residue = np.abs(grid_kw[:, j]) <= _RESIDUE * through_kw
            grid_kw[:, j] = np.where(residue, 0.0, grid_kw[:, j])
        export_kw = np.maximum(-grid_kw, 0.0)
        import_kwh = np.maximum(grid_kw, 0.0) * hours
        export_kwh = export_kw * hours
        import_register = _accumulate(state.import_register_kwh, import_kwh)
        export_register = _accumulate(state.export_register_kwh, export_kwh)

        volts = voltage_v(self.seed, m.key, self._three_phase, grid_kw, m.capacity_kw, mids)
        pf = power_factor(self.seed, m.key, self._base_pf, load_kw / m.capacity_kw, mids)
        shape = grid_kw.shape
        columns = {
            "energy_consumed": load_kw,
            "energy_generated": pv_kw,
            "solar_generation": pv_kw,
            "grid_feed_in": export_kw,
            "battery_power": battery_kw,
            "battery_level": level_pct,
            "voltage": volts,
            "current": current_a(grid_kw, volts, pf, self._three_phase),
            "power_factor": pf,
            "frequency": np.broadcast_to(grid_frequency_hz(self.seed, mids)[:, None], shape),
            "temperature": np.broadcast_to(weather.temperature_c[:, None], shape),
            "humidity": np.broadcast_to(weather.humidity_pct[:, None], shape),
            "energy_import_kwh": import_kwh,
            "energy_export_kwh": export_kwh,
            "import_register_kwh": import_register,
            "export_register_kwh": export_register,
            "shed_kw": shed,
            "curtailed_kw": curtailed_kw,
            "der_mode": der_mode,
            "price_thb_per_kwh": np.broadcast_to(price.import_thb_per_kwh[:, None], shape),
            "import_cost_thb": import_kwh * price.import_thb_per_kwh[:, None],
            "export_credit_thb": export_kwh * price.export_thb_per_kwh[:, None],
        }
        null_where = {
            "solar_generation": np.tile(~self._has_pv, n_intervals),
            "battery_power": np.tile(m.battery_kwh <= 0, n_intervals),
            "battery_level": np.tile(m.battery_kwh <= 0, n_intervals),
            "der_mode": np.tile(~self._is_der, n_intervals),
        }
        batch = self._to_batch(starts, columns, null_where)
        new_state = MeterState(
            next_start_s=int(starts[-1]) + self.interval_s,
            import_register_kwh=import_register[-1].copy(),
            export_register_kwh=export_register[-1].copy(),
            soc_kwh=new_soc,
        )
        return WindowResult(batch=batch, state=new_state)

    def _der_flows(
        self,
        inputs: ModelInputs,
        starts: np.ndarray,
        load_kw: np.ndarray,
        pv_free_kw: np.ndarray,
        state: MeterState,
        price: Prices,
        override_kw: np.ndarray | None,
    ) -> tuple[DerFlows, np.ndarray]:
        """PV and battery operation of the group's DER meters (``self._der``) under the DER
        controls: load and uncontrolled PV (T, D), kW, in; PV output, battery flows and state of
        charge out (see ``der_dispatch``), and the modes holding each meter in each interval
        ((T, D) ``MODE_BITS``)."""
        meters, defaults = self._der_meters, inputs.der_defaults
        events, weights = control_weights(
            inputs.der_controls, defaults, self.seed, meters, starts, self.interval_s
        )
        in_force = np.zeros(load_kw.shape)
        for weight in weights:  # in precedence order, so the sum is the same in every window
            in_force = in_force + weight
        base = (np.maximum(1.0 - in_force, 0.0), DerModes.of(None, defaults, meters))
        settings = (
            base,
            *(
                (weight, DerModes.of(event, defaults, meters))
                for weight, event in zip(weights, events, strict=True)
            ),
        )
        flows = der_dispatch(
            settings,
            load_kw,
            pv_free_kw,
            np.nan_to_num(state.soc_kwh[self._der], nan=0.0),
            self._der_bank,
            price.expensive,
            price.cheap,
            self.interval_s,
            self._policy,
            None if override_kw is None else override_kw[self._der],
        )
        return flows, modes_in_force(settings)

    def _to_batch(
        self,
        starts: np.ndarray,
        columns: dict[str, np.ndarray],
        null_where: dict[str, np.ndarray],
    ) -> pa.RecordBatch:
        """Lay (T, M) arrays out time-major: all meters of interval 0, then interval 1, …"""
        n_meters, n_intervals = len(self.meters), len(starts)

        def repeated(meter_column: pa.Array) -> pa.Array:
            return pa.concat_arrays([meter_column] * n_intervals)

        arrays = [
            pa.array(np.repeat(starts, n_meters), pa.timestamp("s", tz="UTC")),
            repeated(self._meter_id),
            repeated(self._building),
            repeated(self._floor),
            repeated(self._meter_type),
        ]
        for name in FIELD_COLUMNS:
            mask = null_where.get(name)
            values = np.ascontiguousarray(columns[name]).ravel()
            arrays.append(
                pa.array(
                    values, pa.float64(), mask=mask if mask is not None and mask.any() else None
                )
            )
        return pa.RecordBatch.from_arrays(arrays, schema=READING_SCHEMA)
