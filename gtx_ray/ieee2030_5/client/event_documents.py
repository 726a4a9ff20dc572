"""Reading the event documents a meter polls: EndDeviceControl, TimeTariffInterval with its
ConsumptionTariffInterval price, TextMessage. Pure: an element in, a value (``events``) out;
``ProtocolError`` names the field a server got wrong."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gtx_ray.ieee2030_5.client.errors import ProtocolError
from gtx_ray.ieee2030_5.codec import (
    XmlError,
    child,
    read_bool,
    read_hex,
    read_int,
    read_str,
    read_uint,
)
from gtx_ray.ieee2030_5.events import (
    CANCELLED,
    CANCELLED_RANDOMIZED,
    SUPERSEDED,
    UNIT_KW,
    EndDeviceControl,
    LoadShed,
    TextMessage,
)

TIME_MIN, TIME_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Respondable:
    """Where and whether to respond: ``replyTo`` href and ``responseRequired`` bits."""

    reply_to: str | None
    response_required: int


def respondable(el: etree._Element) -> Respondable:
    raw = el.get("responseRequired") or "0"
    try:
        required = int(raw, 16)
    except ValueError:
        raise ProtocolError(f"responseRequired {raw[:10]!r} is not hexBinary") from None
    return Respondable(el.get("replyTo"), required)


def event_header(el: etree._Element) -> tuple[int, int, int, int, int, int]:
    """(mRID, creationTime, currentStatus, status dateTime, interval start, duration)."""
    mrid = read_hex(el, "mRID", 16, required=True)
    created = read_int(el, "creationTime", TIME_MIN, TIME_MAX, required=True)
    status_el = child(el, "EventStatus")
    interval = child(el, "interval")
    if status_el is None or interval is None:
        raise XmlError("EventStatus and interval are required")
    status = read_uint(status_el, "currentStatus", 8, required=True)
    status_time = read_int(status_el, "dateTime", TIME_MIN, TIME_MAX, required=True)
    start = read_int(interval, "start", TIME_MIN, TIME_MAX, required=True)
    duration = read_uint(interval, "duration", 32, required=True)
    return mrid, created, status, status_time, start, duration  # type: ignore[return-value]


def parse_end_device_control(el: etree._Element) -> tuple[EndDeviceControl, Respondable]:
    """An EndDeviceControl as the value the simulator uses (server ids are not known: 0)."""
    try:
        mrid, created, status, status_time, start, duration = event_header(el)
        duty = child(el, "DutyCycle")
        offset = child(el, "Offset")
        target = child(el, "TargetReduction")
        reduction_kw = None
        if target is not None and read_uint(target, "type", 8, required=True) == UNIT_KW:
            reduction_kw = read_uint(target, "value", 16, required=True)
        pct = (
            read_uint(offset, "loadAdjustmentPercentageOffset", 16) if offset is not None else None
        )
        shed = LoadShed(
            duty_cycle_pct=read_uint(duty, "normalValue", 8) if duty is not None else None,
            cooling_offset_c=read_uint(offset, "coolingOffset", 8) if offset is not None else None,
            reduction_pct=pct / 100.0 if pct else None,
            reduction_kw=reduction_kw,
        )
        control = EndDeviceControl(
            id=0,
            program_id=0,
            mrid=mrid,
            description=read_str(el, "description", 32) or "",
            creation_time=created,
            start=start,
            duration=duration,
            shed=shed,
            device_category=read_hex(el, "deviceCategory", 4, required=True) or 0,
            randomize_start_s=read_int(el, "randomizeStart", -3600, 3600) or 0,
            randomize_duration_s=read_int(el, "randomizeDuration", -3600, 3600) or 0,
            mandatory=bool(read_bool(el, "drProgramMandatory")),
            cancelled_s=status_time if status in (CANCELLED, CANCELLED_RANDOMIZED) else None,
            cancel_randomized=status == CANCELLED_RANDOMIZED,
            superseded_s=status_time if status == SUPERSEDED else None,
        )
    except XmlError as exc:
        raise ProtocolError(f"EndDeviceControl: {exc}") from None
    return control, respondable(el)


@dataclass(frozen=True, slots=True)
class TimeTariff:
    """A TimeTariffInterval: mRID, interval, touTier and where its prices are."""

    mrid: int
    start: int
    duration: int
    tou_tier: int
    cti_href: str | None


def parse_time_tariff_interval(el: etree._Element) -> TimeTariff:
    try:
        mrid, _, _, _, start, duration = event_header(el)
        link = child(el, "ConsumptionTariffIntervalListLink")
        return TimeTariff(
            mrid,
            start,
            duration,
            read_uint(el, "touTier", 8, required=True) or 0,
            link.get("href") if link is not None else None,
        )
    except XmlError as exc:
        raise ProtocolError(f"TimeTariffInterval: {exc}") from None


def parse_first_price(cti_list: etree._Element, power_of_ten: int) -> float | None:
    """The price of the first block of a ConsumptionTariffIntervalList, currency per kWh."""
    first = child(cti_list, "ConsumptionTariffInterval")
    if first is None:
        return None
    try:
        price = read_int(first, "price", -(2**31), 2**31 - 1)
    except XmlError as exc:
        raise ProtocolError(f"ConsumptionTariffInterval: {exc}") from None
    return None if price is None else price * 10.0**power_of_ten


def parse_text_message(el: etree._Element) -> tuple[TextMessage, Respondable]:
    try:
        mrid, created, status, status_time, start, duration = event_header(el)
        message = TextMessage(
            id=0,
            program_id=0,
            mrid=mrid,
            creation_time=created,
            start=start,
            duration=duration,
            text=read_str(el, "textMessage", 100_000, required=True) or "",
            priority=read_uint(el, "priority", 8, required=True) or 0,
            originator=read_str(el, "originator", 20),
            cancelled_s=status_time if status in (CANCELLED, CANCELLED_RANDOMIZED) else None,
        )
    except XmlError as exc:
        raise ProtocolError(f"TextMessage: {exc}") from None
    return message, respondable(el)
