"""Prices as a pure function of time: the configured TOU tariff, tariff changes, price intervals,
and the costs the readings carry."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gtx_ray.fleet import TariffSpec
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from gtx_ray.model.tariff import PriceInterval, TimeOfUseTariff, prices
from tests.unit.helpers import DAY_S, column

MONDAY = 1_735_664_400 + 12 * DAY_S  # Mon 13 Jan 2025 00:00 +07:00
SONGKRAN_MONDAY = 1_735_664_400 + 103 * DAY_S  # Mon 14 Apr 2025, a Thai public holiday
BANGKOK = 25_200
STEP = 900


def _week(start_s: int = MONDAY, days: int = 7) -> np.ndarray:
    return start_s + STEP * np.arange(days * 96, dtype=np.int64)


def _prices(campus, starts, tariffs=(), intervals=()):
    return prices((campus.model_tariff(), *tariffs), intervals, starts, STEP, BANGKOK)


def _local_hour(starts: np.ndarray) -> np.ndarray:
    return ((starts + STEP / 2 + BANGKOK) % DAY_S) / 3600


def test_the_configured_tariff_is_on_peak_on_weekdays_only(campus):
    starts = _week()
    p = _prices(campus, starts)
    t = campus.tariff
    weekday = (starts - MONDAY) // DAY_S < 5
    hour = _local_hour(starts)
    on_peak = weekday & (hour >= 9) & (hour < 22)
    expected = np.where(on_peak, t.on_peak_thb_per_kwh, t.off_peak_thb_per_kwh) + t.ft_thb_per_kwh
    np.testing.assert_array_equal(p.import_thb_per_kwh, expected)
    np.testing.assert_array_equal(p.export_thb_per_kwh, 2.2)
    np.testing.assert_array_equal(p.expensive, on_peak)
    np.testing.assert_array_equal(p.cheap, ~on_peak)

    holiday = _prices(campus, _week(SONGKRAN_MONDAY, days=1))
    assert np.all(holiday.cheap) and not holiday.expensive.any()
    np.testing.assert_array_equal(
        holiday.import_thb_per_kwh, t.off_peak_thb_per_kwh + t.ft_thb_per_kwh
    )


def test_a_tariff_change_at_x_changes_prices_from_x(campus):
    starts = _week()
    x = MONDAY + 2 * DAY_S + 12 * 3600  # Wednesday noon
    new = replace(
        campus.model_tariff(),
        effective_from_s=x,
        on_peak_start_hour=13.0,
        on_peak_end_hour=17.0,
        on_peak_thb_per_kwh=6.0,
        name="summer 2025",
    )
    before, after = _prices(campus, starts), _prices(campus, starts, tariffs=(new,))
    changed = starts >= x
    np.testing.assert_array_equal(
        after.import_thb_per_kwh[~changed], before.import_thb_per_kwh[~changed]
    )
    hour = _local_hour(starts)
    weekday = (starts - MONDAY) // DAY_S < 5
    peak = changed & weekday & (hour >= 13) & (hour < 17)
    np.testing.assert_allclose(after.import_thb_per_kwh[peak], 6.0 + new.ft_thb_per_kwh)
    off = changed & ~peak
    np.testing.assert_allclose(after.import_thb_per_kwh[off], 2.6037 + 0.3972)
    assert after.import_thb_per_kwh[starts == x][0] != before.import_thb_per_kwh[starts == x][0]
    # From Thursday on, the moved window is what is expensive.
    thursday = starts >= MONDAY + 3 * DAY_S
    np.testing.assert_array_equal(after.expensive[thursday], peak[thursday])


def test_the_latest_effective_tariff_wins_in_any_order(campus):
    starts = _week(days=2)
    a = replace(campus.model_tariff(), effective_from_s=MONDAY + 3600, off_peak_thb_per_kwh=1.0)
    b = replace(campus.model_tariff(), effective_from_s=MONDAY + 7200, off_peak_thb_per_kwh=2.0)
    for order in ((a, b), (b, a)):
        p = _prices(campus, starts, tariffs=order)
        assert p.import_thb_per_kwh[0] == pytest.approx(2.6037 + 0.3972)
        assert p.import_thb_per_kwh[4] == pytest.approx(1.0 + 0.3972)
        assert p.import_thb_per_kwh[8] == pytest.approx(2.0 + 0.3972)


def test_price_intervals_override_the_tariff_and_move_the_expensive_hours(campus):
    starts = _week(days=1)
    spike = PriceInterval(MONDAY + 3 * 3600, 3600, import_thb_per_kwh=10.0, export_thb_per_kwh=8.0)
    quiet = PriceInterval(MONDAY + 5 * 3600, 1800, import_thb_per_kwh=1.5)
    p = _prices(campus, starts, intervals=(spike, quiet))
    base = _prices(campus, starts)
    hour = _local_hour(starts)
    in_spike, in_quiet = (hour >= 3) & (hour < 4), (hour >= 5) & (hour < 5.5)
    np.testing.assert_array_equal(p.import_thb_per_kwh[in_spike], 10.0)
    np.testing.assert_array_equal(p.export_thb_per_kwh[in_spike], 8.0)
    np.testing.assert_array_equal(p.import_thb_per_kwh[in_quiet], 1.5)
    np.testing.assert_array_equal(p.export_thb_per_kwh[in_quiet], 2.2)  # the tariff's
    rest = ~in_spike & ~in_quiet
    np.testing.assert_array_equal(p.import_thb_per_kwh[rest], base.import_thb_per_kwh[rest])
    # The day now spans 1.5–10 THB/kWh: only the spike is above the midpoint, only the quiet
    # half hour is at the lowest price.
    np.testing.assert_array_equal(p.expensive, in_spike)
    np.testing.assert_array_equal(p.cheap, in_quiet)


def test_expensive_and_cheap_do_not_depend_on_the_window(campus):
    starts = _week()
    spike = PriceInterval(MONDAY + DAY_S + 20 * 3600, 2700, import_thb_per_kwh=9.0)
    whole = _prices(campus, starts, intervals=(spike,))
    for cut in (1, 37, 96, 200, 500):
        head = _prices(campus, starts[:cut], intervals=(spike,))
        tail = _prices(campus, starts[cut:], intervals=(spike,))
        for name in ("import_thb_per_kwh", "export_thb_per_kwh", "expensive", "cheap"):
            joined = np.concatenate([getattr(head, name), getattr(tail, name)])
            np.testing.assert_array_equal(joined, getattr(whole, name), err_msg=f"{name} @{cut}")
    one = _prices(campus, starts[96 + 80 : 96 + 81], intervals=(spike,))  # Tuesday 20:00 alone
    assert one.expensive[0] and not one.cheap[0]


def test_a_flat_day_is_cheap_all_day(campus):
    flat = replace(campus.model_tariff(), effective_from_s=MONDAY, on_peak_thb_per_kwh=2.6037)
    p = _prices(campus, _week(days=1), tariffs=(flat,))
    assert np.all(p.cheap) and not p.expensive.any()


def test_prices_need_a_tariff_in_force(campus):
    late = replace(campus.model_tariff(), effective_from_s=MONDAY + 3600)
    with pytest.raises(ValueError, match="no tariff in force"):
        prices((late,), (), _week(days=1), STEP, BANGKOK)
    with pytest.raises(ValueError, match="on-peak hours"):
        replace(late, on_peak_start_hour=20.0, on_peak_end_hour=9.0)
    with pytest.raises(ValueError, match="positive duration"):
        PriceInterval(MONDAY, 0, 3.0)


def test_readings_carry_the_price_and_costs(campus, campus_meters):
    model = MeterModel(campus_meters, campus, seed=5, interval_s=STEP)
    x = MONDAY + 10 * 3600 + 7 * 60  # 10:07; interval 40 (10:00–10:15) is priced at 10:07:30
    dearer = replace(
        campus.model_tariff(), effective_from_s=x, on_peak_thb_per_kwh=5.0, export_thb_per_kwh=1.0
    )
    noon = PriceInterval(MONDAY + 12 * 3600, 3600, 7.0, export_thb_per_kwh=3.0)
    inputs = ModelInputs(tariffs=(dearer,), prices=(noon,))
    batch = model.step(model.initial_state(MONDAY), 96, inputs=inputs).batch
    n = len(campus_meters)
    price = column(batch, "price_thb_per_kwh", n)
    imported = column(batch, "energy_import_kwh", n)
    exported = column(batch, "energy_export_kwh", n)
    expected = _prices(campus, _week(days=1), tariffs=(dearer,), intervals=(noon,))
    np.testing.assert_array_equal(price, np.tile(expected.import_thb_per_kwh[:, None], (1, n)))
    np.testing.assert_array_equal(column(batch, "import_cost_thb", n), imported * price)
    np.testing.assert_array_equal(
        column(batch, "export_credit_thb", n), exported * expected.export_thb_per_kwh[:, None]
    )
    assert exported[48:52].sum() > 0, "PV exports at noon, so the export credit is exercised"
    interval = np.arange(96)
    assert np.all(price[(interval >= 36) & (interval < 40)] == 4.1839 + 0.3972)  # 09:00–10:00
    assert np.all(price[(interval >= 40) & (interval < 48)] == 5.0 + 0.3972)
    assert np.all(price[48:52] == 7.0)


def test_the_campus_config_credits_exports():
    assert TariffSpec().export_thb_per_kwh == 2.2  # configs without it still load
    with pytest.raises(ValueError):
        TariffSpec(on_peak_start_hour=22, on_peak_end_hour=9)


def test_a_campus_tariff_is_in_force_from_the_beginning_of_time(campus):
    tariff = campus.model_tariff()
    assert isinstance(tariff, TimeOfUseTariff)
    assert tariff.export_thb_per_kwh == campus.tariff.export_thb_per_kwh == 2.2
    p = prices((tariff,), (), np.array([-86_400 * 365 * 50]), STEP, BANGKOK)
    assert p.import_thb_per_kwh[0] == pytest.approx(2.6037 + 0.3972)
