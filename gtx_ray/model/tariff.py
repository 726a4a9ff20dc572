"""Electricity prices as a pure function of time: time-of-use tariffs and explicit price intervals.

Prices are inputs to a window, like time. The tariff in force at a time is the one with the latest
``effective_from_s`` at or before it; an explicit ``PriceInterval`` (for example one learned from
an IEEE 2030.5 server's TimeTariffIntervals) overrides the tariff while it lasts. An interval of
readings is priced at its mid-point.

Whether an interval is expensive or cheap is judged against its local calendar day: the day's
lowest and highest import prices are found by pricing every interval of that day on the
epoch-aligned grid, so the answer is the same whichever window the interval falls in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gtx_ray.model.calendar import SECONDS_PER_DAY, calendar_days, on_peak_mask

ALWAYS_S = -(2**62)  # an effective_from_s before every simulated time (UTC epoch s)


@dataclass(frozen=True)
class TimeOfUseTariff:
    """A two-rate time-of-use tariff in force from ``effective_from_s`` (UTC epoch s).

    On-peak is [on_peak_start_hour, on_peak_end_hour) local time, Monday–Friday except public
    holidays; weekends and holidays are off-peak all day. Energy rates, the fuel adjustment
    ``ft_thb_per_kwh`` (added to every imported kWh) and the export credit are THB/kWh.
    """

    effective_from_s: int
    on_peak_start_hour: float
    on_peak_end_hour: float
    on_peak_thb_per_kwh: float
    off_peak_thb_per_kwh: float
    ft_thb_per_kwh: float
    export_thb_per_kwh: float
    name: str = "TOU"

    def __post_init__(self) -> None:
        if not 0.0 <= self.on_peak_start_hour <= self.on_peak_end_hour <= 24.0:
            raise ValueError(
                f"tariff {self.name}: on-peak hours must satisfy 0 ≤ start ≤ end ≤ 24, got "
                f"{self.on_peak_start_hour}–{self.on_peak_end_hour}"
            )


@dataclass(frozen=True)
class PriceInterval:
    """An explicit price for [start_s, start_s + duration_s) (UTC epoch s, s) that overrides the
    tariff: import price all-in (energy + Ft), THB/kWh; export credit, THB/kWh (None: the
    tariff's)."""

    start_s: int
    duration_s: int
    import_thb_per_kwh: float
    export_thb_per_kwh: float | None = None

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise ValueError(f"a price interval needs a positive duration, got {self.duration_s}")


@dataclass(frozen=True)
class Prices:
    """Prices of each interval of a window, shape (T,) each.

    import_thb_per_kwh: import price in force incl. Ft; export_thb_per_kwh: export credit;
    expensive: import price above the midpoint of the local day's lowest and highest import price;
    cheap: import price at the day's lowest.
    """

    import_thb_per_kwh: np.ndarray
    export_thb_per_kwh: np.ndarray
    expensive: np.ndarray
    cheap: np.ndarray


def price_at(
    tariffs: tuple[TimeOfUseTariff, ...],
    intervals: tuple[PriceInterval, ...],
    times_s: np.ndarray,
    utc_offset_s: int,
    holiday_country: str = "TH",
) -> tuple[np.ndarray, np.ndarray]:
    """Import price (incl. Ft) and export credit in force at each UTC epoch second, THB/kWh, (T,).

    Among tariffs the latest ``effective_from_s`` ≤ t wins (ties: the later in the tuple); among
    price intervals holding t the latest start wins (ties: the later in the tuple). Raises
    ValueError where no tariff is in force.
    """
    times = np.asarray(times_s, dtype=np.float64)
    days = calendar_days(times, utc_offset_s, (), holiday_country)
    importing = np.full(times.shape, np.nan)
    exporting = np.full(times.shape, np.nan)
    for tariff in sorted(tariffs, key=lambda t: t.effective_from_s):  # stable: ties keep order
        now = times >= tariff.effective_from_s
        on_peak = on_peak_mask(days, tariff.on_peak_start_hour, tariff.on_peak_end_hour)
        energy = np.where(on_peak, tariff.on_peak_thb_per_kwh, tariff.off_peak_thb_per_kwh)
        importing = np.where(now, energy + tariff.ft_thb_per_kwh, importing)
        exporting = np.where(now, tariff.export_thb_per_kwh, exporting)
    if np.isnan(importing).any():
        first = times[np.isnan(importing)].min()
        raise ValueError(f"no tariff in force at {first:.0f} s (UTC epoch): add an earlier one")
    for interval in sorted(intervals, key=lambda p: p.start_s):
        inside = (times >= interval.start_s) & (times < interval.start_s + interval.duration_s)
        importing = np.where(inside, interval.import_thb_per_kwh, importing)
        if interval.export_thb_per_kwh is not None:
            exporting = np.where(inside, interval.export_thb_per_kwh, exporting)
    return importing, exporting


def prices(
    tariffs: tuple[TimeOfUseTariff, ...],
    intervals: tuple[PriceInterval, ...],
    starts_s: np.ndarray,
    interval_s: int,
    utc_offset_s: int,
    holiday_country: str = "TH",
) -> Prices:
    """Prices of the intervals starting at ``starts_s`` (UTC epoch s, (T,), on a grid of
    ``interval_s`` seconds), priced at their mid-points, with each one's expensive / cheap flag
    judged against every interval of its local calendar day (see the module docstring)."""
    starts = np.asarray(starts_s, dtype=np.int64)
    mids = starts + interval_s / 2.0
    importing, exporting = price_at(tariffs, intervals, mids, utc_offset_s, holiday_country)
    if not len(starts):
        empty = np.zeros(0, dtype=bool)
        return Prices(importing, exporting, empty, empty.copy())

    # Every interval mid-point of each local day the window touches, on the window's grid.
    phase = float(mids[0] - np.floor(mids[0] / interval_s) * interval_s)
    local_day = (np.floor(mids).astype(np.int64) + utc_offset_s) // SECONDS_PER_DAY
    day_numbers, which_day = np.unique(local_day, return_inverse=True)
    day_start_s = day_numbers * SECONDS_PER_DAY - utc_offset_s  # UTC epoch s of local midnight
    first_mid = np.ceil((day_start_s - phase) / interval_s) * interval_s + phase
    per_day = SECONDS_PER_DAY // interval_s + 1
    grid = first_mid[:, None] + interval_s * np.arange(per_day)[None, :]  # (D, per_day)
    in_day = grid < (day_start_s + SECONDS_PER_DAY)[:, None]
    day_import, _ = price_at(tariffs, intervals, grid.ravel(), utc_offset_s, holiday_country)
    day_import = day_import.reshape(grid.shape)
    lowest = np.where(in_day, day_import, np.inf).min(axis=1)[which_day]
    highest = np.where(in_day, day_import, -np.inf).max(axis=1)[which_day]
    expensive = importing > (lowest + highest) / 2.0
    cheap = importing <= lowest
    return Prices(importing, exporting, expensive, cheap)
