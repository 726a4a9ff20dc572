"""The server's state: EndDevices, Registrations, MirrorUsagePoints and mirrored readings.

A plain Python class (no I/O, no clock: callers pass ``now`` in epoch seconds) so it can live in
a Ray actor that outlives the TLS front, or in-process for tests. It stores and bounds state;
who may do what is decided by the managers. Every bound is explicit (``RegistryLimits``): the
number of devices, mirrors per device, meter readings per mirror, the reading-set history
kept per mirrored meter reading, and each device's memory budget (``budget``: bytes, readings
and retention by age; oldest sets retired first, counted in ``readings_dropped``).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from gtx_ray.ieee2030_5.identity import sfdi_from_lfdi
from gtx_ray.ieee2030_5.models import (
    DeviceInformation,
    EndDeviceView,
    MeterReadingView,
    MirrorMeterReading,
    MirrorUsagePoint,
    Reading,
    ReadingSet,
    ReadingSetView,
    ReadingType,
    UsagePointView,
)
from gtx_ray.ieee2030_5.server.budget import (
    METER_READING_BYTES,
    MIRROR_BYTES,
    DeviceBudget,
    set_bytes,
)
from gtx_ray.ieee2030_5.server.der import DerBook
from gtx_ray.ieee2030_5.server.drlc import DemandResponseBook
from gtx_ray.ieee2030_5.server.errors import LimitReached
from gtx_ray.ieee2030_5.server.messaging import MessageBook
from gtx_ray.ieee2030_5.server.pricing import TariffBook
from gtx_ray.ieee2030_5.server.responses import ResponseBook


@dataclass(frozen=True)
class RegistryLimits:
    """Bounds on the registry's memory.

    max_end_devices: registered devices; max_mirrors_per_device: MirrorUsagePoints per LFDI;
    max_readings_per_mirror: MirrorMeterReadings per MirrorUsagePoint; history_per_mirror:
    reading sets kept per mirrored meter reading (a single posted reading counts as one set).
    max_bytes_per_device / max_readings_per_device: a device's memory budget (estimated bytes
    of everything it stores, readings kept); retention_s: reading sets ending more than this
    many seconds before the device's newest one are retired (see ``budget``).
    """

    max_end_devices: int = 100_000
    max_mirrors_per_device: int = 16
    max_readings_per_mirror: int = 64
    history_per_mirror: int = 1_000
    max_bytes_per_device: int = 32 * 1024
    max_readings_per_device: int = 192
    retention_s: int = 7 * 86_400


@dataclass(frozen=True)
class RegistryPolicy:
    """Rules that are configuration: registration ``policy`` ("open" or "allowlist"), the PIN
    given to registrations, rates (s), tz offset (s), LFDIs that may read every UsagePoint."""

    registration: str = "open"
    pin: int = 111115
    poll_rate: int = 900
    post_rate: int = 900
    tz_offset: int = 25200
    readers: frozenset[str] = frozenset()


class _Ignored:
    """Stands for a set of changed keys when nobody writes them through: keeps nothing."""

    def add(self, key: object) -> None:
        pass

    def clear(self) -> None:
        pass

    def __bool__(self) -> bool:
        return False

    def __iter__(self):
        return iter(())


@dataclass
class Changes:
    """What changed since the last ``clear`` (for the store to write through): device ids,
    mirror ids, (mirror id, mRID) meter readings, (mirror id, mRID, set mRID) reading sets, and
    whether the global rates changed. A key names something added, changed or removed; the
    store reads its current state (or its absence) from the registry."""

    devices: set[int] = field(default_factory=set)
    mirrors: set[int] = field(default_factory=set)
    meter_readings: set[tuple[int, int]] = field(default_factory=set)
    sets: set[tuple[int, int, int]] = field(default_factory=set)
    rates: bool = False

    def __bool__(self) -> bool:
        return bool(self.devices or self.mirrors or self.meter_readings or self.sets or self.rates)

    def clear(self) -> None:
        for s in (self.devices, self.mirrors, self.meter_readings, self.sets):
            s.clear()
        self.rates = False

    @classmethod
    def ignored(cls) -> Changes:
        """Changes that keep nothing (a registry without a store)."""
        return cls(_Ignored(), _Ignored(), _Ignored(), _Ignored())  # type: ignore[arg-type]


@dataclass
class _Device:
    id: int
    lfdi: str
    sfdi: int
    changed_time: int
    registered_time: int
    pin: int
    enabled: bool = True
    post_rate: int | None = None
    poll_rate: int | None = None
    device_category: int | None = None
    device_information: DeviceInformation | None = None
    operator_post_rate: int | None = None  # set by the operator: wins on every mirror too
    budget: DeviceBudget = field(default_factory=DeviceBudget)

    def view(self, policy: RegistryPolicy) -> EndDeviceView:
        return EndDeviceView(
            id=self.id,
            lfdi=self.lfdi,
            sfdi=self.sfdi,
            changed_time=self.changed_time,
            registered_time=self.registered_time,
            pin=self.pin,
            enabled=self.enabled,
            post_rate=self.post_rate if self.post_rate is not None else policy.post_rate,
            poll_rate=self.poll_rate if self.poll_rate is not None else policy.poll_rate,
            device_category=self.device_category,
            has_device_information=self.device_information is not None,
        )


@dataclass
class _MeterReading:
    id: int
    mrid: int
    reading_type: ReadingType
    description: str | None = None
    version: int | None = None
    last_update_time: int | None = None
    next_update_time: int | None = None
    latest: Reading | None = None
    # set mRID → (set id, set, token of its entry in the owner's budget order)
    sets: OrderedDict[int, tuple[int, ReadingSet, int]] = field(default_factory=OrderedDict)
    next_set_id: int = 1

    def view(self) -> MeterReadingView:
        return MeterReadingView(
            id=self.id,
            mrid=self.mrid,
            reading_type=self.reading_type,
            description=self.description,
            version=self.version,
            last_update_time=self.last_update_time,
            next_update_time=self.next_update_time,
            reading_sets=len(self.sets),
            latest=self.latest,
        )


@dataclass
class _Mirror:
    id: int
    owner: str
    header: MirrorUsagePoint  # without meter_readings
    readings: dict[int, _MeterReading] = field(default_factory=dict)  # mrid → record
    next_reading_id: int = 1

    def view(self, policy: RegistryPolicy, operator_post_rate: int | None) -> UsagePointView:
        """The view, with postRate (s): the operator's rate for the owning device, else the one
        the device posted, else the server's."""
        h = self.header
        if operator_post_rate is not None:
            post_rate = operator_post_rate
        else:
            post_rate = h.post_rate if h.post_rate is not None else policy.post_rate
        return UsagePointView(
            id=self.id,
            mrid=h.mrid,
            device_lfdi=h.device_lfdi,
            role_flags=h.role_flags,
            service_category_kind=h.service_category_kind,
            status=h.status,
            post_rate=post_rate,
            description=h.description,
            version=h.version,
            meter_readings=tuple(r.view() for r in self.readings.values()),
        )


