"""Site weather as a pure function of (seed, time): outdoor temperature, relative humidity and cloud
cover with the site's seasons and a diurnal cycle.

The monthly climate normals come from the site configuration (for Bangkok: the mean daily maximum
and minimum of shared/reference/campus.md, as mid-range and range). Day-to-day and hour-to-hour
weather is seeded value noise (see ``noise.smooth_noise``), so every meter at the site, in every
process, sees the same sky at the same time.

The normals are the means of the simulated months: the seasonal curves keep each month's mean,
every perturbation averages to zero (the day-scale ones over each calendar month), and the cloud
of a season is part of its normals, so clouds move the temperature of a day around its normal,
never a whole season below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gtx_ray.model.noise import hash_keys, normal, smooth_noise

SECONDS_PER_DAY = 86_400
_DAYS_PER_YEAR = 365.2425
_DAYS_PER_MONTH = _DAYS_PER_YEAR / 12.0
_MONTH_MID_DAY = (np.arange(12) + 0.5) * _DAYS_PER_MONTH

# Noise streams: distinct keys so the weather variables are independent of each other.
_STREAM_TEMP_DAYS, _STREAM_TEMP_HOURS = 101, 102
_STREAM_CLOUD_DAYS, _STREAM_CLOUD_HOURS = 103, 104
_STREAM_HUMIDITY = 105

# Temperature anomalies: multi-day spells (knots every 3 days) and hour-scale wiggles, °C.
_TEMP_DAYS_SIGMA_C, _TEMP_DAYS_PERIOD_S = 1.0, 3 * SECONDS_PER_DAY
_TEMP_HOURS_SIGMA_C = 0.4
# The diurnal range shrinks by this many °C per unit of cloud anomaly (−0.5…0.5): a day with its
# season's typical sky has the normal range; a cloudier one (anomaly ≈ +0.25) loses about 1.5 °C
# off its afternoon and keeps it at night, a clearer one gains it. The afternoon's heat integrates
# the sky over hours, so 3-hour cloud swings count half as much as the day's cloudiness.
_CLOUD_SWING_C = 12.0
_CLOUD_HOURS_WEIGHT = 0.5
# A day's noisy extremes overshoot the smooth cycle's (the hottest hour is the hottest of several
# perturbed ones): by about 0.15 °C on each side for the noise above, found over 60 simulated
# years. The cycle is drawn that much narrower, so the mean daily max and min are the normals.
_EXTREMES_OVERSHOOT_C = 0.15


@dataclass(frozen=True)
class Climate:
    """Monthly normals for a site (arrays of 12 values, January first)."""

    mean_temp_c: tuple[float, ...]  # (mean daily max + mean daily min) / 2, °C
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


def _month_means_matrix() -> np.ndarray:
    """Monthly means of a curve interpolated linearly between mid-month anchors, as a matrix on the
    anchors: a month spans half an anchor spacing either side of its own anchor, so its mean is
    (a[m−1] + 6·a[m] + a[m+1]) / 8."""
    matrix = np.zeros((12, 12))
    for m in range(12):
        matrix[m, m] = 6.0 / 8.0
        matrix[m, (m - 1) % 12] = matrix[m, (m + 1) % 12] = 1.0 / 8.0
    return matrix


_MONTH_MEANS = _month_means_matrix()


@lru_cache(maxsize=64)
def _anchors(monthly: tuple[float, ...]) -> np.ndarray:
    """Mid-month anchor values whose interpolated curve has ``monthly`` as its monthly means."""
    return np.linalg.solve(_MONTH_MEANS, np.asarray(monthly, dtype=np.float64))


def seasonal(monthly: tuple[float, ...], day_of_year: np.ndarray) -> np.ndarray:
    """Interpolate 12 monthly values to fractional days of the year, wrapping December to January,
    so the seasons change smoothly instead of jumping on the 1st.

    The curve runs linearly between mid-month anchors chosen so that each month's mean of the curve
    is the given monthly value (a peak month's anchor sits a little above its mean, since the days
    either side of it are lower): the monthly normals stay the monthly means.
    """
    values = _anchors(tuple(float(v) for v in monthly))
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


def _calendar_month(local_s: np.ndarray) -> np.ndarray:
    """Calendar months since January 1970 of local epoch seconds."""
    days = np.floor(np.asarray(local_s, dtype=np.float64) / SECONDS_PER_DAY).astype(np.int64)
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def month_balanced_noise(
    key: int, times_s: np.ndarray, period_s: float, utc_offset_s: int
) -> np.ndarray:
    """Like ``noise.smooth_noise`` (a scalar key), but the knot values of each calendar month (in
    the knots' local time) sum to zero, rescaled to unit variance: weather spells come and go, yet
    every month's mean is its normal, so a simulated year is a typical year, not a freak one.

    Each knot's month is a function of the knot alone and its month's knots are all drawn, so the
    value at a time does not depend on the window it is computed in.
    """
    t = np.asarray(times_s, dtype=np.float64) / period_s
    knot = np.floor(t)
    frac = t - knot
    weight = frac * frac * (3.0 - 2.0 * frac)
    if not knot.size:
        return np.zeros(knot.shape)
    # Every knot of every month the window's knots fall in (a month spans at most this many).
    reach = int(np.ceil(SECONDS_PER_DAY * _DAYS_PER_MONTH / period_s)) + 1
    knots = np.arange(int(knot.min()) - reach, int(knot.max()) + 2 + reach, dtype=np.int64)
    month = _calendar_month(knots * period_s + utc_offset_s)
    first_month = _calendar_month(np.array([knot.min() * period_s + utc_offset_s]))[0]
    last_month = _calendar_month(np.array([(knot.max() + 1) * period_s + utc_offset_s]))[0]
    keep = (month >= first_month) & (month <= last_month)
    knots, group = knots[keep], month[keep] - first_month
    values = normal(key, knots)
    count = np.bincount(group)
    mean = np.bincount(group, weights=values) / count
    values = (values - mean[group]) * np.sqrt(count / np.maximum(count - 1, 1))[group]
    idx = (knot - knots[0]).astype(np.intp)
    return values[idx] * (1.0 - weight) + values[idx + 1] * weight


def _day_of_year(local_s: np.ndarray) -> np.ndarray:
    days = local_s / SECONDS_PER_DAY
    years = np.floor(local_s / (SECONDS_PER_DAY * _DAYS_PER_YEAR))
    return days - years * _DAYS_PER_YEAR


def site_weather(seed: int, times_s: np.ndarray, utc_offset_s: int, climate: Climate) -> Weather:
    """Weather at the site for each UTC epoch second in ``times_s``.

    Cloud cover: the seasonal mean plus rainy-season afternoon convection, perturbed on a logit
    scale by day-scale and 3-hour-scale noise. Temperature: the seasonal mid-range plus the diurnal
    cycle, whose range shrinks under a cloudier sky than usual and widens under a clearer one, plus
    multi-day and hour-scale anomalies. Every perturbation is zero-mean, so each month's mean daily
    maximum and minimum are the climate's normals: the cloud of a season is already in its normals,
    and a cloudy day cools its own afternoon (and warms its night), not the season. Humidity rises
    at night and under clouds, falls in the afternoon heat.
    """
    t = np.asarray(times_s, dtype=np.float64)
    local_s = t + utc_offset_s
    day_of_year = _day_of_year(local_s)
    local_hour = (local_s % SECONDS_PER_DAY) / 3600.0

    mean_cloud = seasonal(climate.cloud_fraction, day_of_year)
    convection = seasonal(climate.afternoon_convection, day_of_year)
    afternoon = np.exp(-0.5 * ((local_hour - 16.0) / 2.5) ** 2)
    base_cloud = np.clip(mean_cloud + convection * afternoon, 0.02, 0.98)
    base_logit = np.log(base_cloud / (1.0 - base_cloud))
    days = 1.3 * month_balanced_noise(
        hash_keys(seed, _STREAM_CLOUD_DAYS), t, SECONDS_PER_DAY, utc_offset_s
    )
    hours = 0.9 * smooth_noise(hash_keys(seed, _STREAM_CLOUD_HOURS), t, 3 * 3600)
    cloud = _logistic(base_logit + days + hours)
    # How much cloudier than usual for this hour and season (−0.5…0.5): an odd function of the
    # symmetric perturbation, so zero on average; positive when cloudier, negative when clearer.
    felt = days + _CLOUD_HOURS_WEIGHT * hours
    cloud_anomaly = 0.5 * (_logistic(base_logit + felt) - _logistic(base_logit - felt))

    mid_range = seasonal(climate.mean_temp_c, day_of_year)
    diurnal_range = seasonal(climate.diurnal_range_c, day_of_year)
    swing = diurnal_range - 2.0 * _EXTREMES_OVERSHOOT_C
    shape = diurnal_shape(local_hour)
    temperature = (
        mid_range
        + (swing - _CLOUD_SWING_C * cloud_anomaly) * shape
        + _TEMP_DAYS_SIGMA_C
        * month_balanced_noise(
            hash_keys(seed, _STREAM_TEMP_DAYS), t, _TEMP_DAYS_PERIOD_S, utc_offset_s
        )
        + _TEMP_HOURS_SIGMA_C * smooth_noise(hash_keys(seed, _STREAM_TEMP_HOURS), t, 4 * 3600)
    )
    humidity = (
        seasonal(climate.humidity_pct, day_of_year)
        - 28.0 * shape
        + 18.0 * cloud_anomaly
        + 3.0 * smooth_noise(hash_keys(seed, _STREAM_HUMIDITY), t, 6 * 3600)
    )
    return Weather(
        temperature_c=temperature,
        humidity_pct=np.clip(humidity, 25.0, 100.0),
        cloud_cover=cloud,
    )


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
