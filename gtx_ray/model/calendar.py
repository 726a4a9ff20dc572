"""The campus calendar as a pure function of time: weekdays, Thai public holidays, academic terms
and the time-of-use tariff window.

All inputs are UTC epoch seconds plus the site's UTC offset in seconds (Bangkok: 25,200 s, no
daylight saving), so every process on every node derives the same calendar without talking to
anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import holidays
import numpy as np

SECONDS_PER_DAY = 86_400

# Term kinds, in the order of TERM_KINDS, used as small integer codes in arrays.
TERM_KINDS = ("break", "semester", "exam", "summer")
BREAK, SEMESTER, EXAM, SUMMER = range(4)


@dataclass(frozen=True)
class TermPeriod:
    """A yearly recurring academic period, inclusive, as month-day codes (e.g. 812 = 12 August).

    A period whose start is after its end wraps around the new year.
    """

    kind: int
    start_mmdd: int
    end_mmdd: int


@dataclass(frozen=True)
class CalendarDays:
    """Per-interval calendar facts for a window (arrays of shape (T,))."""

    local_hour: np.ndarray  # local time of day in hours [0, 24)
    weekday: np.ndarray  # 0 = Monday … 6 = Sunday
    is_holiday: np.ndarray  # Thai public holiday
    is_workday: np.ndarray  # Monday–Friday and not a public holiday
    term: np.ndarray  # code into TERM_KINDS


@lru_cache(maxsize=64)
def _holiday_days(country: str, year: int) -> np.ndarray:
    """Public holidays of one year as days since 1970-01-01 (sorted int64)."""
    days = holidays.country_holidays(country, years=year)
    return np.array(sorted(np.datetime64(d, "D").astype(np.int64) for d in days), dtype=np.int64)


def holiday_mask(local_days: np.ndarray, country: str = "TH") -> np.ndarray:
    """True where a local day number (days since 1970-01-01) is a public holiday of ``country``."""
    years = local_days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    known = np.concatenate([_holiday_days(country, int(y)) for y in np.unique(years)])
    return np.isin(local_days, known)


def month_day_code(local_days: np.ndarray) -> np.ndarray:
    """Month * 100 + day of month for day numbers since 1970-01-01."""
    dates = local_days.astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    month = months.astype(np.int64) % 12 + 1
    day = (dates - months.astype("datetime64[D]")).astype(np.int64) + 1
    return month * 100 + day


def term_codes(mmdd: np.ndarray, periods: tuple[TermPeriod, ...]) -> np.ndarray:
    """Academic term code for each month-day code; later periods win where periods overlap."""
    term = np.full(mmdd.shape, BREAK, dtype=np.int8)
    for period in periods:
        if period.start_mmdd <= period.end_mmdd:
            inside = (mmdd >= period.start_mmdd) & (mmdd <= period.end_mmdd)
        else:
            inside = (mmdd >= period.start_mmdd) | (mmdd <= period.end_mmdd)
        term[inside] = period.kind
    return term


def calendar_days(
    times_s: np.ndarray,
    utc_offset_s: int,
    periods: tuple[TermPeriod, ...],
    holiday_country: str = "TH",
) -> CalendarDays:
    """Calendar facts for each UTC epoch second in ``times_s`` (shape (T,))."""
    local_s = np.asarray(times_s, dtype=np.int64) + utc_offset_s
    local_days = local_s // SECONDS_PER_DAY
    weekday = ((local_days + 3) % 7).astype(np.int8)  # 1970-01-01 was a Thursday
    is_holiday = holiday_mask(local_days, holiday_country)
    return CalendarDays(
        local_hour=(local_s % SECONDS_PER_DAY) / 3600.0,
        weekday=weekday,
        is_holiday=is_holiday,
        is_workday=(weekday < 5) & ~is_holiday,
        term=term_codes(month_day_code(local_days), periods),
    )


def on_peak_mask(days: CalendarDays, start_hour: float, end_hour: float) -> np.ndarray:
    """Time-of-use on-peak window: workdays between ``start_hour`` and ``end_hour`` local time.

    MEA's TOU rate for large customers: on-peak 09:00–22:00 Monday–Friday; weekends and public
    holidays are off-peak all day.
    """
    return days.is_workday & (days.local_hour >= start_hour) & (days.local_hour < end_hour)
