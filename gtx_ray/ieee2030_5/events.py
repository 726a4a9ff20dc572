"""Value types of the event function sets both sides share: demand response and load control
(EndDeviceControl), pricing (time-of-use tariffs and their TimeTariffIntervals), messaging
(TextMessage) and Responses. Plain frozen dataclasses: the server stores and renders them, the
client parses documents into them, the simulator turns them into model inputs.

Times are UTC epoch seconds; durations seconds; prices THB per kWh unless a name says otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# EventStatus.currentStatus (IEEE 2030.5-2018, Event)
SCHEDULED, ACTIVE, CANCELLED, CANCELLED_RANDOMIZED, SUPERSEDED = 0, 1, 2, 3, 4
STATUS_NAMES = {
    SCHEDULED: "scheduled",
    ACTIVE: "active",
    CANCELLED: "cancelled",
    CANCELLED_RANDOMIZED: "cancelled_randomized",
    SUPERSEDED: "superseded",
}

# Response.status (IEEE 2030.5-2018 Table 27, the codes a simulated device uses)
EVENT_RECEIVED = 1
EVENT_STARTED = 2
EVENT_COMPLETED = 3
USER_OPTED_OUT = 4
EVENT_CANCELLED = 6
EVENT_SUPERSEDED = 7
USER_ACKNOWLEDGED = 11
REJECTED_RECEIVED_LATE = 254
RESPONSE_NAMES = {
    EVENT_RECEIVED: "event_received",
    EVENT_STARTED: "event_started",
    EVENT_COMPLETED: "event_completed",
    USER_OPTED_OUT: "user_opted_out",
    5: "user_opted_in",
    EVENT_CANCELLED: "event_cancelled",
    EVENT_SUPERSEDED: "event_superseded",
    8: "partial_opt_out",
    9: "partial_opt_in",
    10: "completed_no_participation",
    USER_ACKNOWLEDGED: "user_acknowledged",
    12: "cannot_be_displayed",
    13: "aborted_alternate_server",
    14: "aborted_alternate_program",
    252: "rejected_not_applicable",
    253: "rejected_invalid",
    REJECTED_RECEIVED_LATE: "rejected_received_late",
}

# responseRequired bits (RespondableResource)
RESPOND_RECEIVED = 0x01  # the device says it received the event
RESPOND_SPECIFIC = 0x02  # the device says when it started and completed (or opted out)
RESPOND_USER = 0x04  # an end user's response is required

# DeviceCategoryType bits the simulated meters use (IEEE 2030.5-2018, DeviceCategoryType)
CATEGORY_MANAGED_CI_LOADS = 1 << 9
CATEGORY_PV_SYSTEM = 1 << 21
CATEGORY_PV_AND_STORAGE = 1 << 23

# TargetReduction.type (UnitType)
UNIT_KW = 1

TOU_OFF_PEAK, TOU_ON_PEAK = 1, 2
"""touTier of the campus time-of-use tariff's TimeTariffIntervals."""

CURRENCY_THB = 764
"""ISO 4217 numeric code of the Thai baht (TariffProfile.currency)."""


