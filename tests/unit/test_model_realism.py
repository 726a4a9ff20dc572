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
from gtx_ray.model.weather import site_weather
from tests.unit.helpers import column, run

YEAR_2025_BANGKOK = 1_735_664_400  # 2025-01-01 00:00 +07:00
HOURS_2025 = 365 * 24

# Bangkok climate normals, January first (shared/reference/campus.md): mean daily maximum from the
# UK Met Office holiday-weather table, mean daily minimum from a secondary source (whole °C).
NORMAL_DAILY_MAX_C = (32.7, 33.5, 34.5, 35.6, 34.6, 33.9, 33.3, 33.1, 33.0, 33.1, 33.1, 32.4)
NORMAL_DAILY_MIN_C = (22, 24, 26, 27, 27, 27, 26, 26, 25, 25, 23, 21)


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


def _daily_kwh(campus_year, building_type: str) -> pd.Series:
    """Daily energy of all meters of one building type (local days)."""
    table, local, meters = campus_year
    chosen = meters.building_type == BUILDING_TYPES.index(building_type)
    load = column(table, "energy_consumed", len(meters))[:, chosen].sum(axis=1)
    return pd.Series(load, index=local).resample("D").sum()


def _academic_daily_kwh(campus_year) -> pd.Series:
    return _daily_kwh(campus_year, "academic")


def _term_kind(index: pd.DatetimeIndex, campus) -> np.ndarray:
    """The academic calendar's term code of each day (later periods win, as in the model)."""
    mmdd = index.month * 100 + index.day
    kind = np.zeros(len(index), dtype=int)
    for term in campus.model_terms():
        kind[(mmdd >= term.start_mmdd) & (mmdd <= term.end_mmdd)] = term.kind
    return kind


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
    kind = _term_kind(daily.index, campus)
    weekday = daily.index.day_of_week < 5
    semester = daily[weekday & (kind == SEMESTER)].mean()
    break_days = daily[
        weekday & ~np.isin(kind, [SEMESTER, EXAM]) & daily.index.month.isin([5, 6, 7, 8])
    ]
    ratio = semester / break_days.mean()
    assert 1.3 < ratio < 2.5, ratio


def test_dormitories_hold_their_load_in_the_break(campus_year, campus):
    # Thai campus studies: when teaching stops, residences do not empty like classrooms.
    # Chulalongkorn, 181 meters (Chaloeytoy et al., Buildings 12:1532, 2022): with teaching online,
    # academic buildings and libraries fell most, residences rose. AIT energy reports: in a term
    # break school buildings fell about 17 %, dormitories rose about 47 %. Over the Jun-Jul break
    # and summer session (every day: people live there) the dormitories must hold or rise
    # modestly (1.0-1.25x their semester days) while classrooms and the library fall 10 % or more.
    ratios = {}
    for building_type in ("dormitory", "academic", "library"):
        daily = _daily_kwh(campus_year, building_type)
        kind = _term_kind(daily.index, campus)
        off_term = ~np.isin(kind, [SEMESTER, EXAM]) & daily.index.month.isin([6, 7])
        ratios[building_type] = daily[off_term].mean() / daily[kind == SEMESTER].mean()
    assert 1.0 <= ratios["dormitory"] < 1.25, ratios
    assert ratios["academic"] <= 0.9 and ratios["library"] <= 0.9, ratios


def test_hottest_months_draw_more_than_the_coolest(campus, campus_meters):
    # NORMAL_DAILY_MAX_C / MIN_C: halfway between the mean daily max and min, Bangkok is at 31.3 °C
    # in April and 26.7 °C in December, i.e. more than twice the cooling degrees above a 24 °C
    # balance point. With occupancy held equal (every day a semester day), the hot season (Mar–May)
    # must draw more than the cool season (Nov–Jan), by roughly the air-conditioning share of that
    # difference: 5–40 %.
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


def _daily_extremes(campus_year) -> tuple[pd.Series, pd.Series]:
    table, local, meters = campus_year
    temperature = pd.Series(column(table, "temperature", len(meters))[:, 0], index=local)
    return temperature.resample("D").max(), temperature.resample("D").min()


