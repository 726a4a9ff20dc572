"""Rooftop PV output per kWp at the site, from sun position, clear-sky irradiance and cloud cover.

Pure numpy (no pandas), so a meter actor imports it in milliseconds. Each step is a published model;
tests/unit/test_solar.py checks them against pvlib's implementations:
1. Sun position: NOAA solar calculator (after Meeus, "Astronomical Algorithms", 1991), ±0.05°,
   with Bennett's (1982) refraction for the apparent zenith.
2. Clear-sky GHI: Ineichen & Perez (2002) with monthly Linke turbidity; air mass Kasten & Young
   (1989) at the site's pressure.
3. Cloud cover → GHI: Kasten & Czeplak (1980), GHI = GHI_clear · (1 − 0.75 · C^3.4).
4. GHI → DNI/DHI: Erbs, Klein & Duffie (1982); plane of array: isotropic sky (Liu & Jordan 1963).
5. Cell temperature: Faiman (2008); DC power with a linear temperature coefficient and PVWatts
   system losses (Dobos 2014); the per-meter inverter limit is applied by the caller.

Everything here is site-level (shape (T,)); per-meter output is a multiplication by kWp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gtx_ray.model.weather import Weather

SOLAR_CONSTANT_W_M2 = 1366.1  # ASTM E-490


@dataclass(frozen=True)
class PVSystem:
    """Site-wide PV design assumptions.

    tilt_deg / azimuth_deg: module orientation (azimuth 180 = facing south);
    gamma_pdc_per_c: power temperature coefficient, 1/°C (crystalline Si ≈ −0.0037);
    system_loss: DC-side losses as a fraction (soiling, wiring, mismatch; PVWatts default 0.14);
    inverter_efficiency: AC/DC, 0–1.
    """

    tilt_deg: float = 10.0
    azimuth_deg: float = 180.0
    gamma_pdc_per_c: float = -0.0037
    system_loss: float = 0.14
    inverter_efficiency: float = 0.96


@dataclass(frozen=True)
class Site:
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    linke_turbidity: tuple[float, ...]  # 12 monthly values, January first


@dataclass(frozen=True)
class SunPosition:
    zenith_deg: np.ndarray  # geometric
    apparent_zenith_deg: np.ndarray  # with atmospheric refraction
    azimuth_deg: np.ndarray  # clockwise from north


@dataclass(frozen=True)
class SolarResource:
    """Site-level solar quantities for a window (arrays of shape (T,))."""

    zenith_deg: np.ndarray
    ghi_w_m2: np.ndarray  # global horizontal irradiance under the simulated clouds
    poa_w_m2: np.ndarray  # plane-of-array irradiance
    ac_kw_per_kwp: np.ndarray  # AC output per kWp before the inverter limit, kW/kWp


def sun_position(times_s: np.ndarray, latitude_deg: float, longitude_deg: float) -> SunPosition:
    """Solar zenith and azimuth (degrees) at UTC epoch seconds, NOAA solar calculator."""
    t = np.asarray(times_s, dtype=np.float64)
    jc = (t / 86400.0 + 2440587.5 - 2451545.0) / 36525.0  # Julian centuries since J2000
    mean_long = np.mod(280.46646 + jc * (36000.76983 + jc * 0.0003032), 360.0)
    mean_anom = np.radians(357.52911 + jc * (35999.05029 - 0.0001537 * jc))
    ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    center = (
        np.sin(mean_anom) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * mean_anom) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * mean_anom) * 0.000289
    )
    omega = np.radians(125.04 - 1934.136 * jc)
    apparent_long = np.radians(mean_long + center - 0.00569 - 0.00478 * np.sin(omega))
    mean_obliquity = (
        23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    )
    obliquity = np.radians(mean_obliquity + 0.00256 * np.cos(omega))
    declination = np.arcsin(np.sin(obliquity) * np.sin(apparent_long))
    y = np.tan(obliquity / 2.0) ** 2
    l0 = np.radians(mean_long)
    equation_of_time_min = 4.0 * np.degrees(
        y * np.sin(2 * l0)
        - 2 * ecc * np.sin(mean_anom)
        + 4 * ecc * y * np.sin(mean_anom) * np.cos(2 * l0)
        - 0.5 * y * y * np.sin(4 * l0)
        - 1.25 * ecc * ecc * np.sin(2 * mean_anom)
    )
    utc_minutes = np.mod(t, 86400.0) / 60.0
    true_solar_min = np.mod(utc_minutes + equation_of_time_min + 4.0 * longitude_deg, 1440.0)
    hour_angle = np.radians(true_solar_min / 4.0 - 180.0)
    lat = np.radians(latitude_deg)
    cos_zenith = np.clip(
        np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle),
        -1.0,
        1.0,
    )
    zenith = np.arccos(cos_zenith)
    azimuth = np.mod(
        np.degrees(
            np.arctan2(
                np.sin(hour_angle),
                np.cos(hour_angle) * np.sin(lat) - np.tan(declination) * np.cos(lat),
            )
        )
        + 180.0,
        360.0,
    )
    elevation = 90.0 - np.degrees(zenith)
    # Bennett (1982) refraction, in arc-minutes; negligible below −1° (the sun is down anyway).
    with np.errstate(divide="ignore", invalid="ignore"):
        refraction = (
            np.where(
                elevation > -1.0,
                1.0 / np.tan(np.radians(elevation + 7.31 / (elevation + 4.4))),
                0.0,
            )
            / 60.0
        )
    return SunPosition(
        zenith_deg=np.degrees(zenith),
        apparent_zenith_deg=np.degrees(zenith) - np.maximum(refraction, 0.0),
        azimuth_deg=azimuth,
    )


def _day_of_year(times_s: np.ndarray) -> np.ndarray:
    days = np.asarray(times_s, dtype=np.int64) // 86400
    dates = days.astype("datetime64[D]")
    return (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1


def _month_index(times_s: np.ndarray) -> np.ndarray:
    dates = (np.asarray(times_s, dtype=np.int64) // 86400).astype("datetime64[D]")
    return dates.astype("datetime64[M]").astype(np.int64) % 12


def extraterrestrial_w_m2(day_of_year: np.ndarray) -> np.ndarray:
    """Normal-incidence irradiance at the top of the atmosphere, W/m² (Spencer 1971)."""
    b = 2.0 * np.pi * (np.asarray(day_of_year, dtype=np.float64) - 1.0) / 365.0
    return SOLAR_CONSTANT_W_M2 * (
        1.00011
        + 0.034221 * np.cos(b)
        + 0.00128 * np.sin(b)
        + 0.000719 * np.cos(2 * b)
        + 0.000077 * np.sin(2 * b)
    )


def absolute_airmass(apparent_zenith_deg: np.ndarray, altitude_m: float) -> np.ndarray:
    """Kasten & Young (1989) relative air mass scaled to the site's pressure; NaN below the
    horizon."""
    z = np.asarray(apparent_zenith_deg, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = 1.0 / (np.cos(np.radians(z)) + 0.50572 * (96.07995 - z) ** -1.6364)
    relative = np.where(z < 90.0, relative, np.nan)
    pressure_ratio = (1.0 - 2.25577e-5 * altitude_m) ** 5.25588
    return relative * pressure_ratio


def clear_sky_ghi_w_m2(
    apparent_zenith_deg: np.ndarray,
    airmass_absolute: np.ndarray,
    linke_turbidity: np.ndarray,
    altitude_m: float,
    dni_extra_w_m2: np.ndarray,
) -> np.ndarray:
    """Ineichen & Perez (2002) clear-sky global horizontal irradiance, W/m²; 0 at night."""
    cos_zenith = np.maximum(np.cos(np.radians(apparent_zenith_deg)), 0.0)
    cg1 = 5.09e-5 * altitude_m + 0.868
    cg2 = 3.92e-5 * altitude_m + 0.0387
    fh1 = np.exp(-altitude_m / 8000.0)
    fh2 = np.exp(-altitude_m / 1250.0)
    am = np.nan_to_num(airmass_absolute, nan=0.0)
    ghi = (
        cg1 * dni_extra_w_m2 * cos_zenith * np.exp(-cg2 * am * (fh1 + fh2 * (linke_turbidity - 1)))
    )
    return np.where(np.isfinite(airmass_absolute), np.maximum(ghi, 0.0), 0.0)


def erbs_split(
    ghi_w_m2: np.ndarray, zenith_deg: np.ndarray, dni_extra_w_m2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Erbs et al. (1982): (DNI, DHI) in W/m² from GHI via the clearness index."""
    cos_zenith = np.cos(np.radians(zenith_deg))
    horizontal_extra = dni_extra_w_m2 * np.maximum(cos_zenith, 0.065)
    kt = np.clip(np.where(cos_zenith > 0, ghi_w_m2 / horizontal_extra, 0.0), 0.0, 1.0)
    diffuse_fraction = np.where(
        kt <= 0.22,
        1.0 - 0.09 * kt,
        np.where(
            kt <= 0.8,
            0.9511 - 0.1604 * kt + 4.388 * kt**2 - 16.638 * kt**3 + 12.336 * kt**4,
            0.165,
        ),
    )
    dhi = diffuse_fraction * ghi_w_m2
    with np.errstate(divide="ignore", invalid="ignore"):
        dni = np.where(zenith_deg < 87.0, (ghi_w_m2 - dhi) / cos_zenith, 0.0)
    return np.maximum(np.nan_to_num(dni), 0.0), dhi


