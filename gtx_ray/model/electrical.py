"""Voltage, current, power factor and frequency at each meter's point of connection.

Thailand's distribution grid (MEA): 230 V phase-to-neutral, 400 V phase-to-phase, 50 Hz.
Single-phase meters report phase voltage; three-phase meters report line-to-line voltage. Voltage
sags with import and rises with export along the feeder (a simple ±2 % droop at full capacity), plus
a feeder-wide slow wander shared by all meters and a small fixed offset per meter (position on the
feeder). Current follows from the grid power: I = P / (V · pf) or P / (√3 · V_LL · pf).
"""

from __future__ import annotations

import numpy as np

from gtx_ray.model.noise import hash_keys, smooth_noise, uniform

NOMINAL_PHASE_V = 230.0
NOMINAL_LINE_V = 400.0
NOMINAL_HZ = 50.0

_STREAM_FEEDER, _STREAM_OFFSET, _STREAM_PF, _STREAM_HZ, _STREAM_V = 301, 302, 303, 304, 305


def grid_frequency_hz(seed: int, times_s: np.ndarray) -> np.ndarray:
    """System frequency, Hz, shape (T,): 50 Hz with slow deviations of a few tens of mHz."""
    wander = smooth_noise(hash_keys(seed, _STREAM_HZ), times_s, 1800)
    return np.clip(NOMINAL_HZ + 0.03 * wander, 49.8, 50.2)


def voltage_v(
    seed: int,
    meter_keys: np.ndarray,
    three_phase: np.ndarray,
    grid_kw: np.ndarray,
    capacity_kw: np.ndarray,
    times_s: np.ndarray,
) -> np.ndarray:
    """RMS voltage per meter and interval, V, shape (T, M); within ±6 % of nominal.

    grid_kw: import (+) or export (−) power, kW, (T, M).
    """
    nominal = np.where(three_phase, NOMINAL_LINE_V, NOMINAL_PHASE_V)[None, :]
    keys = hash_keys(seed, meter_keys)
    offset = 0.015 * (2.0 * uniform(keys, _STREAM_OFFSET) - 1.0)
    feeder = 0.012 * smooth_noise(hash_keys(seed, _STREAM_FEEDER), times_s, 2 * 3600)
    local = 0.003 * smooth_noise(hash_keys(keys, _STREAM_V), times_s, 900)
    droop = -0.02 * grid_kw / capacity_kw[None, :]
    per_unit = 1.0 + offset[None, :] + feeder[:, None] + local + droop
    return nominal * np.clip(per_unit, 0.94, 1.06)


def power_factor(
    seed: int,
    meter_keys: np.ndarray,
    base_pf: np.ndarray,
    load_share: np.ndarray,
    times_s: np.ndarray,
) -> np.ndarray:
    """Displacement power factor per meter and interval, shape (T, M), in [0.70, 0.99].

    Lightly loaded buildings (motors and transformers idling) run at a lower power factor.
    base_pf: (M,) typical power factor of the building type; load_share: load / capacity, (T, M).
    """
    keys = hash_keys(seed, meter_keys)
    light_load_penalty = 0.08 * np.clip(0.4 - load_share, 0.0, 0.4) / 0.4
    wander = 0.01 * smooth_noise(hash_keys(keys, _STREAM_PF), times_s, 3 * 3600)
    return np.clip(base_pf[None, :] - light_load_penalty + wander, 0.70, 0.99)


def current_a(
    grid_kw: np.ndarray, volts: np.ndarray, pf: np.ndarray, three_phase: np.ndarray
) -> np.ndarray:
    """RMS line current, A, from the power through the meter (import or export), (T, M)."""
    factor = np.where(three_phase, np.sqrt(3.0), 1.0)[None, :]
    return np.abs(grid_kw) * 1000.0 / (factor * volts * pf)