def test_weather_has_bangkoks_seasons_and_days(campus_year):
    table, local, meters = campus_year
    temperature = column(table, "temperature", len(meters))[:, 0]
    humidity = column(table, "humidity", len(meters))[:, 0]
    frame = pd.DataFrame({"t": temperature, "rh": humidity}, index=local)
    # Afternoon is hotter and drier than dawn, every season.
    by_hour = frame.groupby(frame.index.hour).mean()
    assert by_hour.loc[14, "t"] - by_hour.loc[6, "t"] > 5.0
    assert by_hour.loc[14, "rh"] < by_hour.loc[6, "rh"] - 10.0
    # Temperatures stay inside Bangkok's recorded range (about 10–41 °C).
    assert temperature.min() > 15.0 and temperature.max() < 41.0


def test_monthly_daily_maxima_follow_the_normals(campus_year):
    # Met Office normals (NORMAL_DAILY_MAX_C): every month's mean daily maximum of a simulated
    # year within 0.7 °C of its normal. The rainy season is cloudy, but its afternoons stay near
    # 33 °C: the clouds are already in the normals, so they must not cool Jul-Oct below them.
    daily_max, _ = _daily_extremes(campus_year)
    monthly = daily_max.groupby(daily_max.index.month).mean().to_numpy()
    deviation = monthly - np.array(NORMAL_DAILY_MAX_C)
    assert np.all(np.abs(deviation) < 0.7), np.round(deviation, 2)
    # April is the hottest month and December the coolest by daily maximum; no month of the rainy
    # season (Jul-Oct) is as cool as December.
    assert monthly.argmax() == 3, np.round(monthly, 2)
    assert monthly.argmin() == 11, np.round(monthly, 2)
    assert np.all(monthly[6:10] > monthly[11] + 0.3), np.round(monthly, 2)


def test_monthly_daily_minima_follow_the_normals(campus_year):
    # Secondary-source normals of the daily minimum (whole °C, NORMAL_DAILY_MIN_C): within 1 °C.
    _, daily_min = _daily_extremes(campus_year)
    monthly = daily_min.groupby(daily_min.index.month).mean().to_numpy()
    deviation = monthly - np.array(NORMAL_DAILY_MIN_C)
    assert np.all(np.abs(deviation) < 1.0), np.round(deviation, 2)


@pytest.mark.parametrize("seed", [11, 12])
def test_cloudy_afternoons_are_cooler_than_clear_ones(campus, seed):
    # Clouds cool the day they come with, not the season: within every month, the cloudiest third
    # of the days (12:00-16:00 cloud cover) has a lower mean daily maximum than the clearest third;
    # over the rainy season (May-Oct) and over the dry months, by more than 1 °C (a Bangkok
    # afternoon under a shower runs a few degrees below a sunny one).
    times = YEAR_2025_BANGKOK + 3600 * np.arange(HOURS_2025) + 1800.0
    weather = site_weather(seed, times, campus.site.utc_offset_s, campus.model_climate())
    daily_max = weather.temperature_c.reshape(-1, 24).max(axis=1)
    afternoon_cloud = weather.cloud_cover.reshape(-1, 24)[:, 12:16].mean(axis=1)
    month = pd.to_datetime(times[::24], unit="s", utc=True).tz_convert("Asia/Bangkok").month
    clear, cloudy = np.zeros(len(month), bool), np.zeros(len(month), bool)
    anomaly = np.zeros(len(month))
    for m in range(1, 13):
        days = month == m
        clear_cut, cloudy_cut = np.quantile(afternoon_cloud[days], [1 / 3, 2 / 3])
        clear |= days & (afternoon_cloud <= clear_cut)
        cloudy |= days & (afternoon_cloud >= cloudy_cut)
        anomaly[days] = daily_max[days] - daily_max[days].mean()
        cooling = daily_max[days & clear].mean() - daily_max[days & cloudy].mean()
        assert cooling > 0.0, (m, cooling)
    for season in ([5, 6, 7, 8, 9, 10], [11, 12, 1, 2, 3, 4]):
        within = np.isin(month, season)
        cooling = anomaly[within & clear].mean() - anomaly[within & cloudy].mean()
        assert cooling > 1.0, (season, cooling)


def test_load_noise_is_correlated_in_time(campus, campus_meters):
    # Consecutive 15-minute readings of a building differ by a few percent, not by white noise.
    model = MeterModel(campus_meters, campus, seed=3, interval_s=900)
    table, _ = run(model, YEAR_2025_BANGKOK + 40 * 86_400, 96 * 14, window=96)
    load = column(table, "energy_consumed", len(campus_meters))
    step = np.abs(np.diff(load, axis=0)) / campus_meters.capacity_kw
    assert np.median(step) < 0.02
    assert np.quantile(step, 0.999) < 0.25