def plane_of_array_w_m2(
    pv: PVSystem,
    sun: SunPosition,
    dni_w_m2: np.ndarray,
    ghi_w_m2: np.ndarray,
    dhi_w_m2: np.ndarray,
    albedo: float = 0.2,
) -> np.ndarray:
    """Isotropic-sky plane-of-array irradiance, W/m² (beam + sky diffuse + ground reflected)."""
    tilt = np.radians(pv.tilt_deg)
    zenith = np.radians(sun.apparent_zenith_deg)
    cos_aoi = np.cos(zenith) * np.cos(tilt) + np.sin(zenith) * np.sin(tilt) * np.cos(
        np.radians(sun.azimuth_deg - pv.azimuth_deg)
    )
    beam = dni_w_m2 * np.maximum(cos_aoi, 0.0)
    sky = dhi_w_m2 * (1.0 + np.cos(tilt)) / 2.0
    ground = ghi_w_m2 * albedo * (1.0 - np.cos(tilt)) / 2.0
    return beam + sky + ground


def solar_resource(
    times_s: np.ndarray, site: Site, weather: Weather, pv: PVSystem
) -> SolarResource:
    """PV output per kWp at each UTC epoch second; exactly 0 when the sun is below the horizon."""
    sun = sun_position(times_s, site.latitude_deg, site.longitude_deg)
    sun_up = sun.zenith_deg < 90.0
    dni_extra = extraterrestrial_w_m2(_day_of_year(times_s))
    turbidity = np.asarray(site.linke_turbidity, dtype=np.float64)[_month_index(times_s)]
    airmass = absolute_airmass(sun.apparent_zenith_deg, site.altitude_m)
    ghi_clear = clear_sky_ghi_w_m2(
        sun.apparent_zenith_deg, airmass, turbidity, site.altitude_m, dni_extra
    )
    ghi = np.where(sun_up, ghi_clear * (1.0 - 0.75 * weather.cloud_cover**3.4), 0.0)
    dni, dhi = erbs_split(ghi, sun.zenith_deg, dni_extra)
    poa = np.where(sun_up, plane_of_array_w_m2(pv, sun, dni, ghi, dhi), 0.0)
    cell_c = weather.temperature_c + poa / (25.0 + 6.84 * 1.5)  # Faiman, wind 1.5 m/s
    dc_per_kwp = poa / 1000.0 * (1.0 + pv.gamma_pdc_per_c * (cell_c - 25.0))
    ac_per_kwp = np.maximum(dc_per_kwp, 0.0) * (1.0 - pv.system_loss) * pv.inverter_efficiency
    return SolarResource(
        zenith_deg=sun.zenith_deg,
        ghi_w_m2=ghi,
        poa_w_m2=poa,
        ac_kw_per_kwp=np.where(sun_up, ac_per_kwp, 0.0),
    )
