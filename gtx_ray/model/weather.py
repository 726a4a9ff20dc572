"""Site weather as a pure function of (seed, time): outdoor temperature, relative humidity and cloud
cover with the site's seasons and a diurnal cycle.

The monthly climate normals come from the site configuration (for Bangkok: Thai Meteorological
Department 1991–2020 normals for Bangkok Metropolis, rounded). Day-to-day and hour-to-hour
weather is seeded value noise (see ``noise.smooth_noise``), so every meter at the site, in every
process, sees the same sky at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gtx_ray.model.noise import hash_keys, smooth_noise

SECONDS_PER_DAY = 86_400
_DAYS_PER_YEAR = 365.2425
_MONTH_MID_DAY = (np.arange(12) + 0.5) * (_DAYS_PER_YEAR / 12.0)

# Noise streams: distinct keys so the weather variables are independent of each other.
_STREAM_TEMP_DAYS, _STREAM_TEMP_HOURS = 101, 102
_STREAM_CLOUD_DAYS, _STREAM_CLOUD_HOURS = 103, 104
_STREAM_HUMIDITY = 105


@dataclass(frozen=True)
class Climate:
    """Monthly normals for a site (arrays of 12 values, January first)."""

    mean_temp_c: tuple[float, ...]  # daily mean air temperature, °C
    diurnal_range_c: tuple[float, ...]  # mean daily max − mean daily min, °C
    humidity_pct: tuple[float, ...]  # mean relative humidity, %
    cloud_fraction: tuple[float, ...]  # mean cloud cover, 0–1
    afternoon_convection: tuple[float, ...]  # extra cloud cover at ~16:00 local, 0–1


@dataclass(frozen=True)
class Weather:
    """Weather at each time of a window (arrays of shape (T,))."""

    temperature_c: np.ndarray
    humidity_pct: np.ndarray
    cloud_cover: np.ndarray  # 0 (clear) – 1 (overcast)


def seasonal(monthly: tuple[float, ...], day_of_year: np.ndarray) -> np.ndarray:
    """Interpolate 12 monthly values (mid-month anchors) to fractional days of the year, wrapping
    December to January, so the seasons change smoothly instead of jumping on the 1st."""
    values = np.asarray(monthly, dtype=np.float64)
    anchors = np.concatenate(
        [
            [_MONTH_MID_DAY[-1] - _DAYS_PER_YEAR],
            _MONTH_MID_DAY,
            [_MONTH_MID_DAY[0] + _DAYS_PER_YEAR],
        ]
    )
    extended = np.concatenate([[values[-1]], values, [values[0]]])
    return np.interp(day_of_year, anchors, extended)


def diurnal_shape(local_hour: np.ndarray) -> np.ndarray:
    """Normalised daily temperature cycle in [-0.5, 0.5]: minimum at 06:00, maximum at 14:30 local,
    a cosine rise by day and a slower cosine fall by night."""
    h = np.asarray(local_hour, dtype=np.float64)
    t_min, t_max = 6.0, 14.5
    rising = (h >= t_min) & (h < t_max)
    phase_day = (h - t_min) / (t_max - t_min)
    phase_night = ((h - t_max) % 24.0) / (24.0 - (t_max - t_min))
    return np.where(rising, -0.5 * np.cos(np.pi * phase_day), 0.5 * np.cos(np.pi * phase_night))


def _day_of_year(local_s: np.ndarray) -> np.ndarray:
    days = local_s / SECONDS_PER_DAY
    years = np.floor(local_s / (SECONDS_PER_DAY * _DAYS_PER_YEAR))
    return days - years * _DAYS_PER_YEAR


def site_weather(seed: int, times_s: np.ndarray, utc_offset_s: int, climate: Climate) -> Weather:
    """Weather at the site for each UTC epoch second in ``times_s``.

    Temperature: seasonal mean + diurnal cycle (range shrinks under clouds) + multi-day and
    hour-scale anomalies (σ ≈ 1.2 °C and 0.5 °C). Cloud cover: the seasonal mean plus rainy-season
    afternoon convection, perturbed on a logit scale by day-scale and 3-hour-scale noise. Humidity
    rises at night and under clouds, falls in the afternoon heat.
    """
    t = np.asarray(times_s, dtype=np.float64)
    local_s = t + utc_offset_s
    day_of_year = _day_of_year(local_s)
    local_hour = (local_s % SECONDS_PER_DAY) / 3600.0

    mean_cloud = seasonal(climate.cloud_fraction, day_of_year)
    convection = seasonal(climate.afternoon_convection, day_of_year)
    afternoon = np.exp(-0.5 * ((local_hour - 16.0) / 2.5) ** 2)
    base_cloud = np.clip(mean_cloud + convection * afternoon, 0.02, 0.98)
    logit = np.log(base_cloud / (1.0 - base_cloud))
    logit += 1.3 * smooth_noise(hash_keys(seed, _STREAM_CLOUD_DAYS), t, SECONDS_PER_DAY)
    logit += 0.9 * smooth_noise(hash_keys(seed, _STREAM_CLOUD_HOURS), t, 3 * 3600)
    cloud = 1.0 / (1.0 + np.exp(-logit))

    cloud_excess = cloud - mean_cloud
    diurnal_range = seasonal(climate.diurnal_range_c, day_of_year) * (1.0 - 0.45 * cloud_excess)
    shape = diurnal_shape(local_hour)
    temperature = (
        seasonal(climate.mean_temp_c, day_of_year)
        + diurnal_range * shape
        + 1.4 * smooth_noise(hash_keys(seed, _STREAM_TEMP_DAYS), t, 3 * SECONDS_PER_DAY)
        + 0.6 * smooth_noise(hash_keys(seed, _STREAM_TEMP_HOURS), t, 4 * 3600)
    )
    humidity = (
        seasonal(climate.humidity_pct, day_of_year)
        - 28.0 * shape
        + 18.0 * cloud_excess
        + 3.0 * smooth_noise(hash_keys(seed, _STREAM_HUMIDITY), t, 6 * 3600)
    )
    return Weather(
        temperature_c=temperature,
        humidity_pct=np.clip(humidity, 25.0, 100.0),
        cloud_cover=cloud,
    )
