"""Rooftop PV output per kWp at the site, from sun position, clear-sky irradiance and cloud cover.

Chain (each step a published model, via pvlib):
1. Sun position: NREL SPA (Reda & Andreas 2004), ``pvlib.solarposition.get_solarposition``.
2. Clear-sky GHI/DNI/DHI: Ineichen–Perez (2002) with monthly Linke turbidity for the site.
3. Cloud cover → GHI: Kasten & Czeplak (1980), GHI = GHI_clear · (1 − 0.75 · C^3.4).
4. GHI → DNI/DHI: Erbs et al. (1982); plane of array: isotropic sky (Liu & Jordan 1963).
5. Cell temperature: Faiman (2008); DC power with a linear temperature coefficient (PVWatts,
   Dobos 2014), system losses, inverter efficiency and a per-meter AC limit applied by the caller.

Everything here is site-level (shape (T,)); per-meter scaling is a multiplication by kWp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pvlib

from gtx_ray.model.weather import Weather


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
class SolarResource:
    """Site-level solar quantities for a window (arrays of shape (T,))."""

    zenith_deg: np.ndarray
    ghi_w_m2: np.ndarray  # global horizontal irradiance under the simulated clouds
    poa_w_m2: np.ndarray  # plane-of-array irradiance
    ac_kw_per_kwp: np.ndarray  # AC output per kWp before the inverter limit, kW/kWp


def solar_resource(
    times_s: np.ndarray, site: Site, weather: Weather, pv: PVSystem
) -> SolarResource:
    """PV output per kWp at each UTC epoch second; exactly 0 when the sun is below the horizon."""
    times = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(times_s, dtype=np.int64), unit="s", utc=True)
    )
    position = pvlib.solarposition.get_solarposition(
        times, site.latitude_deg, site.longitude_deg, altitude=site.altitude_m
    )
    apparent_zenith = position["apparent_zenith"].to_numpy()
    zenith = position["zenith"].to_numpy()
    azimuth = position["azimuth"].to_numpy()
    sun_up = zenith < 90.0

    months = times.month.to_numpy() - 1
    turbidity = np.asarray(site.linke_turbidity, dtype=np.float64)[months]
    airmass = pvlib.atmosphere.get_absolute_airmass(
        pvlib.atmosphere.get_relative_airmass(apparent_zenith),
        pvlib.atmosphere.alt2pres(site.altitude_m),
    )
    dni_extra = pvlib.irradiance.get_extra_radiation(times.day_of_year.to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):  # pvlib divides by airmass at night
        clear = pvlib.clearsky.ineichen(
            apparent_zenith, airmass, turbidity, site.altitude_m, dni_extra
        )
    ghi_clear = np.nan_to_num(np.asarray(clear["ghi"], dtype=np.float64))

    ghi = ghi_clear * (1.0 - 0.75 * weather.cloud_cover**3.4)
    ghi = np.where(sun_up, np.maximum(ghi, 0.0), 0.0)
    split = pvlib.irradiance.erbs(ghi, zenith, times.day_of_year.to_numpy())
    poa = pvlib.irradiance.get_total_irradiance(
        pv.tilt_deg,
        pv.azimuth_deg,
        apparent_zenith,
        azimuth,
        np.nan_to_num(np.asarray(split["dni"], dtype=np.float64)),
        ghi,
        np.nan_to_num(np.asarray(split["dhi"], dtype=np.float64)),
        albedo=0.2,
        model="isotropic",
    )["poa_global"]
    poa = np.where(sun_up, np.maximum(np.nan_to_num(np.asarray(poa, dtype=np.float64)), 0.0), 0.0)

    cell_c = pvlib.temperature.faiman(poa, weather.temperature_c, wind_speed=1.5)
    dc_per_kwp = poa / 1000.0 * (1.0 + pv.gamma_pdc_per_c * (cell_c - 25.0))
    ac_per_kwp = np.maximum(dc_per_kwp, 0.0) * (1.0 - pv.system_loss) * pv.inverter_efficiency
    return SolarResource(
        zenith_deg=zenith,
        ghi_w_m2=ghi,
        poa_w_m2=poa,
        ac_kw_per_kwp=np.where(sun_up, ac_per_kwp, 0.0),
    )
