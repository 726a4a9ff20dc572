"""Pricing state: the campus time-of-use tariff as one TariffProfile with two RateComponents
(energy imported, energy exported), their TimeTariffIntervals generated for the calendar.

The tariff is a sequence of ``TimeOfUseRates``, each in force from its ``effective_from``; an
operator's tariff change adds one. TimeTariffIntervals are not a stored list: they are made on
request for the days around the time asked about (working days: off-peak, on-peak, off-peak;
weekends and Thai public holidays: off-peak all day), so they follow the simulated calendar
for any year. An interval's id is its start (epoch s), stable across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from gtx_ray.ieee2030_5.events import (
    TOU_OFF_PEAK,
    TOU_ON_PEAK,
    TariffInterval,
    TimeOfUseRates,
    event_mrid,
)
from gtx_ray.ieee2030_5.server.errors import BadRequest, NotFound
from gtx_ray.model.calendar import holiday_mask

DAY_S = 86_400
RC_IMPORT, RC_EXPORT = 1, 2
MAX_TARIFFS = 1_000


@dataclass(frozen=True, slots=True)
class RateComponentInfo:
    """A RateComponent: id, mRID, description, ReadingType flowDirection (1 import, 19 export)."""

    id: int
    mrid: int
    description: str
    flow_direction: int


RATE_COMPONENTS = {
    RC_IMPORT: RateComponentInfo(RC_IMPORT, event_mrid("rc", RC_IMPORT), "energy imported", 1),
    RC_EXPORT: RateComponentInfo(RC_EXPORT, event_mrid("rc", RC_EXPORT), "energy exported", 19),
}
PROFILE_ID = 1
PROFILE_MRID = event_mrid("tp", PROFILE_ID)


def check_rates(rates: TimeOfUseRates) -> None:
    """BadRequest naming the field of a tariff that cannot be."""
    if not 0 <= rates.on_peak_start_hour < rates.on_peak_end_hour <= 24:
        raise BadRequest(
            "on_peak_start_hour and on_peak_end_hour must satisfy 0 <= start < end <= 24, got "
            f"{rates.on_peak_start_hour} and {rates.on_peak_end_hour}"
        )
    for name in ("on_peak_thb_per_kwh", "off_peak_thb_per_kwh", "ft_thb_per_kwh"):
        value = getattr(rates, name)
        if not -100 <= value <= 100:
            raise BadRequest(f"{name} must be -100..100 THB/kWh, got {value}")
    if not 0 <= rates.export_thb_per_kwh <= 100:
        raise BadRequest(
            f"export_thb_per_kwh must be 0..100 THB/kWh, got {rates.export_thb_per_kwh}"
        )
    if len(rates.name) > 20:
        raise BadRequest(f"name must be at most 20 characters (rateCode), got {len(rates.name)}")


class TariffBook:
    """The tariff's history (``rates``, sorted by effective_from) and the site's UTC offset
    (s) and holiday country, which place on-peak hours on the calendar."""

    def __init__(self, utc_offset_s: int = 25_200, holiday_country: str = "TH") -> None:
        self.utc_offset_s = utc_offset_s
        self.holiday_country = holiday_country
        self.rates: list[TimeOfUseRates] = []
        self.changed = False

    def add(self, rates: TimeOfUseRates) -> TimeOfUseRates:
        """A tariff in force from ``rates.effective_from``; one with the same start replaces it."""
        check_rates(rates)
        kept = [r for r in self.rates if r.effective_from != rates.effective_from]
        if len(kept) >= MAX_TARIFFS:
            raise BadRequest(f"at most {MAX_TARIFFS} tariff changes are kept")
        self.rates = sorted([*kept, rates], key=lambda r: r.effective_from)
        self.changed = True
        return rates

    def remove(self, effective_from: int) -> None:
        kept = [r for r in self.rates if r.effective_from != effective_from]
        if len(kept) == len(self.rates):
            raise NotFound(f"no tariff change effective from {effective_from}")
        self.rates = kept
        self.changed = True

    def in_force(self, t: int) -> TimeOfUseRates | None:
        """The tariff in force at ``t`` (epoch s): the latest effective_from ≤ t."""
        found = None
        for r in self.rates:
            if r.effective_from <= t:
                found = r
        return found if found is not None else (self.rates[0] if self.rates else None)

    def rate_component(self, rc_id: int) -> RateComponentInfo:
        found = RATE_COMPONENTS.get(rc_id)
        if found is None:
            raise NotFound(f"no rate component {rc_id}")
        return found

    def intervals(self, rc_id: int, start: int, end: int) -> list[TariffInterval]:
        """TimeTariffIntervals of a rate component covering the local days that meet
        [start, end) (epoch s), in time order, split where the tariff changes."""
        self.rate_component(rc_id)
        if not self.rates or end <= start:
            return []
        off = self.utc_offset_s
        first_day = (start + off) // DAY_S
        last_day = (end - 1 + off) // DAY_S
        days = np.arange(first_day, last_day + 1, dtype=np.int64)
        holidays = holiday_mask(days, self.holiday_country)
        out: list[TariffInterval] = []
        for day, holiday in zip(days.tolist(), holidays.tolist(), strict=True):
            day_start = day * DAY_S - off
            working = (day + 3) % 7 < 5 and not holiday  # epoch day 0 was a Thursday
            out.extend(self._day(rc_id, day_start, working))
        return out

    def _day(self, rc_id: int, day_start: int, working: bool) -> list[TariffInterval]:
        rates = self.in_force(day_start)
        assert rates is not None
        if rc_id == RC_EXPORT or not working:  # export credit is flat
            pieces = [(day_start, DAY_S, TOU_OFF_PEAK)]
        else:
            on = day_start + round(rates.on_peak_start_hour * 3600)
            off = day_start + round(rates.on_peak_end_hour * 3600)
            pieces = [
                (day_start, on - day_start, TOU_OFF_PEAK),
                (on, off - on, TOU_ON_PEAK),
                (off, day_start + DAY_S - off, TOU_OFF_PEAK),
            ]
        out = []
        for begin, length, tier in pieces:
            if length <= 0:
                continue
            out.extend(self._split_at_changes(rc_id, begin, length, tier))
        return out

    def _split_at_changes(
        self, rc_id: int, begin: int, length: int, tier: int
    ) -> list[TariffInterval]:
        cuts = [r.effective_from for r in self.rates if begin < r.effective_from < begin + length]
        bounds = [begin, *cuts, begin + length]
        out = []
        for a, b in pairwise(bounds):
            rates = self.in_force(a)
            assert rates is not None
            price = rates.export_thb_per_kwh if rc_id == RC_EXPORT else rates.import_price(tier)
            out.append(TariffInterval(a, b - a, tier, price))
        return out