class Registry:
    """All 2030.5 resource state of one server (or of one shard of its devices). Not
    thread-safe: one owner calls it. ``shard``: (k, n), this registry holds the devices of shard
    k of n; its EndDevice and mirror ids are k + 1, k + 1 + n, … so that ids stay unique over
    the shards."""

    def __init__(
        self,
        policy: RegistryPolicy | None = None,
        limits: RegistryLimits | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.policy = policy or RegistryPolicy()
        self.limits = limits or RegistryLimits()
        k, n = shard
        if not 0 <= k < n:
            raise ValueError(f"shard {k} of {n}: need 0 <= k < n")
        self.shard = shard
        self._id_step = n
        self._devices: dict[int, _Device] = {}
        self._device_by_lfdi: dict[str, int] = {}
        self._next_device_id = k + 1
        self._mirrors: dict[int, _Mirror] = {}
        self._mirror_by_mrid: dict[int, int] = {}
        self._mirrors_by_owner: dict[str, list[int]] = {}
        self._next_mirror_id = k + 1
        self.readings_mirrored = 0
        self.readings_dropped = 0
        self.bytes_held = 0  # estimated, over every device's budget
        self._next_token = 1
        self.changes = Changes.ignored()  # ``track_changes`` when a store writes them through
        # The event function sets keep their own state (one module each); the store writes
        # them through with the rest.
        self.drlc = DemandResponseBook()
        self.pricing = TariffBook(self.policy.tz_offset)
        self.messaging = MessageBook()
        self.responses = ResponseBook()
        self.der = DerBook()  # DER programs and controls, and each device's DER records

    def track_changes(self) -> None:
        """Record what changes from now on in ``changes`` (for ``store.RegistryStore``)."""
        self.changes = Changes()

    # --- settings ------------------------------------------------------------------------
    def set_rates(self, poll_rate: int | None = None, post_rate: int | None = None) -> None:
        """Change the global pollRate/postRate (s)."""
        changes = {}
        if poll_rate is not None:
            changes["poll_rate"] = poll_rate
        if post_rate is not None:
            changes["post_rate"] = post_rate
        self.policy = replace(self.policy, **changes)
        self.changes.rates = True

    # --- devices -------------------------------------------------------------------------
    def add_device(
        self,
        lfdi: str,
        now: int,
        sfdi: int | None = None,
        device_category: int | None = None,
        post_rate: int | None = None,
        enabled: bool = True,
    ) -> EndDeviceView:
        """Register ``lfdi`` (caller checked it is new). Raises LimitReached when full."""
        if len(self._devices) >= self.limits.max_end_devices:
            limit = self.limits.max_end_devices
            raise LimitReached(f"the server holds its limit of {limit} devices")
        device = _Device(
            id=self._next_device_id,
            lfdi=lfdi,
            sfdi=sfdi if sfdi is not None else sfdi_from_lfdi(lfdi),
            changed_time=now,
            registered_time=now,
            pin=self.policy.pin,
            enabled=enabled,
            post_rate=post_rate,
            device_category=device_category,
        )
        self._next_device_id += self._id_step
        self._devices[device.id] = device
        self._device_by_lfdi[lfdi] = device.id
        self.changes.devices.add(device.id)
        return device.view(self.policy)

    def device(self, device_id: int) -> EndDeviceView | None:
        d = self._devices.get(device_id)
        return d.view(self.policy) if d else None

    def device_by_lfdi(self, lfdi: str) -> EndDeviceView | None:
        device_id = self._device_by_lfdi.get(lfdi)
        return self.device(device_id) if device_id is not None else None

    def devices(self) -> list[EndDeviceView]:
        """Every device, by id."""
        return [d.view(self.policy) for d in self._devices.values()]

    def remove_device(self, device_id: int) -> bool:
        """Forget a device and its mirrors; True if it existed."""
        d = self._devices.pop(device_id, None)
        if d is None:
            return False
        del self._device_by_lfdi[d.lfdi]
        self.changes.devices.add(device_id)
        self.der.forget(d.lfdi)
        for mirror_id in list(self._mirrors_by_owner.get(d.lfdi, ())):
            self.remove_mirror(mirror_id)
        return True

    def set_device_rates(
        self, device_id: int, now: int, poll_rate: int | None, post_rate: int | None
    ) -> None:
        """Per-device pollRate/postRate overrides (s) set by the operator; None leaves a value
        unchanged. The postRate applies to the device's EndDevice and all its mirrors."""
        d = self._devices[device_id]
        if poll_rate is not None:
            d.poll_rate = poll_rate
        if post_rate is not None:
            d.post_rate = post_rate
            d.operator_post_rate = post_rate
        d.changed_time = now
        self.changes.devices.add(device_id)

    def device_information(self, device_id: int) -> DeviceInformation | None:
        d = self._devices.get(device_id)
        return d.device_information if d else None

    def set_device_information(self, device_id: int, info: DeviceInformation, now: int) -> None:
        d = self._devices[device_id]
        d.device_information = info
        d.changed_time = now
        self.changes.devices.add(device_id)

    # --- mirrors -------------------------------------------------------------------------
    def mirror_id_by_mrid(self, mrid: int) -> int | None:
        return self._mirror_by_mrid.get(mrid)

    def mirror_owner(self, mirror_id: int) -> str | None:
        m = self._mirrors.get(mirror_id)
        return m.owner if m else None

    def mirror(self, mirror_id: int) -> UsagePointView | None:
        m = self._mirrors.get(mirror_id)
        return self._mirror_view(m) if m else None

    def mirrors_of(self, owner: str) -> list[UsagePointView]:
        return [self._mirror_view(self._mirrors[i]) for i in self._mirrors_by_owner.get(owner, ())]

    def _mirror_view(self, m: _Mirror) -> UsagePointView:
        device_id = self._device_by_lfdi.get(m.owner)
        device = self._devices.get(device_id) if device_id is not None else None
        return m.view(self.policy, device.operator_post_rate if device else None)

    def mirror_ids_of(self, owner: str) -> list[int]:
        return list(self._mirrors_by_owner.get(owner, ()))

    def all_mirror_ids(self) -> list[int]:
        return list(self._mirrors)

    def add_mirror(self, owner: str, header: MirrorUsagePoint) -> int:
        """A new mirror owned by ``owner`` (header without readings); returns its id."""
        mine = self._mirrors_by_owner.setdefault(owner, [])
        if len(mine) >= self.limits.max_mirrors_per_device:
            raise LimitReached(
                f"a device may hold {self.limits.max_mirrors_per_device} mirror usage points"
            )
        budget = self._budget(owner)
        if budget.meta_bytes + MIRROR_BYTES > self.limits.max_bytes_per_device:
            raise LimitReached(self._budget_message(budget))
        mirror = _Mirror(self._next_mirror_id, owner, replace(header, meter_readings=()))
        self._next_mirror_id += self._id_step
        self._change(budget, meta=MIRROR_BYTES)
        self._retire(budget)
        self._mirrors[mirror.id] = mirror
        self._mirror_by_mrid[header.mrid] = mirror.id
        mine.append(mirror.id)
        self.changes.mirrors.add(mirror.id)
        return mirror.id

    def update_mirror_header(self, mirror_id: int, header: MirrorUsagePoint) -> None:
        self._mirrors[mirror_id].header = replace(header, meter_readings=())
        self.changes.mirrors.add(mirror_id)

    def remove_mirror(self, mirror_id: int) -> bool:
        m = self._mirrors.pop(mirror_id, None)
        if m is None:
            return False
        self.changes.mirrors.add(mirror_id)
        budget = self._budget(m.owner)
        self._change(budget, meta=-(MIRROR_BYTES + METER_READING_BYTES * len(m.readings)))
        for record in m.readings.values():
            for _, reading_set, _ in record.sets.values():
                n = len(reading_set.readings)
                self._change(budget, reading_bytes=-set_bytes(n), readings=-n)
                budget.stale += 1
        self._mirror_by_mrid.pop(m.header.mrid, None)
        owned = self._mirrors_by_owner.get(m.owner, [])
        if mirror_id in owned:
            owned.remove(mirror_id)
        return True

    def clear_mirrors(self, owner: str | None = None) -> int:
        """Remove every mirror (of ``owner``, or of everyone); returns how many."""
        ids = self.mirror_ids_of(owner) if owner is not None else self.all_mirror_ids()
        for mirror_id in ids:
            self.remove_mirror(mirror_id)
        return len(ids)

    # --- mirrored meter readings ---------------------------------------------------------
    def meter_reading_id(self, mirror_id: int, mrid: int) -> int | None:
        r = self._mirrors[mirror_id].readings.get(mrid)
        return r.id if r else None

    def meter_reading(self, mirror_id: int, reading_id: int) -> MeterReadingView | None:
        r = self._reading_record(mirror_id, reading_id)
        return r.view() if r else None

    def upsert_meter_reading(self, mirror_id: int, mmr: MirrorMeterReading) -> int:
        """Create or update the metadata of a mirrored meter reading; returns its id.

        A new one needs a ReadingType (the caller checks); an update keeps what is not given.
        """
        mirror = self._mirrors[mirror_id]
        record = mirror.readings.get(mmr.mrid)
        if record is None:
            if len(mirror.readings) >= self.limits.max_readings_per_mirror:
                raise LimitReached(
                    f"a mirror usage point may hold {self.limits.max_readings_per_mirror} "
                    "meter readings"
                )
            assert mmr.reading_type is not None
            budget = self._budget(mirror.owner)
            if budget.meta_bytes + METER_READING_BYTES > self.limits.max_bytes_per_device:
                raise LimitReached(self._budget_message(budget))
            self._change(budget, meta=METER_READING_BYTES)
            self._retire(budget)
            record = _MeterReading(mirror.next_reading_id, mmr.mrid, mmr.reading_type)
            mirror.next_reading_id += 1
            mirror.readings[mmr.mrid] = record
            self.changes.mirrors.add(mirror_id)
        elif mmr.reading_type is not None:
            record.reading_type = mmr.reading_type
        if mmr.description is not None:
            record.description = mmr.description
        if mmr.version is not None:
            record.version = mmr.version
        if mmr.last_update_time is not None:
            record.last_update_time = mmr.last_update_time
        if mmr.next_update_time is not None:
            record.next_update_time = mmr.next_update_time
        self.changes.meter_readings.add((mirror_id, mmr.mrid))
        return record.id

    def add_reading(self, mirror_id: int, mrid: int, reading: Reading, now: int) -> None:
        """A single posted reading: becomes the latest and a one-reading set in the history."""
        record = self._mirrors[mirror_id].readings[mrid]
        record.latest = reading
        self.changes.meter_readings.add((mirror_id, mrid))
        start = reading.time_start if reading.time_start is not None else now
        duration = reading.duration if reading.duration is not None else 0
        digest = hashlib.sha256(f"{mrid:x}/single/{start}".encode()).digest()[:16]
        self._store_set(
            mirror_id,
            record,
            ReadingSet(int.from_bytes(digest, "big"), start, duration, (reading,)),
        )

    def add_reading_set(self, mirror_id: int, mrid: int, reading_set: ReadingSet) -> None:
        """A posted reading set; one with the same mRID replaces the earlier one in place."""
        record = self._mirrors[mirror_id].readings[mrid]
        self._store_set(mirror_id, record, reading_set)
        if reading_set.readings:
            last = max(
                reading_set.readings,
                key=lambda r: r.time_start if r.time_start is not None else -1,
            )
            if record.latest is None or (last.time_start or 0) >= (record.latest.time_start or 0):
                record.latest = last
                self.changes.meter_readings.add((mirror_id, mrid))

    def _store_set(self, mirror_id: int, record: _MeterReading, reading_set: ReadingSet) -> None:
        """Keep ``reading_set`` (replacing one with the same mRID), then apply the bounds: the
        meter reading's history, the owner's budget and retention."""
        budget = self._budget(self._mirrors[mirror_id].owner)
        n = len(reading_set.readings)
        token = self._next_token
        self._next_token += 1
        old = record.sets.get(reading_set.mrid)
        if old is not None:
            old_n = len(old[1].readings)
            self._change(budget, reading_bytes=-set_bytes(old_n), readings=-old_n)
            self.readings_mirrored -= old_n
            budget.stale += 1
            set_id = old[0]
        else:
            set_id = record.next_set_id
            record.next_set_id += 1
        record.sets[reading_set.mrid] = (set_id, reading_set, token)
        self.changes.sets.add((mirror_id, record.mrid, reading_set.mrid))
        self.changes.meter_readings.add((mirror_id, record.mrid))  # its next_set_id
        budget.order.append((token, mirror_id, record.mrid, reading_set.mrid))
        self._change(budget, reading_bytes=set_bytes(n), readings=n)
        self.readings_mirrored += n
        end = reading_set.start + reading_set.duration
        if budget.newest_end is None or end > budget.newest_end:
            budget.newest_end = end
            device_id = self._device_by_lfdi.get(self._mirrors[mirror_id].owner)
            if device_id is not None:
                self.changes.devices.add(device_id)
        while len(record.sets) > self.limits.history_per_mirror:
            dropped_mrid, (_, dropped, _) = record.sets.popitem(last=False)
            self.changes.sets.add((mirror_id, record.mrid, dropped_mrid))
            k = len(dropped.readings)
            self._change(budget, reading_bytes=-set_bytes(k), readings=-k)
            self.readings_dropped += k
            budget.stale += 1
        self._retire(budget)

    # --- the per-device budget (see ``budget``) ---------------------------------------------
    def fits(
        self, owner: str, new_mirror: bool, new_meter_readings: int, set_sizes: list[int]
    ) -> str | None:
        """None when ``owner`` can store a request adding a mirror (``new_mirror``),
        ``new_meter_readings`` meter readings and reading sets of ``set_sizes`` readings (older
        sets being retired to make room); else why not."""
        budget = self._budget(owner)
        meta = budget.meta_bytes + METER_READING_BYTES * new_meter_readings
        meta += MIRROR_BYTES if new_mirror else 0
        incoming = sum(set_bytes(n) for n in set_sizes)
        readings = sum(set_sizes)
        lim = self.limits
        if meta + incoming <= lim.max_bytes_per_device and readings <= lim.max_readings_per_device:
            return None
        return (
            f"this request holds {readings} readings (~{incoming} bytes) and the device's "
            f"mirrors would take ~{meta} bytes: a device keeps at most "
            f"{lim.max_readings_per_device} readings and {lim.max_bytes_per_device} bytes; "
            "post fewer readings at once"
        )

    def budget_of(self, owner: str) -> DeviceBudget | None:
        """What ``owner`` holds now (None for an unknown LFDI)."""
        device_id = self._device_by_lfdi.get(owner)
        return self._devices[device_id].budget if device_id is not None else None

    def _budget(self, owner: str) -> DeviceBudget:
        budget = self.budget_of(owner)
        if budget is None:  # a mirror whose device was removed: account on a throwaway
            return DeviceBudget()
        return budget

    def _budget_message(self, budget: DeviceBudget) -> str:
        return (
            f"the device's mirrors and meter readings take ~{budget.meta_bytes} of its "
            f"{self.limits.max_bytes_per_device} bytes"
        )

    def _change(
        self, budget: DeviceBudget, meta: int = 0, reading_bytes: int = 0, readings: int = 0
    ) -> None:
        budget.meta_bytes += meta
        budget.reading_bytes += reading_bytes
        budget.readings += readings
        self.bytes_held += meta + reading_bytes

    def _live(self, entry: tuple[int, int, int, int]) -> tuple[_MeterReading, ReadingSet] | None:
        token, mirror_id, mrid, set_mrid = entry
        mirror = self._mirrors.get(mirror_id)
        record = mirror.readings.get(mrid) if mirror is not None else None
        kept = record.sets.get(set_mrid) if record is not None else None
        if kept is None or kept[2] != token:
            return None
        return record, kept[1]

    def _retire(self, budget: DeviceBudget) -> None:
        """Retire the device's oldest sets (posting order) while it is over its budget or they
        ended more than ``retention_s`` before its newest set."""
        lim = self.limits
        cutoff = budget.newest_end - lim.retention_s if budget.newest_end is not None else None
        while budget.order:
            live = self._live(budget.order[0])
            if live is None:
                budget.order.popleft()
                budget.stale -= 1
                continue
            record, oldest = live
            over = (
                budget.bytes > lim.max_bytes_per_device
                or budget.readings > lim.max_readings_per_device
            )
            aged = cutoff is not None and oldest.start + oldest.duration < cutoff
            if not (over or aged):
                break
            mirror_id = budget.order.popleft()[1]
            del record.sets[oldest.mrid]
            self.changes.sets.add((mirror_id, record.mrid, oldest.mrid))
            n = len(oldest.readings)
            self._change(budget, reading_bytes=-set_bytes(n), readings=-n)
            self.readings_dropped += n
        if budget.stale > len(budget.order) // 2 + 64:  # forget entries of sets gone otherwise
            budget.order = type(budget.order)(e for e in budget.order if self._live(e))
            budget.stale = 0

    def meter_reading_ids(self, mirror_id: int) -> list[int]:
        return [r.id for r in self._mirrors[mirror_id].readings.values()]

    def reading_sets(self, mirror_id: int, reading_id: int) -> list[ReadingSetView]:
        """Kept reading sets, most recent first (start descending, then id descending)."""
        record = self._reading_record(mirror_id, reading_id)
        if record is None:
            return []
        views = [ReadingSetView(set_id, s) for set_id, s, _ in record.sets.values()]
        views.sort(key=lambda v: (v.set.start, v.id), reverse=True)
        return views

    def reading_set(self, mirror_id: int, reading_id: int, set_id: int) -> ReadingSetView | None:
        record = self._reading_record(mirror_id, reading_id)
        if record is None:
            return None
        for sid, s, _ in record.sets.values():
            if sid == set_id:
                return ReadingSetView(sid, s)
        return None

    def _reading_record(self, mirror_id: int, reading_id: int) -> _MeterReading | None:
        mirror = self._mirrors.get(mirror_id)
        if mirror is None:
            return None
        for r in mirror.readings.values():
            if r.id == reading_id:
                return r
        return None

    # --- status --------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Sizes for status: devices, mirror usage points, readings mirrored and dropped, DER
        controls kept and devices that reported their DER."""
        return {
            "registered_devices": len(self._devices),
            "mirror_usage_points": len(self._mirrors),
            "readings_mirrored": self.readings_mirrored,
            "readings_dropped": self.readings_dropped,
            "bytes_held": self.bytes_held,
            "der_controls": len(self.der.controls),
            "der_devices_reporting": len(self.der.devices),
        }
