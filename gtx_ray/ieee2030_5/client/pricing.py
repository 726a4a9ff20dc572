"""Pricing, the meter's side: poll the TariffProfile it is assigned and learn the import price
of each TimeTariffInterval (THB/kWh), for the battery to dispatch against.

Each poll reads the first TariffProfileList linked (DeviceCapability or FunctionSetAssignments),
the profile of the lowest primacy, its RateComponents, and of the one that prices imported
energy (its ReadingType's flowDirection 1; the first one when none says) the
TimeTariffIntervalList; a ConsumptionTariffInterval price is read once per interval (by mRID)
and scaled by the profile's ``pricePowerOfTenMultiplier``. Each poll's list replaces the last
(an interval the server withdrew, e.g. after a tariff change, is forgotten). Prices are in the
profile's currency (the campus: 764, THB).
"""

from __future__ import annotations

import threading

from gtx_ray.ieee2030_5.client.discovery import Links
from gtx_ray.ieee2030_5.client.event_documents import parse_first_price, parse_time_tariff_interval
from gtx_ray.ieee2030_5.client.session import Session, rate, text
from gtx_ray.ieee2030_5.codec import children
from gtx_ray.ieee2030_5.events import TariffInterval

DEFAULT_POLL_RATE_S = 900
MAX_INTERVALS = 2_000
IMPORT_FLOW = "1"


class PricingPoller:
    """One meter's pricing function set; ``intervals()`` hands the prices learned to the model."""

    name = "pricing"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._intervals: dict[int, TariffInterval] = {}  # by TimeTariffInterval mRID
        self._flow_of: dict[str, str | None] = {}  # ReadingType href → flowDirection
        self.currency: int | None = None

    def intervals(self) -> list[TariffInterval]:
        with self._lock:
            return sorted(self._intervals.values(), key=lambda i: i.start)

    def detail(self) -> dict[str, object]:
        with self._lock:
            return {"price_intervals": len(self._intervals), "currency": self.currency}

    async def poll(self, session: Session, links: Links, now: int) -> float:
        urls = links.all("TariffProfileListLink")
        if not urls:
            return float(DEFAULT_POLL_RATE_S)
        size = session.settings.list_page_size
        doc = await session.get(urls[0].update_query(s=0, l=size), "TariffProfileList")
        poll_rate = float(rate(doc.get("pollRate"), DEFAULT_POLL_RATE_S))
        profiles = children(doc, "TariffProfile")
        if not profiles:
            return poll_rate
        profile = min(profiles, key=lambda p: int(text(p, "primacy") or 255))
        power = int(text(profile, "pricePowerOfTenMultiplier") or 0)
        currency = text(profile, "currency")
        self.currency = int(currency) if currency and currency.isdigit() else None
        rc_url = session.href(profile, "RateComponentListLink", required=False)
        if rc_url is None:
            return poll_rate
        components = await session.read_list(rc_url, "RateComponentList", "RateComponent")
        chosen = None
        for rc in components:
            rt = session.href(rc, "ReadingTypeLink", required=False)
            if rt is not None and await self._flow(session, str(rt)) == IMPORT_FLOW:
                chosen = rc
                break
        chosen = chosen if chosen is not None else (components[0] if components else None)
        tti_url = (
            session.href(chosen, "TimeTariffIntervalListLink", required=False)
            if chosen is not None
            else None
        )
        if tti_url is None:
            return poll_rate
        items = await session.read_list(tti_url, "TimeTariffIntervalList", "TimeTariffInterval")
        learned = {}
        with self._lock:
            known = dict(self._intervals)
        for item in items:
            tti = parse_time_tariff_interval(item)
            if tti.mrid in known:
                learned[tti.mrid] = known[tti.mrid]
                continue
            if tti.cti_href is None:
                continue
            cti = await session.get(session.join(tti.cti_href), "ConsumptionTariffIntervalList")
            price = parse_first_price(cti, power)
            if price is not None:
                learned[tti.mrid] = TariffInterval(tti.start, tti.duration, tti.tou_tier, price)
        if len(learned) > MAX_INTERVALS:
            newest = sorted(learned, key=lambda m: learned[m].start)[-MAX_INTERVALS:]
            learned = {m: learned[m] for m in newest}
        with self._lock:  # what the server lists now replaces what it listed before
            self._intervals = learned
        return poll_rate

    async def _flow(self, session: Session, href: str) -> str | None:
        if href not in self._flow_of:
            doc = await session.get(session.join(href), "ReadingType")
            self._flow_of[href] = text(doc, "flowDirection")
        return self._flow_of[href]
