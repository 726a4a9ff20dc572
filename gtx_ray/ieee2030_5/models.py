"""Resource models: plain frozen dataclasses that cross from the TLS front to the registry.

They are the parsed form of what clients post and the views the registry hands back for
rendering. Times are UTC epoch seconds; durations seconds; identifiers (mRID, LFDI) are kept in
canonical form (mRID as int, LFDI as 40 upper-case hex digits). Values are integers as on the
wire: a reading is ``value × 10^powerOfTenMultiplier`` in the ReadingType's unit (``uom``).
No I/O and no XML here: the mapper modules translate these to and from documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: ``items`` (results = len) out of ``all`` matching items; poll_rate
    (s) is set on the lists that advertise one."""

    items: tuple[T, ...]
    all: int
    poll_rate: int | None = None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """List query parameters: s = start index, a = after time (epoch s), l = limit (0 allowed)."""

    start: int = 0
    after: int = 0
    limit: int = 1


@dataclass(frozen=True, slots=True)
class ReadingType:
    """How to interpret a MeterReading's values (codes as in the standard: uom 38 = W, 72 = Wh,
    29 = V, 5 = A, 23 = °C; flowDirection 1 = forward/import, 19 = reverse/export)."""

    accumulation_behaviour: int | None = None
    commodity: int | None = None
    data_qualifier: int | None = None
    flow_direction: int | None = None
    interval_length: int | None = None
    kind: int | None = None
    max_number_of_intervals: int | None = None
    number_of_consumption_blocks: int | None = None
    number_of_tou_tiers: int | None = None
    phase: int | None = None
    power_of_ten_multiplier: int | None = None
    sub_interval_length: int | None = None
    supply_limit: int | None = None
    tiered_consumption_blocks: bool | None = None
    uom: int | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One value. time_start/duration: the interval it covers (epoch s, s), or None."""

    value: int | None = None
    time_start: int | None = None
    duration: int | None = None
    quality_flags: int | None = None
    consumption_block: int | None = None
    tou_tier: int | None = None
    local_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReadingSet:
    """A block of readings covering [start, start + duration) (epoch s, s)."""

    mrid: int
    start: int
    duration: int
    readings: tuple[Reading, ...] = ()
    description: str | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class MirrorMeterReading:
    """A posted MirrorMeterReading: a mirrored meter reading and any values that came with it."""

    mrid: int
    description: str | None = None
    version: int | None = None
    last_update_time: int | None = None
    next_update_time: int | None = None
    reading_type: ReadingType | None = None
    reading: Reading | None = None
    reading_sets: tuple[ReadingSet, ...] = ()


@dataclass(frozen=True, slots=True)
class MirrorUsagePoint:
    """A posted MirrorUsagePoint. role_flags: bit field (bit 0 isMirror …)."""

    mrid: int
    device_lfdi: str
    role_flags: int
    service_category_kind: int
    status: int
    description: str | None = None
    version: int | None = None
    post_rate: int | None = None
    meter_readings: tuple[MirrorMeterReading, ...] = ()


@dataclass(frozen=True, slots=True)
class EndDeviceIn:
    """A posted EndDevice (registration request). lfdi may be absent on the wire; sfdi is not."""

    sfdi: int
    lfdi: str | None = None
    device_category: int | None = None
    enabled: bool | None = None
    post_rate: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceInformation:
    """A device's self-description (PUT to /edev/{id}/di). Times epoch s."""

    lfdi: str
    mf_date: int
    mf_hw_ver: str
    mf_id: int
    mf_model: str
    mf_ser_num: str
    primary_power: int
    secondary_power: int
    sw_act_time: int
    sw_ver: str
    mf_info: str | None = None
    functions_implemented: int | None = None


# --- views handed back by the registry for rendering -----------------------------------------


@dataclass(frozen=True, slots=True)
class EndDeviceView:
    """A registered EndDevice. changed_time/registered_time epoch s; rates s."""

    id: int
    lfdi: str
    sfdi: int
    changed_time: int
    registered_time: int
    pin: int
    enabled: bool
    post_rate: int
    poll_rate: int
    device_category: int | None = None
    has_device_information: bool = False


@dataclass(frozen=True, slots=True)
class MeterReadingView:
    """A mirrored meter reading (read side: MeterReading; write side: MirrorMeterReading).

    reading_sets: how many reading sets are kept; latest: the most recent single reading."""

    id: int
    mrid: int
    reading_type: ReadingType
    description: str | None = None
    version: int | None = None
    last_update_time: int | None = None
    next_update_time: int | None = None
    reading_sets: int = 0
    latest: Reading | None = None


@dataclass(frozen=True, slots=True)
class UsagePointView:
    """A mirror usage point (read side: UsagePoint, same id)."""

    id: int
    mrid: int
    device_lfdi: str
    role_flags: int
    service_category_kind: int
    status: int
    post_rate: int
    description: str | None = None
    version: int | None = None
    meter_readings: tuple[MeterReadingView, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ReadingSetView:
    """A kept reading set; id is its index in the meter reading's history (stable, increasing)."""

    id: int
    set: ReadingSet


@dataclass(frozen=True, slots=True)
class Created:
    """A POST made a new resource at ``location``."""

    location: str


@dataclass(frozen=True, slots=True)
class Updated:
    """A POST or PUT changed an existing resource (204); ``location`` names it."""

    location: str


@dataclass(frozen=True, slots=True)
class Deleted:
    """A DELETE removed a resource (204)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Server-wide rates, seconds: pollRate advertised on lists, postRate for mirrors."""

    poll_rate: int
    post_rate: int
    tz_offset: int
