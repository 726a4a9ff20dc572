"""DER documents: DERProgram(List), DERControl(List), DefaultDERControl (/derp...), the
device's DER(List) and the DERCapability, DERSettings, DERStatus and DERAvailability it PUTs
(/edev/{id}/der...). The CSIP-AUS extensions (opModExpLimW ..., doeModesSupported/Enabled) are
written in their own namespace after the standard's elements, as the CSIP-AUS schema has them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from gtx_ray.ieee2030_5.codec import (
    NS,
    XmlError,
    child,
    expect_root,
    hex_text,
    leaf,
    link,
    node,
    read_hex,
    read_int,
    read_uint,
    root,
    serialize,
)
from gtx_ray.ieee2030_5.der import (
    CSIPAUS_NS,
    DefaultDerControl,
    DerAvailability,
    DerCapability,
    DerControl,
    DerControlBase,
    DerSettings,
    DerStatus,
    from_power,
    to_power,
)
from gtx_ray.ieee2030_5.elements import read_time
from gtx_ray.ieee2030_5.models import Page
from gtx_ray.ieee2030_5.server.der import DEFAULT_PROGRAM
from gtx_ray.ieee2030_5.server.managers.der import (
    PART_PATHS,
    ControlPage,
    DerView,
    ProgramView,
)
from gtx_ray.ieee2030_5.server.mappers.events import (
    event_body,
    identified,
    randomization,
    respondable,
)
from gtx_ray.ieee2030_5.server.responses import SET_DER, reply_to

_C = "{" + CSIPAUS_NS + "}"
_CSIP_NSMAP = {"csipaus": CSIPAUS_NS}
PERCENT_MAX = 10_000
"""PerCent on the wire: hundredths of a percent, 10000 = 100 %."""


def program_href(program_id: int) -> str:
    return f"/derp/{program_id}"


def control_href(c: DerControl) -> str:
    return f"{program_href(c.program_id)}/derc/{c.id}"


def der_href(device_id: int, der_id: int = 1) -> str:
    return f"/edev/{device_id}/der/{der_id}"


# --- building ----------------------------------------------------------------------------


def _power(parent: etree._Element, tag: str, kw: float | None, signed: bool = True) -> None:
    """An ActivePower-like child (multiplier, value) from kW (or kVA, kWh); nothing for None."""
    if kw is None:
        return
    value, multiplier = to_power(kw, signed)
    el = etree.SubElement(parent, tag if tag.startswith("{") else "{" + NS + "}" + tag)
    leaf(el, "multiplier", multiplier)
    leaf(el, "value", value)


def _hundredths(value: float | None) -> int | None:
    return None if value is None else round(value * 100)


def _csip(parent: etree._Element, tag: str) -> etree._Element:
    return etree.SubElement(parent, _C + tag, nsmap=_CSIP_NSMAP)


def _fill_base(parent: etree._Element, b: DerControlBase) -> None:
    el = node(parent, "DERControlBase")
    leaf(el, "opModConnect", b.connect)
    leaf(el, "opModEnergize", b.energize)
    leaf(el, "opModFixedW", _hundredths(b.fixed_w_pct))
    leaf(el, "opModMaxLimW", _hundredths(b.max_lim_w_pct))
    leaf(el, "rampTms", _hundredths(b.ramp_s))
    for tag, kw in (
        ("opModImpLimW", b.import_limit_kw),
        ("opModExpLimW", b.export_limit_kw),
        ("opModGenLimW", b.generation_limit_kw),
        ("opModLoadLimW", b.load_limit_kw),
    ):
        if kw is not None:
            value, multiplier = to_power(kw)
            limit = _csip(el, tag)
            leaf(limit, "multiplier", multiplier)
            leaf(limit, "value", value)


def _fill_program(el: etree._Element, v: ProgramView) -> None:
    p = v.program
    href = program_href(p.id)
    identified(el, p.mrid, p.description)
    link(el, "ActiveDERControlListLink", f"{href}/actderc", v.active)
    if v.has_default:
        link(el, "DefaultDERControlLink", f"{href}/dderc")
    link(el, "DERControlListLink", f"{href}/derc", v.controls)
    leaf(el, "primacy", p.primacy)


def render_program_list(page: Page[ProgramView], href: str = "/derp") -> bytes:
    doc = root(
        "DERProgramList", href, all=page.all, results=len(page.items), pollRate=page.poll_rate
    )
    for v in page.items:
        _fill_program(node(doc, "DERProgram", program_href(v.program.id)), v)
    return serialize(doc)


def render_program(v: ProgramView) -> bytes:
    doc = root("DERProgram", program_href(v.program.id))
    _fill_program(doc, v)
    return serialize(doc)


def _fill_control(el: etree._Element, c: DerControl, now: int) -> None:
    respondable(el, reply_to(SET_DER), c.response_required)
    identified(el, c.mrid, c.description)
    event_body(el, c.creation_time, c.status_at(now), c.start, c.duration)
    randomization(el, c.randomize_duration_s, c.randomize_start_s)
    _fill_base(el, c.base)
    leaf(el, "deviceCategory", hex_text(c.device_category, 4))


def render_control_list(v: ControlPage, active: bool = False) -> bytes:
    """A DERControlList (the active list has the same type at another href)."""
    path = "actderc" if active else "derc"
    doc = root(
        "DERControlList",
        f"{program_href(v.program_id)}/{path}",
        all=v.page.all,
        results=len(v.page.items),
    )
    for c in v.page.items:
        _fill_control(node(doc, "DERControl", control_href(c)), c, v.now)
    return serialize(doc)


def render_control(c: DerControl, now: int) -> bytes:
    doc = root("DERControl", control_href(c))
    _fill_control(doc, c, now)
    return serialize(doc)


def render_default(d: DefaultDerControl) -> bytes:
    doc = root("DefaultDERControl", f"{program_href(d.program_id)}/dderc")
    identified(doc, d.mrid, d.description)
    _fill_base(doc, d.base)
    leaf(doc, "setGradW", _hundredths(d.set_grad_w_pct_per_s))
    return serialize(doc)


def _fill_der(el: etree._Element, v: DerView) -> None:
    href = der_href(v.device_id)
    link(el, "AssociatedDERProgramListLink", f"{href}/derp", v.programs)
    link(el, "CurrentDERProgramLink", program_href(DEFAULT_PROGRAM.id))
    link(el, "DERAvailabilityLink", f"{href}/{PART_PATHS['availability']}")
    link(el, "DERCapabilityLink", f"{href}/{PART_PATHS['capability']}")
    link(el, "DERSettingsLink", f"{href}/{PART_PATHS['settings']}")
    link(el, "DERStatusLink", f"{href}/{PART_PATHS['status']}")


def render_der_list(device_id: int, page: Page[DerView]) -> bytes:
    doc = root(
        "DERList",
        f"/edev/{device_id}/der",
        all=page.all,
        results=len(page.items),
        pollRate=page.poll_rate,
    )
    for v in page.items:
        _fill_der(node(doc, "DER", der_href(v.device_id)), v)
    return serialize(doc)


def render_der(v: DerView) -> bytes:
    doc = root("DER", der_href(v.device_id))
    _fill_der(doc, v)
    return serialize(doc)


def _status(parent: etree._Element, tag: str, value: Any, when: int, fmt=lambda v: v) -> None:
    if value is None:
        return
    el = node(parent, tag)
    leaf(el, "dateTime", when)
    leaf(el, "value", fmt(value))


def render_capability(href: str, c: DerCapability) -> bytes:
    doc = root("DERCapability", href)
    leaf(doc, "modesSupported", hex_text(c.modes_supported, 4))
    _power(doc, "rtgMaxChargeRateW", c.max_charge_rate_kw)
    _power(doc, "rtgMaxDischargeRateW", c.max_discharge_rate_kw)
    _power(doc, "rtgMaxVA", c.rated_va_kva, signed=False)
    _power(doc, "rtgMaxW", c.rated_w_kw)
    _power(doc, "rtgMaxWh", c.rated_wh_kwh, signed=False)
    leaf(doc, "type", c.der_type)
    _csip(doc, "doeModesSupported").text = hex_text(c.doe_modes_supported, 1)
    return serialize(doc)


def render_settings(href: str, s: DerSettings) -> bytes:
    doc = root("DERSettings", href)
    if s.modes_enabled is not None:
        leaf(doc, "modesEnabled", hex_text(s.modes_enabled, 4))
    leaf(doc, "setGradW", _hundredths(s.set_grad_w_pct_per_s))
    _power(doc, "setMaxChargeRateW", s.set_max_charge_rate_kw)
    _power(doc, "setMaxDischargeRateW", s.set_max_discharge_rate_kw)
    _power(doc, "setMaxVA", s.set_max_va_kva, signed=False)
    _power(doc, "setMaxW", s.set_max_w_kw)
    _power(doc, "setMaxWh", s.set_max_wh_kwh, signed=False)
    leaf(doc, "updatedTime", s.updated_time)
    if s.doe_modes_enabled is not None:
        _csip(doc, "doeModesEnabled").text = hex_text(s.doe_modes_enabled, 1)
    return serialize(doc)


def render_status(href: str, s: DerStatus) -> bytes:
    doc = root("DERStatus", href)
    if s.alarm_status is not None:
        leaf(doc, "alarmStatus", hex_text(s.alarm_status, 4))
    t = s.reading_time
    _status(doc, "genConnectStatus", s.gen_connect_status, t, lambda v: hex_text(v, 1))
    _status(doc, "inverterStatus", s.inverter_status, t)
    _status(doc, "operationalModeStatus", s.operational_mode_status, t)
    leaf(doc, "readingTime", t)
    _status(doc, "stateOfChargeStatus", s.state_of_charge_pct, t, _hundredths)
    _status(doc, "storageModeStatus", s.storage_mode_status, t)
    _status(doc, "storConnectStatus", s.stor_connect_status, t, lambda v: hex_text(v, 1))
    return serialize(doc)


def render_availability(href: str, a: DerAvailability) -> bytes:
    doc = root("DERAvailability", href)
    leaf(doc, "availabilityDuration", a.availability_duration_s)
    leaf(doc, "maxChargeDuration", a.max_charge_duration_s)
    leaf(doc, "readingTime", a.reading_time)
    leaf(doc, "reserveChargePercent", _hundredths(a.reserve_charge_pct))
    leaf(doc, "reservePercent", _hundredths(a.reserve_pct))
    _power(doc, "statVarAvail", a.stat_var_avail_kvar)
    _power(doc, "statWAvail", a.stat_w_avail_kw)
    return serialize(doc)


RENDERERS: dict[str, Callable[[str, Any], bytes]] = {
    "capability": render_capability,
    "settings": render_settings,
    "status": render_status,
    "availability": render_availability,
}


# --- parsing what a device PUTs ------------------------------------------------------------


def _read_power(
    el: etree._Element, name: str, signed: bool = True, required: bool = False
) -> float | None:
    """An ActivePower-like child (value × 10^multiplier) as kW (kVA, kWh), or None."""
    c = child(el, name)
    if c is None:
        if required:
            raise XmlError(f"{etree.QName(el).localname}: {name} is required")
        return None
    multiplier = read_int(c, "multiplier", -9, 9, required=True)
    lo, hi = (-32_768, 32_767) if signed else (0, 65_535)
    value = read_int(c, "value", lo, hi, required=True)
    assert multiplier is not None and value is not None
    return from_power(value, multiplier)


def _read_percent(el: etree._Element, name: str, signed: bool = False) -> float | None:
    value = read_int(el, name, -PERCENT_MAX if signed else 0, PERCENT_MAX)
    return None if value is None else value / 100


def _read_csip_hex(el: etree._Element, name: str, nbytes: int) -> int | None:
    c = el.find(_C + name)
    if c is None:
        return None
    text = (c.text or "").strip()
    try:
        value = int(text, 16)
    except ValueError:
        raise XmlError(
            f"{etree.QName(el).localname}/{name}: {text[:40]!r} is not hexBinary"
        ) from None
    if not text or value.bit_length() > 8 * nbytes:
        raise XmlError(f"{etree.QName(el).localname}/{name}: not a {nbytes}-byte hexBinary")
    return value


def _read_status(
    el: etree._Element, name: str, read: Callable[[etree._Element, str], Any]
) -> Any | None:
    c = child(el, name)
    if c is None:
        return None
    read_time(c, "dateTime", required=True)
    return read(c, "value")


def parse_capability(doc: etree._Element) -> DerCapability:
    """A PUT DERCapability: modesSupported, rtgMaxW and type required."""
    expect_root(doc, "DERCapability")
    modes = read_hex(doc, "modesSupported", 4, required=True)
    rated = _read_power(doc, "rtgMaxW", required=True)
    der_type = read_uint(doc, "type", 8, required=True)
    assert modes is not None and rated is not None and der_type is not None
    return DerCapability(
        modes_supported=modes,
        der_type=der_type,
        rated_w_kw=rated,
        rated_va_kva=_read_power(doc, "rtgMaxVA", signed=False),
        rated_wh_kwh=_read_power(doc, "rtgMaxWh", signed=False),
        max_charge_rate_kw=_read_power(doc, "rtgMaxChargeRateW"),
        max_discharge_rate_kw=_read_power(doc, "rtgMaxDischargeRateW"),
        doe_modes_supported=_read_csip_hex(doc, "doeModesSupported", 1) or 0,
    )


def parse_settings(doc: etree._Element) -> DerSettings:
    """A PUT DERSettings: setGradW, setMaxW and updatedTime required."""
    expect_root(doc, "DERSettings")
    grad = read_uint(doc, "setGradW", 16, required=True)
    max_w = _read_power(doc, "setMaxW", required=True)
    updated = read_time(doc, "updatedTime", required=True)
    assert grad is not None and max_w is not None and updated is not None
    return DerSettings(
        updated_time=updated,
        set_max_w_kw=max_w,
        set_grad_w_pct_per_s=grad / 100,
        modes_enabled=read_hex(doc, "modesEnabled", 4),
        set_max_va_kva=_read_power(doc, "setMaxVA", signed=False),
        set_max_wh_kwh=_read_power(doc, "setMaxWh", signed=False),
        set_max_charge_rate_kw=_read_power(doc, "setMaxChargeRateW"),
        set_max_discharge_rate_kw=_read_power(doc, "setMaxDischargeRateW"),
        doe_modes_enabled=_read_csip_hex(doc, "doeModesEnabled", 1),
    )


def parse_status(doc: etree._Element) -> DerStatus:
    """A PUT DERStatus: readingTime required; each status's dateTime is read and not kept."""
    expect_root(doc, "DERStatus")
    reading_time = read_time(doc, "readingTime", required=True)
    assert reading_time is not None

    def u8(el: etree._Element, name: str) -> int | None:
        return read_uint(el, name, 8, required=True)

    def h8(el: etree._Element, name: str) -> int | None:
        return read_hex(el, name, 1, required=True)

    def pct(el: etree._Element, name: str) -> float | None:
        value = read_int(el, name, 0, PERCENT_MAX, required=True)
        return None if value is None else value / 100

    return DerStatus(
        reading_time=reading_time,
        gen_connect_status=_read_status(doc, "genConnectStatus", h8),
        inverter_status=_read_status(doc, "inverterStatus", u8),
        operational_mode_status=_read_status(doc, "operationalModeStatus", u8),
        state_of_charge_pct=_read_status(doc, "stateOfChargeStatus", pct),
        storage_mode_status=_read_status(doc, "storageModeStatus", u8),
        stor_connect_status=_read_status(doc, "storConnectStatus", h8),
        alarm_status=read_hex(doc, "alarmStatus", 4),
    )


def parse_availability(doc: etree._Element) -> DerAvailability:
    """A PUT DERAvailability: readingTime required."""
    expect_root(doc, "DERAvailability")
    reading_time = read_time(doc, "readingTime", required=True)
    assert reading_time is not None
    return DerAvailability(
        reading_time=reading_time,
        availability_duration_s=read_uint(doc, "availabilityDuration", 32),
        max_charge_duration_s=read_uint(doc, "maxChargeDuration", 32),
        reserve_charge_pct=_read_percent(doc, "reserveChargePercent"),
        reserve_pct=_read_percent(doc, "reservePercent"),
        stat_w_avail_kw=_read_power(doc, "statWAvail"),
        stat_var_avail_kvar=_read_power(doc, "statVarAvail"),
    )


PARSERS: dict[str, Callable[[etree._Element], Any]] = {
    "capability": parse_capability,
    "settings": parse_settings,
    "status": parse_status,
    "availability": parse_availability,
}
