"""DER documents both sides write and read (pure: values of ``gtx_ray.ieee2030_5.der`` in and
out, no I/O): the DERControlBase a DERControl or DefaultDERControl carries, and the
DERCapability, DERSettings, DERStatus and DERAvailability a device PUTs on its DER.

The server renders controls with ``fill_base`` and parses the records a device PUTs; a meter
parses the controls it polls (``parse_der_control``, ``parse_default_der_control``) and renders
its records. The CSIP-AUS extensions (opModExpLimW ..., doeModesSupported/Enabled) are written in
their own namespace after the standard's elements, as the CSIP-AUS schema has them, and read
from that namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from gtx_ray.ieee2030_5.client.errors import ProtocolError
from gtx_ray.ieee2030_5.client.event_documents import Respondable, event_header, respondable
from gtx_ray.ieee2030_5.codec import (
    NS,
    XmlError,
    child,
    expect_root,
    hex_text,
    leaf,
    node,
    read_bool,
    read_hex,
    read_int,
    read_str,
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
from gtx_ray.ieee2030_5.events import CANCELLED, CANCELLED_RANDOMIZED, SUPERSEDED

_C = "{" + CSIPAUS_NS + "}"
_CSIP_NSMAP = {"csipaus": CSIPAUS_NS}
PERCENT_MAX = 10_000
"""PerCent on the wire: hundredths of a percent, 10000 = 100 %."""
CSIP_LIMITS = (
    ("opModImpLimW", "import_limit_kw"),
    ("opModExpLimW", "export_limit_kw"),
    ("opModGenLimW", "generation_limit_kw"),
    ("opModLoadLimW", "load_limit_kw"),
)
"""The CSIP-AUS limits of a DERControlBase in schema order, with their DerControlBase field."""


# --- building ----------------------------------------------------------------------------


def _power(parent: etree._Element, tag: str, kw: float | None, signed: bool = True) -> None:
    """An ActivePower-like child (multiplier, value) from kW (or kVA, kWh); nothing for None."""
    if kw is None:
        return
    value, multiplier = to_power(kw, signed)
    el = etree.SubElement(parent, tag if tag.startswith("{") else "{" + NS + "}" + tag)
    leaf(el, "multiplier", multiplier)
    leaf(el, "value", value)


def hundredths(value: float | None) -> int | None:
    return None if value is None else round(value * 100)


def _csip(parent: etree._Element, tag: str) -> etree._Element:
    return etree.SubElement(parent, _C + tag, nsmap=_CSIP_NSMAP)


def fill_base(parent: etree._Element, b: DerControlBase) -> None:
    el = node(parent, "DERControlBase")
    leaf(el, "opModConnect", b.connect)
    leaf(el, "opModEnergize", b.energize)
    leaf(el, "opModFixedW", hundredths(b.fixed_w_pct))
    leaf(el, "opModMaxLimW", hundredths(b.max_lim_w_pct))
    leaf(el, "rampTms", hundredths(b.ramp_s))
    for tag, name in CSIP_LIMITS:
        kw = getattr(b, name)
        if kw is not None:
            value, multiplier = to_power(kw)
            limit = _csip(el, tag)
            leaf(limit, "multiplier", multiplier)
            leaf(limit, "value", value)


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
    leaf(doc, "setGradW", hundredths(s.set_grad_w_pct_per_s))
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
    _status(doc, "stateOfChargeStatus", s.state_of_charge_pct, t, hundredths)
    _status(doc, "storageModeStatus", s.storage_mode_status, t)
    _status(doc, "storConnectStatus", s.stor_connect_status, t, lambda v: hex_text(v, 1))
    return serialize(doc)


def render_availability(href: str, a: DerAvailability) -> bytes:
    doc = root("DERAvailability", href)
    leaf(doc, "availabilityDuration", a.availability_duration_s)
    leaf(doc, "maxChargeDuration", a.max_charge_duration_s)
    leaf(doc, "readingTime", a.reading_time)
    leaf(doc, "reserveChargePercent", hundredths(a.reserve_charge_pct))
    leaf(doc, "reservePercent", hundredths(a.reserve_pct))
    _power(doc, "statVarAvail", a.stat_var_avail_kvar)
    _power(doc, "statWAvail", a.stat_w_avail_kw)
    return serialize(doc)


RENDERERS: dict[str, Callable[[str, Any], bytes]] = {
    "capability": render_capability,
    "settings": render_settings,
    "status": render_status,
    "availability": render_availability,
}


# --- parsing the records a device PUTs -----------------------------------------------------


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


# --- parsing the controls a meter polls --------------------------------------------------


def _read_csip_power(el: etree._Element, name: str) -> float | None:
    """A CSIP-AUS ActivePower child (csipaus namespace, standard children) as kW, or None."""
    c = el.find(_C + name)
    if c is None:
        return None
    multiplier = read_int(c, "multiplier", -9, 9, required=True)
    value = read_int(c, "value", -32_768, 32_767, required=True)
    assert multiplier is not None and value is not None
    return from_power(value, multiplier)


def parse_base(el: etree._Element) -> DerControlBase:
    """The DERControlBase child of a DERControl or DefaultDERControl (required)."""
    b = child(el, "DERControlBase")
    if b is None:
        raise XmlError("DERControlBase is required")
    fixed = read_int(b, "opModFixedW", -PERCENT_MAX, PERCENT_MAX)
    max_lim = read_uint(b, "opModMaxLimW", 16)
    if max_lim is not None and max_lim > PERCENT_MAX:
        raise XmlError(f"opModMaxLimW: {max_lim} is over {PERCENT_MAX}")
    ramp = read_uint(b, "rampTms", 16)
    limits = {name: _read_csip_power(b, tag) for tag, name in CSIP_LIMITS}
    for name, kw in limits.items():
        if kw is not None and kw < 0:
            raise XmlError(f"{name}: a limit cannot be negative ({kw} kW)")
    return DerControlBase(
        connect=read_bool(b, "opModConnect"),
        energize=read_bool(b, "opModEnergize"),
        fixed_w_pct=None if fixed is None else fixed / 100,
        max_lim_w_pct=None if max_lim is None else max_lim / 100,
        ramp_s=None if ramp is None else ramp / 100,
        **limits,
    )


def parse_der_control(el: etree._Element) -> tuple[DerControl, Respondable]:
    """A DERControl as the value the meter uses (server ids are not known: 0); its status says
    when it was cancelled or superseded. ProtocolError names the field a server got wrong."""
    try:
        mrid, created, status, status_time, start, duration = event_header(el)
        control = DerControl(
            id=0,
            program_id=0,
            mrid=mrid,
            description=read_str(el, "description", 32) or "",
            creation_time=created,
            start=start,
            duration=duration,
            base=parse_base(el),
            device_category=read_hex(el, "deviceCategory", 4, required=True) or 0,
            randomize_start_s=read_int(el, "randomizeStart", -3600, 3600) or 0,
            randomize_duration_s=read_int(el, "randomizeDuration", -3600, 3600) or 0,
            response_required=respondable(el).response_required,
            cancelled_s=status_time if status in (CANCELLED, CANCELLED_RANDOMIZED) else None,
            cancel_randomized=status == CANCELLED_RANDOMIZED,
            superseded_s=status_time if status == SUPERSEDED else None,
        )
    except XmlError as exc:
        raise ProtocolError(f"DERControl: {exc}") from None
    return control, respondable(el)


def parse_default_der_control(el: etree._Element) -> DefaultDerControl:
    """A DefaultDERControl (program id 0: not known to the meter)."""
    try:
        expect_root(el, "DefaultDERControl")
        mrid = read_hex(el, "mRID", 16, required=True)
        grad = read_uint(el, "setGradW", 16)
        return DefaultDerControl(
            program_id=0,
            mrid=mrid or 0,
            description=read_str(el, "description", 32) or "",
            base=parse_base(el),
            set_grad_w_pct_per_s=None if grad is None else grad / 100,
        )
    except XmlError as exc:
        raise ProtocolError(f"DefaultDERControl: {exc}") from None
