"""The memory budget of one device in the registry: what it may keep, and what is retired first.

Every device has a budget (``RegistryLimits``): ``max_bytes_per_device`` bytes and
``max_readings_per_device`` readings, counted over everything it stores — its
MirrorUsagePoints, their MirrorMeterReadings and the mirrored reading sets. Reading sets older
than ``retention_s`` (counted back from the end of the device's newest set, so a backfill of old
data is not retired at once) are retired as newer ones arrive. Mirrors and meter readings are
never retired: a new one that does not fit is refused (400, Error reasonCode 2).

What happens at the bound: a POST whose own readings fit in the budget is always stored whole;
to make room, the device's oldest reading sets (in the order they were posted) are retired and
counted in ``Registry.readings_dropped``. A POST that could never fit (more readings or bytes
than the whole budget beside the device's mirrors) is refused with 413 (Error reasonCode 2) and
nothing is stored: a client that halves its posts on 413 then fits. So nothing acknowledged is
lost except by this documented retention.

Sizes are estimates of CPython memory, measured with tracemalloc on the registry's own objects
(``tests/ieee2030_5/test_budget.py`` checks full devices against them): a Reading ~165 B, a
reading set's own overhead ~560 B (its object, mRID, index entries), a MirrorMeterReading with
its ReadingType and latest Reading ~365 B, a MirrorUsagePoint ~400 B, a device ~450 B. With the
defaults (32 KiB and 192 readings per device), 100,000 devices hold at most 100,000 × 33 KiB
≈ 3.2 GiB of registry state.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

READING_BYTES = 176
"""Estimated memory of one stored Reading, bytes."""
SET_BYTES = 640
"""Estimated memory of a reading set besides its readings, bytes (a single posted Reading is
stored as a one-reading set)."""
METER_READING_BYTES = 512
"""Estimated memory of a mirrored meter reading's record (ReadingType, latest Reading), bytes."""
MIRROR_BYTES = 512
"""Estimated memory of a MirrorUsagePoint's record, bytes."""
DEVICE_BYTES = 1024
"""Estimated memory of a device's own record (EndDevice, DeviceInformation, indexes), bytes;
outside the per-device budget, bounded by ``max_end_devices``."""


def set_bytes(n_readings: int) -> int:
    """Estimated memory of a reading set of ``n_readings`` readings, bytes."""
    return SET_BYTES + READING_BYTES * n_readings


def total_budget_bytes(max_end_devices: int, max_bytes_per_device: int) -> int:
    """The most memory the registry's devices can hold, bytes (the stated budget)."""
    return max_end_devices * (max_bytes_per_device + DEVICE_BYTES)


@dataclass
class DeviceBudget:
    """What one device holds now: ``meta_bytes`` (mirrors and meter readings),
    ``reading_bytes`` and ``readings`` (kept reading sets), ``newest_end`` (epoch s, end of the
    newest set), and the posting order of its sets (``order``: tokens of stored sets, oldest
    first; entries of sets that went another way are skipped when met)."""

    meta_bytes: int = 0
    reading_bytes: int = 0
    readings: int = 0
    newest_end: int | None = None
    order: deque = field(default_factory=deque)
    stale: int = 0

    @property
    def bytes(self) -> int:
        return self.meta_bytes + self.reading_bytes
