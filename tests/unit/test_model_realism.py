"""The model's curves against published figures (sources named next to each check).

Ranges are deliberately wider than the sources' point values: the model is a stochastic stand-in
for a campus, and a test should fail when the model is wrong, not when the weather is unusual.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gtx_ray.model.calendar import EXAM, SEMESTER
from gtx_ray.model.load import BUILDING_TYPES
from gtx_ray.model.meters import MeterModel
from tests.unit.helpers import column, run

YEAR_2025_BANGKOK = 1_735_664_400  # 2025-01-01 00:00 +07:00
HOURS_2025 = 365 * 24


@pytest.fixture(scope="module", params=[11, 12])
def campus_year(request, campus, campus_meters):
    """One simulated year of the campus at hourly resolution, with local timestamps."""
    model = MeterModel(campus_meters, campus, seed=request.param, interval_s=3600)
    table, _ = run(model, YEAR_2025_BANGKOK, HOURS_2025, window=24 * 30)
    local = pd.to_datetime(YEAR_2025_BANGKOK + 3600 * np.arange(HOURS_2025), unit="s", utc=True)
    return table, local.tz_convert("Asia/Bangkok"), campus_meters


def test_annual_pv_yield_matches_thailand(campus_year):
    # Global Solar Atlas (World Bank / Solargis): specific PV yield in central Thailand is about
    # 1,300–1,500 kWh/kWp per year (Bangkok ≈ 1,400). Accept 1,250–1,600.
    table, _, meters = campus_year
    pv = column(table, "energy_generated", len(meters))  # kW over 1-hour intervals = kWh
    solar = meters.pv_kwp > 0
    yield_kwh_per_kwp = pv.sum(axis=0)[solar] / meters.pv_kwp[solar]
    assert np.all((yield_kwh_per_kwp > 1250) & (yield_kwh_per_kwp < 1600)), yield_kwh_per_kwp
    # Capacity factor of rooftop PV in Thailand ≈ 15–17 %.
    assert 0.14 < yield_kwh_per_kwp.mean() / 8760 < 0.18


def _academic_daily_kwh(campus_year) -> pd.Series:
    table, local, meters = campus_year
    academic = meters.building_type == BUILDING_TYPES.index("academic")
    load = column(table, "energy_consumed", len(meters))[:, academic].sum(axis=1)
    return pd.Series(load, index=local).resample("D").sum()


def test_academic_buildings_work_on_weekdays(campus_year):
    # CU-BEMS (Pipattanasomporn et al., Scientific Data 7:241, 2020): in a Bangkok university
    # office/classroom building, air conditioning and lighting follow weekday office hours, so
    # weekday consumption is a multiple of weekend consumption (roughly 2–3x). Accept 1.8–4.
    daily = _academic_daily_kwh(campus_year)
    in_term = daily.index.month.isin([2, 3, 9, 10, 11])
    weekday = daily.index.day_of_week < 5
    ratio = daily[in_term & weekday].mean() / daily[in_term & ~weekday].mean()
    assert 1.8 < ratio < 4.0, ratio


def test_academic_buildings_idle_between_semesters(campus_year, campus):
    # CU-BEMS (as above) shows the same building's use falling during university breaks, when
    # classrooms close but offices, labs and base loads stay. We know of no published Thai
    # semester/break ratio; 1.3–2.5 on weekdays is an engineering judgement from that data.
    daily = _academic_daily_kwh(campus_year)
    terms = campus.model_terms()
    mmdd = daily.index.month * 100 + daily.index.day
    kind = np.zeros(len(daily), dtype=int)
    for term in terms:
        kind[(mmdd >= term.start_mmdd) & (mmdd <= term.end_mmdd)] = term.kind
    weekday = daily.index.day_of_week < 5
    semester = daily[weekday & (kind == SEMESTER)].mean()
    break_days = daily[
        weekday & ~np.isin(kind, [SEMESTER, EXAM]) & daily.index.month.isin([5, 6, 7, 8])
    ]
    ratio = semester / break_days.mean()
    assert 1.3 < ratio < 2.5, ratio


def test_hottest_months_draw_more_than_the_coolest(campus, campus_meters):
    # TMD 1991–2020 normals: Bangkok's mean temperature is 30.6 °C in April and 26.9 °C in December,
    # i.e. more than twice the cooling degrees above a 24 °C balance point. With occupancy held
    # equal (every day a semester day), the hot season (Mar–May) must draw more than the cool
    # season (Nov–Jan), by roughly the air-conditioning share of that difference: 5–40 %.
    always_term = campus.model_copy(
        update={
            "academic_calendar": [
                campus.academic_calendar[0].model_copy(
                    update={"kind": "semester", "start": "01-01", "end": "12-31"}
                )
            ]
        }
    )
    for seed in (21, 22):
        model = MeterModel(campus_meters, always_term, seed=seed, interval_s=3600)
        table, _ = run(model, YEAR_2025_BANGKOK, HOURS_2025, window=24 * 30)
        local = pd.to_datetime(
            YEAR_2025_BANGKOK + 3600 * np.arange(HOURS_2025), unit="s", utc=True
        ).tz_convert("Asia/Bangkok")
        load = column(table, "energy_consumed", len(campus_meters)).sum(axis=1)
        temperature = column(table, "temperature", len(campus_meters))[:, 0]
        hot = local.month.isin([3, 4, 5])
        cool = local.month.isin([11, 12, 1])
        assert temperature[hot].mean() > temperature[cool].mean() + 1.5
        ratio = load[hot].mean() / load[cool].mean()
        assert 1.05 < ratio < 1.4, ratio


def test_weather_has_bangkoks_seasons_and_days(campus_year):
    table, local, meters = campus_year
    temperature = column(table, "temperature", len(meters))[:, 0]
    humidity = column(table, "humidity", len(meters))[:, 0]
    frame = pd.DataFrame({"t": temperature, "rh": humidity}, index=local)
    daily_max = frame["t"].resample("D").max()
    # TMD normals: mean daily maximum ≈ 35 °C in April, ≈ 32 °C in December.
    assert 33.0 < daily_max[daily_max.index.month == 4].mean() < 37.5
    assert 30.0 < daily_max[daily_max.index.month == 12].mean() < 34.0
    # Afternoon is hotter and drier than dawn, every season.
    by_hour = frame.groupby(frame.index.hour).mean()
    assert by_hour.loc[14, "t"] - by_hour.loc[6, "t"] > 5.0
    assert by_hour.loc[14, "rh"] < by_hour.loc[6, "rh"] - 10.0
    # Temperatures stay inside Bangkok's recorded range (about 10–41 °C).
    assert temperature.min() > 15.0 and temperature.max() < 41.0


def test_load_noise_is_correlated_in_time(campus, campus_meters):
    # Consecutive 15-minute readings of a building differ by a few percent, not by white noise.
    model = MeterModel(campus_meters, campus, seed=3, interval_s=900)
    table, _ = run(model, YEAR_2025_BANGKOK + 40 * 86_400, 96 * 14, window=96)
    load = column(table, "energy_consumed", len(campus_meters))
    step = np.abs(np.diff(load, axis=0)) / campus_meters.capacity_kw
    assert np.median(step) < 0.02
    assert np.quantile(step, 0.999) < 0.25
