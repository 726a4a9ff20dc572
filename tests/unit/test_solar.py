"""The numpy solar chain against pvlib's independent implementations of the same models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib
import pytest

from gtx_ray.model.solar import (
    PVSystem,
    absolute_airmass,
    clear_sky_ghi_w_m2,
    erbs_split,
    extraterrestrial_w_m2,
    plane_of_array_w_m2,
    sun_position,
)

LAT, LON, ALT = 13.78, 100.56, 5.0
# Every 7 minutes through 2025 and a few other years (leap year and far dates included).
TIMES_S = np.concatenate(
    [
        np.arange(1_735_664_400, 1_735_664_400 + 365 * 86_400, 420),
        np.arange(946_684_800, 946_684_800 + 3 * 86_400, 600),  # 2000-01-01
        np.arange(4_102_444_800, 4_102_444_800 + 3 * 86_400, 600),  # 2100-01-01
    ]
)


@pytest.fixture(scope="module")
def reference():
    times = pd.DatetimeIndex(pd.to_datetime(TIMES_S, unit="s", utc=True))
    return times, pvlib.solarposition.get_solarposition(times, LAT, LON, altitude=ALT)


def test_sun_position_matches_nrel_spa(reference):
    _, spa = reference
    sun = sun_position(TIMES_S, LAT, LON)
    assert np.abs(sun.zenith_deg - spa["zenith"].to_numpy()).max() < 0.05
    up = spa["apparent_elevation"].to_numpy() > 1.0
    assert np.abs(sun.apparent_zenith_deg - spa["apparent_zenith"].to_numpy())[up].max() < 0.1
    azimuth_error = np.abs((sun.azimuth_deg - spa["azimuth"].to_numpy() + 180) % 360 - 180)
    away_from_overhead = up & (spa["zenith"].to_numpy() > 5.0)  # azimuth is ill-defined overhead
    assert azimuth_error[away_from_overhead].max() < 0.2


def test_clear_sky_and_decomposition_match_pvlib(reference):
    times, spa = reference
    apparent = spa["apparent_zenith"].to_numpy()
    doy = times.day_of_year.to_numpy()
    dni_extra = extraterrestrial_w_m2(doy)
    np.testing.assert_allclose(dni_extra, pvlib.irradiance.get_extra_radiation(doy), rtol=1e-6)

    airmass = absolute_airmass(apparent, ALT)
    expected_am = pvlib.atmosphere.get_absolute_airmass(
        pvlib.atmosphere.get_relative_airmass(apparent, model="kastenyoung1989"),
        pvlib.atmosphere.alt2pres(ALT),
    )
    up = apparent < 85
    np.testing.assert_allclose(airmass[up], np.asarray(expected_am)[up], rtol=1e-3)

    turbidity = np.full(len(times), 4.5)
    ghi = clear_sky_ghi_w_m2(apparent, airmass, turbidity, ALT, dni_extra)
    with np.errstate(all="ignore"):
        expected = pvlib.clearsky.ineichen(
            apparent, np.asarray(expected_am), turbidity, ALT, dni_extra
        )["ghi"]
    expected = np.nan_to_num(np.asarray(expected))
    np.testing.assert_allclose(ghi[up], expected[up], rtol=2e-3, atol=0.5)
    assert np.all(ghi[apparent >= 90] == 0)

    zenith = spa["zenith"].to_numpy()
    cloudy = ghi * 0.6
    dni, dhi = erbs_split(cloudy, zenith, dni_extra)
    split = pvlib.irradiance.erbs(cloudy, zenith, doy)
    np.testing.assert_allclose(dhi, np.nan_to_num(np.asarray(split["dhi"])), rtol=1e-6, atol=0.02)
    np.testing.assert_allclose(dni, np.nan_to_num(np.asarray(split["dni"])), rtol=1e-6, atol=0.02)


def test_plane_of_array_matches_pvlib_isotropic(reference):
    times, _ = reference
    sun = sun_position(TIMES_S, LAT, LON)
    rng = np.random.default_rng(1)
    ghi = np.where(sun.zenith_deg < 90, rng.uniform(0, 1000, len(TIMES_S)), 0.0)
    dni, dhi = erbs_split(ghi, sun.zenith_deg, extraterrestrial_w_m2(times.day_of_year.to_numpy()))
    pv = PVSystem(tilt_deg=15.0, azimuth_deg=170.0)
    poa = plane_of_array_w_m2(pv, sun, dni, ghi, dhi)
    expected = pvlib.irradiance.get_total_irradiance(
        15.0,
        170.0,
        sun.apparent_zenith_deg,
        sun.azimuth_deg,
        dni,
        ghi,
        dhi,
        albedo=0.2,
        model="isotropic",
    )["poa_global"]
    np.testing.assert_allclose(poa, np.nan_to_num(np.asarray(expected)), rtol=1e-9, atol=1e-6)