def event_mrid(*parts: object) -> int:
    """A stable 128-bit mRID for an event made from ``parts`` (kind, id, ...): the same event
    always gets the same mRID, so a scenario replayed or a server restarted names it alike."""
    text = "|".join(str(p) for p in ("gtx_ray-event", *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")


def mrid_hex(mrid: int) -> str:
    """An mRID as the 32 upper-case hex digits of the wire."""
    return f"{mrid:032X}"


@dataclass(frozen=True, slots=True)
class LoadShed:
    """What an EndDeviceControl asks of a load; any combination, the largest reduction wins.

    duty_cycle_pct: share of time cooling may run, 0–100 % (DutyCycle.normalValue).
    cooling_offset_c: cooling setpoint raised by, °C (Offset.coolingOffset).
    reduction_pct: demand reduced by, % (Offset.loadAdjustmentPercentageOffset, in hundredths
    of a percent on the wire). reduction_kw: demand reduced by, kW (TargetReduction, type kW).
    """

    duty_cycle_pct: int | None = None
    cooling_offset_c: int | None = None
    reduction_pct: float | None = None
    reduction_kw: int | None = None

    def is_empty(self) -> bool:
        return (
            self.duty_cycle_pct is None
            and self.cooling_offset_c is None
            and self.reduction_pct is None
            and self.reduction_kw is None
        )


class TargetedEvent:
    """What an event of a program does with its fields (start, duration, creation_time,
    targets, cancelled_s, cancel_randomized, superseded_s): its end, its EventStatus at a time
    and whether it is addressed to a device. Shared by EndDeviceControl and DERControl."""

    __slots__ = ()

    @property
    def end(self) -> int:
        return self.start + self.duration

    def status_at(self, now: int) -> tuple[int, int]:
        """(EventStatus.currentStatus, its dateTime) at ``now``."""
        if self.cancelled_s is not None:
            return (CANCELLED_RANDOMIZED if self.cancel_randomized else CANCELLED), self.cancelled_s
        if self.superseded_s is not None:
            return SUPERSEDED, self.superseded_s
        if now >= self.start:
            return ACTIVE, self.start
        return SCHEDULED, self.creation_time

    def applies_to(self, lfdi: str) -> bool:
        return self.targets is None or lfdi in self.targets


@dataclass(frozen=True, slots=True)
class EndDeviceControl(TargetedEvent):
    """One demand-response event of a DemandResponseProgram.

    randomize_start_s/randomize_duration_s: -3600..3600 s, each device draws its own offset.
    device_category: DeviceCategoryType bits of the devices it applies to.
    targets: the LFDIs it is addressed to (None: every device of the program).
    response_required: RESPOND_* bits. cancelled_s / superseded_s: when that happened.
    """

    id: int
    program_id: int
    mrid: int
    description: str
    creation_time: int
    start: int
    duration: int
    shed: LoadShed
    device_category: int = CATEGORY_MANAGED_CI_LOADS
    randomize_start_s: int = 0
    randomize_duration_s: int = 0
    targets: frozenset[str] | None = None
    response_required: int = RESPOND_RECEIVED | RESPOND_SPECIFIC
    mandatory: bool = False
    cancelled_s: int | None = None
    cancel_randomized: bool = False
    superseded_s: int | None = None


@dataclass(frozen=True, slots=True)
class TimeOfUseRates:
    """A time-of-use tariff in force from ``effective_from`` (epoch s) until a later one.

    On-peak runs from ``on_peak_start_hour`` to ``on_peak_end_hour`` local time on working
    days (Monday–Friday, not public holidays); every other hour is off-peak. Prices THB/kWh;
    ``ft_thb_per_kwh`` (the fuel adjustment) is added to every imported kWh;
    ``export_thb_per_kwh`` is the credit for an exported kWh.
    """

    effective_from: int
    on_peak_start_hour: float
    on_peak_end_hour: float
    on_peak_thb_per_kwh: float
    off_peak_thb_per_kwh: float
    ft_thb_per_kwh: float = 0.0
    export_thb_per_kwh: float = 0.0
    name: str = "MEA TOU"

    def import_price(self, tier: int) -> float:
        """All-in import price of a touTier, THB/kWh."""
        base = self.on_peak_thb_per_kwh if tier == TOU_ON_PEAK else self.off_peak_thb_per_kwh
        return base + self.ft_thb_per_kwh


@dataclass(frozen=True, slots=True)
class TariffInterval:
    """One TimeTariffInterval: [start, start + duration) at one touTier and price (THB/kWh)."""

    start: int
    duration: int
    tou_tier: int
    price_thb_per_kwh: float


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A campus notice of a MessagingProgram: shown from ``start`` for ``duration`` s.

    priority: 0 low, 1 normal, 2 high, 3 critical (PriorityType)."""

    id: int
    program_id: int
    mrid: int
    creation_time: int
    start: int
    duration: int
    text: str
    priority: int = 1
    originator: str | None = None
    response_required: int = 0
    cancelled_s: int | None = None

    def status_at(self, now: int) -> tuple[int, int]:
        if self.cancelled_s is not None:
            return CANCELLED, self.cancelled_s
        if now >= self.start:
            return ACTIVE, self.start
        return SCHEDULED, self.creation_time


@dataclass(frozen=True, slots=True)
class Response:
    """A Response a device posted: to event ``subject`` (mRID), ``status`` (Table 27),
    created at ``created`` (device's clock, epoch s) and received at ``received``."""

    id: int
    set_id: int
    kind: str
    lfdi: str
    subject: int
    status: int | None
    created: int | None
    received: int
