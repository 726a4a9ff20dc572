"""TariffProfile, RateComponent, TimeTariffInterval and ConsumptionTariffInterval documents
(/tp...). Prices are THB × 10^PRICE_POWER_OF_TEN per kWh (TariffProfile.currency 764)."""

from __future__ import annotations

from lxml import etree

from gtx_ray.ieee2030_5.codec import hex_text, leaf, link, node, root, serialize
from gtx_ray.ieee2030_5.events import ACTIVE, CURRENCY_THB, SCHEDULED, TariffInterval, event_mrid
from gtx_ray.ieee2030_5.models import Page
from gtx_ray.ieee2030_5.server.managers.pricing import IntervalPage, ProfileView
from gtx_ray.ieee2030_5.server.mappers.events import event_body, identified
from gtx_ray.ieee2030_5.server.pricing import PROFILE_MRID, RateComponentInfo

PRICE_POWER_OF_TEN = -4
"""Prices on the wire are in 1/10,000 THB per kWh (Int32)."""
SERVICE_ELECTRICITY = 0
ROLE_FLAGS_PREMISES = 0x0002
"""RoleFlags of what is priced: the premises aggregation point (the campus connection)."""
ENERGY_KIND, WH, KWH_POWER, DELTA, ELECTRICITY = 12, 72, 3, 4, 1


def profile_href(profile_id: int) -> str:
    return f"/tp/{profile_id}"


def _fill_profile(el: etree._Element, v: ProfileView) -> None:
    identified(el, PROFILE_MRID, v.rates.name if v.rates else "tariff")
    leaf(el, "currency", CURRENCY_THB)
    leaf(el, "pricePowerOfTenMultiplier", PRICE_POWER_OF_TEN)
    leaf(el, "primacy", 1)
    leaf(el, "rateCode", v.rates.name if v.rates else None)
    link(el, "RateComponentListLink", f"{profile_href(v.id)}/rc", v.rate_components)
    leaf(el, "serviceCategoryKind", SERVICE_ELECTRICITY)


def render_profile_list(page: Page[ProfileView]) -> bytes:
    doc = root(
        "TariffProfileList", "/tp", all=page.all, results=len(page.items), pollRate=page.poll_rate
    )
    for v in page.items:
        _fill_profile(node(doc, "TariffProfile", profile_href(v.id)), v)
    return serialize(doc)


def render_profile(v: ProfileView) -> bytes:
    doc = root("TariffProfile", profile_href(v.id))
    _fill_profile(doc, v)
    return serialize(doc)


def rc_href(profile_id: int, rc_id: int) -> str:
    return f"{profile_href(profile_id)}/rc/{rc_id}"


def _fill_rc(el: etree._Element, profile_id: int, rc: RateComponentInfo) -> None:
    href = rc_href(profile_id, rc.id)
    identified(el, rc.mrid, rc.description)
    link(el, "ActiveTimeTariffIntervalListLink", f"{href}/acttti")
    link(el, "ReadingTypeLink", f"{href}/rt")
    leaf(el, "roleFlags", hex_text(ROLE_FLAGS_PREMISES, 2))
    link(el, "TimeTariffIntervalListLink", f"{href}/tti")


def render_rc_list(profile_id: int, page: Page[RateComponentInfo]) -> bytes:
    doc = root(
        "RateComponentList", f"{profile_href(profile_id)}/rc", all=page.all, results=len(page.items)
    )
    for rc in page.items:
        _fill_rc(node(doc, "RateComponent", rc_href(profile_id, rc.id)), profile_id, rc)
    return serialize(doc)


def render_rc(profile_id: int, rc: RateComponentInfo) -> bytes:
    doc = root("RateComponent", rc_href(profile_id, rc.id))
    _fill_rc(doc, profile_id, rc)
    return serialize(doc)


def render_rc_reading_type(profile_id: int, rc: RateComponentInfo) -> bytes:
    """What a rate component prices: energy (kWh), delta per interval, import or export."""
    doc = root("ReadingType", f"{rc_href(profile_id, rc.id)}/rt")
    leaf(doc, "accumulationBehaviour", DELTA)
    leaf(doc, "commodity", ELECTRICITY)
    leaf(doc, "flowDirection", rc.flow_direction)
    leaf(doc, "kind", ENERGY_KIND)
    leaf(doc, "powerOfTenMultiplier", KWH_POWER)
    leaf(doc, "uom", WH)
    return serialize(doc)


def tti_href(profile_id: int, rc_id: int, interval: TariffInterval) -> str:
    return f"{rc_href(profile_id, rc_id)}/tti/{interval.start}"


def wire_price(price_thb_per_kwh: float) -> int:
    return round(price_thb_per_kwh * 10**-PRICE_POWER_OF_TEN)


def _fill_tti(el: etree._Element, href: str, rc_id: int, i: TariffInterval, now: int) -> None:
    status = (ACTIVE, i.start) if now >= i.start else (SCHEDULED, i.start)
    identified(
        el, event_mrid("tti", rc_id, i.start, i.duration, i.tou_tier, i.price_thb_per_kwh), None
    )
    event_body(el, i.start, status, i.start, i.duration)
    link(el, "ConsumptionTariffIntervalListLink", f"{href}/cti", 1)
    leaf(el, "touTier", i.tou_tier)


def render_tti_list(profile_id: int, v: IntervalPage, active: bool = False) -> bytes:
    base = rc_href(profile_id, v.rc_id)
    doc = root(
        "TimeTariffIntervalList",
        f"{base}/{'acttti' if active else 'tti'}",
        all=v.page.all,
        results=len(v.page.items),
    )
    for i in v.page.items:
        href = tti_href(profile_id, v.rc_id, i)
        _fill_tti(node(doc, "TimeTariffInterval", href), href, v.rc_id, i, v.now)
    return serialize(doc)


def render_tti(profile_id: int, rc_id: int, i: TariffInterval, now: int) -> bytes:
    href = tti_href(profile_id, rc_id, i)
    doc = root("TimeTariffInterval", href)
    _fill_tti(doc, href, rc_id, i, now)
    return serialize(doc)


def _fill_cti(el: etree._Element, i: TariffInterval) -> None:
    leaf(el, "consumptionBlock", 0)
    leaf(el, "price", wire_price(i.price_thb_per_kwh))
    leaf(el, "startValue", 0)


def render_cti_list(profile_id: int, rc_id: int, i: TariffInterval) -> bytes:
    href = f"{tti_href(profile_id, rc_id, i)}/cti"
    doc = root("ConsumptionTariffIntervalList", href, all=1, results=1)
    _fill_cti(node(doc, "ConsumptionTariffInterval", f"{href}/1"), i)
    return serialize(doc)


def render_cti(profile_id: int, rc_id: int, i: TariffInterval) -> bytes:
    doc = root("ConsumptionTariffInterval", f"{tti_href(profile_id, rc_id, i)}/cti/1")
    _fill_cti(doc, i)
    return serialize(doc)
