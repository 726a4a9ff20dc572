"""Demand-response load control as pure, vectorised functions of (seed, meter, event, time).

A ``LoadControl`` is one IEEE 2030.5 EndDeviceControl, reduced to what the model needs: when it
runs, whom it targets and how much load it sheds. Events are inputs to a window, like time: the
shed of a meter in an interval, and the rebound after an event, are pure functions of the seed,
the meter, the event and the interval, so a window replayed, split in two or run on another node
yields the same readings.

Randomisation (IEEE 2030.5 ``randomizeStart`` / ``randomizeDuration``, OneHourRangeType, −3600 to
3600 s): each meter draws its own offset uniformly between 0 and the given value, keyed by the
seed, the meter's key and the event's mRID, so every process draws the same offset.

Shed forms (when an event carries several, the largest reduction wins; when several events cover a
meter at the same time, the largest reduction wins too; the shed never exceeds the load):

- ``reduce_pct`` p: shed = p / 100 · load.
- ``reduce_kw`` k: shed = min(k, load).
- ``duty_cycle_pct`` d: air conditioning may run d % of the time, shed = ac · load · (1 − d/100).
- ``cooling_offset_c`` x: setpoints raised by x °C, shed = ac · load · min(0.08 · x, 0.5).

where ``ac`` is the air-conditioning share of the building's load (``AC_SHARE_OF_LOAD``).

Rebound (energy payback after an event ends, e.g. chillers pulling rooms back to setpoint): an
extra load of ρ · S · exp(−(t − end)/τ) for 3τ after the meter's (randomised) end, where S is the
shed rate the event imposed in its last interval. S is evaluated by calling the load model for that
interval (a pure function of seed, meter and time), so no rebound is kept in state and a window
boundary anywhere inside an event or a rebound changes nothing.

Interval values are averages over the interval [start, start + interval): an event covering part
of an interval sheds in proportion to the part it covers, and the rebound is the exact average of
the exponential over the interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gtx_ray.model.load import BUILDING_TYPES
from gtx_ray.model.noise import hash_keys, stable_key, uniform

# IEEE 2030.5 DeviceCategoryType bits (a bitmap; an event with category 0 applies to every device).
MANAGED_CI_LOADS = 1 << 9  # "Managed Commercial and Industrial (C&I) Loads"
PHOTOVOLTAIC_SYSTEM = 1 << 21
COMBINED_PV_AND_STORAGE = 1 << 23

# Category of each meter type, in the order of fleet.METER_TYPES (consumer, prosumer,
# hybrid_prosumer): every campus building is a managed C&I load; PV and PV + storage add their bit.
METER_TYPE_CATEGORY: tuple[int, ...] = (
    MANAGED_CI_LOADS,
    MANAGED_CI_LOADS | PHOTOVOLTAIC_SYSTEM,
    MANAGED_CI_LOADS | COMBINED_PV_AND_STORAGE,
)

# Share of a building's electricity that is air conditioning (0–1), per building type. Air
# conditioning is commonly put at about 60 % of the electricity of Thai commercial buildings
# (the figure used in Thai building energy-efficiency material, e.g. DEDE's building energy
# code guidance); offices, classrooms and the library sit at or above it, kitchens, labs and
# workshops below (process loads), a parking structure far below (only lighting and ventilation).
AC_SHARE_OF_LOAD: dict[str, float] = {
    "academic": 0.60,
    "office": 0.60,
    "library": 0.65,
    "dormitory": 0.50,
    "cafeteria": 0.40,
    "gymnasium": 0.50,
    "research": 0.35,
    "parking": 0.10,
    "maintenance": 0.30,
}
if set(AC_SHARE_OF_LOAD) != set(BUILDING_TYPES):
    raise RuntimeError("AC_SHARE_OF_LOAD must name every building type of model.load")

# Setpoint raise: about 8 % less cooling energy per °C (an engineering rule of thumb for air
# conditioning in hot climates; quoted figures range from ~6 to ~10 %/°C), at most half of it.
COOLING_SAVING_PER_C = 0.08
COOLING_SAVING_MAX = 0.5

REBOUND_RATIO = 0.5  # ρ: rebound peak as a share of the shed rate in the event's last interval
REBOUND_TAU_S = 45 * 60  # τ: decay time constant of the rebound, s
REBOUND_SPAN_S = 3 * REBOUND_TAU_S  # the rebound lasts 3τ, after which it stops (e^-3 ≈ 5 %)

MAX_RANDOMIZE_S = 3600  # IEEE 2030.5 OneHourRangeType

_STREAM_START, _STREAM_DURATION = 501, 502


@dataclass(frozen=True)
class LoadControl:
    """One demand-response event (an IEEE 2030.5 EndDeviceControl).

    event_id: the event's mRID (hex string); start_s: scheduled start, UTC epoch s; duration_s:
    scheduled duration, s; randomize_start_s / randomize_duration_s: −3600..3600 s, each meter
    shifts its start / stretches its duration by its own draw between 0 and this value.
    Shed forms (at least one): reduce_pct (%, 0–100 of demand), reduce_kw (kW per meter),
    duty_cycle_pct (share of time the air conditioning may run, 0–100 %), cooling_offset_c
    (setpoint raise, °C ≥ 0). Targets: meter_ids (None: every meter of the category),
    device_category (DeviceCategoryType bitmap, 0: every category). cancelled_at_s: UTC epoch s
    from which a cancelled event stops shedding (shifted by the meter's start offset when
    cancel_randomized). rebound: whether the load pays the energy back after the event.
    """

    event_id: str
    start_s: int
    duration_s: int
    randomize_start_s: int = 0
    randomize_duration_s: int = 0
    reduce_pct: float | None = None
    reduce_kw: float | None = None
    duty_cycle_pct: float | None = None
    cooling_offset_c: float | None = None
    meter_ids: frozenset[str] | None = None
    device_category: int = 0
    cancelled_at_s: int | None = None
    cancel_randomized: bool = False
    rebound: bool = True

    def __post_init__(self) -> None:
        if not self.event_id:
            raise ValueError("a load control needs an event_id (its mRID)")
        if self.duration_s < 0:
            raise ValueError(
                f"event {self.event_id}: duration_s must be ≥ 0, got {self.duration_s}"
            )
        for name in ("randomize_start_s", "randomize_duration_s"):
            value = getattr(self, name)
            if not -MAX_RANDOMIZE_S <= value <= MAX_RANDOMIZE_S:
                raise ValueError(
                    f"event {self.event_id}: {name} must be in −3600..3600, got {value}"
                )
        forms = (self.reduce_pct, self.reduce_kw, self.duty_cycle_pct, self.cooling_offset_c)
        if all(f is None for f in forms):
            raise ValueError(
                f"event {self.event_id}: set reduce_pct, reduce_kw, duty_cycle_pct or "
                "cooling_offset_c"
            )
        for name, lo, hi in (
            ("reduce_pct", 0.0, 100.0),
            ("reduce_kw", 0.0, np.inf),
            ("duty_cycle_pct", 0.0, 100.0),
            ("cooling_offset_c", 0.0, np.inf),
        ):
            value = getattr(self, name)
            if value is not None and not lo <= value <= hi:
                raise ValueError(
                    f"event {self.event_id}: {name} must be in [{lo}, {hi}], got {value}"
                )
        if self.device_category < 0:
            raise ValueError(f"event {self.event_id}: device_category is a bitmap ≥ 0")
        if self.meter_ids is not None and not isinstance(self.meter_ids, frozenset):
            object.__setattr__(self, "meter_ids", frozenset(self.meter_ids))


@dataclass(frozen=True)
class ControlledMeters:
    """What load control needs to know of a group of M meters.

    meter_id: (M,) str; key: (M,) uint64, the meter's random stream (``noise.stable_key`` of its
    id); category: (M,) int64 DeviceCategoryType bits; ac_share: (M,) air-conditioning share of the
    load, 0–1.
    """

    meter_id: np.ndarray
    key: np.ndarray
    category: np.ndarray
    ac_share: np.ndarray

    @staticmethod
    def of(
        meter_id: np.ndarray, key: np.ndarray, meter_type: np.ndarray, building_type: np.ndarray
    ) -> ControlledMeters:
        """From the meters' ids, keys, meter type indices (fleet.METER_TYPES order) and building
        type indices (load.BUILDING_TYPES order)."""
        return ControlledMeters(
            meter_id=np.asarray(meter_id, dtype=object),
            key=np.asarray(key, dtype=np.uint64),
            category=device_category_of(meter_type),
            ac_share=ac_share_of(building_type),
        )

    def __len__(self) -> int:
        return len(self.meter_id)


def device_category_of(meter_type: np.ndarray) -> np.ndarray:
    """IEEE 2030.5 DeviceCategoryType bits (int64) of each meter type index (0 consumer,
    1 prosumer, 2 hybrid_prosumer)."""
    return np.asarray(METER_TYPE_CATEGORY, dtype=np.int64)[np.asarray(meter_type, dtype=np.intp)]


def ac_share_of(building_type: np.ndarray) -> np.ndarray:
    """Air-conditioning share of the load (0–1) of each building type index."""
    table = np.array([AC_SHARE_OF_LOAD[name] for name in BUILDING_TYPES], dtype=np.float64)
    return table[np.asarray(building_type, dtype=np.intp)]


def targeted(event: LoadControl, meters: ControlledMeters) -> np.ndarray:
    """(M,) bool: the event applies to the meter (category 0 or a shared bit, and the meter is
    listed when the event lists meters)."""
    hit = np.full(len(meters), True)
    if event.device_category:
        hit &= (meters.category & event.device_category) != 0
    if event.meter_ids is not None:
        hit &= np.isin(meters.meter_id.astype(str), list(event.meter_ids))
    return hit


def shed_window(
    event: LoadControl, seed: int, meters: ControlledMeters
) -> tuple[np.ndarray, np.ndarray]:
    """Each meter's shedding window [begin, end) in UTC epoch s (float), shape (M,) each.

    begin = start + the meter's start offset; end = begin + duration + its duration offset, cut at
    the (optionally randomised) cancellation. end ≤ begin means the meter never sheds. The window
    is computed for every meter; ``targeted`` says whom it concerns.
    """
    keys = hash_keys(seed, meters.key, np.uint64(stable_key(event.event_id)))
    offset_s = uniform(keys, _STREAM_START) * event.randomize_start_s
    duration_s = np.maximum(
        event.duration_s + uniform(keys, _STREAM_DURATION) * event.randomize_duration_s, 0.0
    )
    begin = event.start_s + offset_s
    end = begin + duration_s
    if event.cancelled_at_s is not None:
        cancel = event.cancelled_at_s + (offset_s if event.cancel_randomized else 0.0)
        end = np.minimum(end, cancel)
    return begin, end


def shed_rate_kw(event: LoadControl, load_kw: np.ndarray, ac_share: np.ndarray) -> np.ndarray:
    """Shed the event asks of a load while it runs, kW, the largest of its forms, in [0, load].

    load_kw: (..., M) demand, kW; ac_share: (M,) air-conditioning share of it, 0–1.
    """
    forms = []
    if event.reduce_pct is not None:
        forms.append(event.reduce_pct / 100.0 * load_kw)
    if event.reduce_kw is not None:
        forms.append(np.minimum(event.reduce_kw, load_kw))
    if event.duty_cycle_pct is not None:
        forms.append(ac_share * load_kw * (1.0 - event.duty_cycle_pct / 100.0))
    if event.cooling_offset_c is not None:
        saving = min(COOLING_SAVING_PER_C * event.cooling_offset_c, COOLING_SAVING_MAX)
        forms.append(ac_share * load_kw * saving)
    return np.clip(np.maximum.reduce(forms), 0.0, load_kw)


def _overlap_s(
    starts_s: np.ndarray, interval_s: int, begin: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Seconds of each interval [start, start + interval) inside [begin, end): (T, M)."""
    lo = np.maximum(starts_s[:, None].astype(np.float64), begin[None, :])
    hi = np.minimum(starts_s[:, None] + float(interval_s), end[None, :])
    return np.maximum(hi - lo, 0.0)


def _rows(starts_s: np.ndarray, interval_s: int, first_s: float, last_s: float) -> slice:
    """The intervals of the window that overlap [first_s, last_s) (a slice of rows)."""
    lo = int(np.searchsorted(starts_s + interval_s, first_s, side="right"))
    hi = int(np.searchsorted(starts_s, last_s, side="left"))
    return slice(lo, max(lo, hi))


def _columns(active: np.ndarray) -> np.ndarray | slice:
    """Indices of the active meters, or a plain slice when all are (no fancy-index copies)."""
    return slice(None) if active.all() else np.flatnonzero(active)


def shed_kw(
    events: tuple[LoadControl, ...],
    seed: int,
    meters: ControlledMeters,
    starts_s: np.ndarray,
    interval_s: int,
    load_kw: np.ndarray,
) -> np.ndarray:
    """Demand shed by the events in each interval, kW averaged over the interval, shape (T, M).

    starts_s: (T,) interval starts, UTC epoch s; load_kw: (T, M) the demand without control, kW
    (interval averages). An event covering part of an interval sheds that part of it. Where events
    overlap the largest reduction wins. 0 ≤ shed ≤ load.
    """
    starts_s = np.asarray(starts_s, dtype=np.int64)
    shed = np.zeros(load_kw.shape)
    if not len(starts_s):
        return shed
    window_lo, window_hi = float(starts_s[0]), float(starts_s[-1] + interval_s)
    for event in events:
        hit = targeted(event, meters)
        if not hit.any():
            continue
        begin, end = shed_window(event, seed, meters)
        active = hit & (end > begin) & (end > window_lo) & (begin < window_hi)
        if not active.any():
            continue
        idx = _columns(active)
        rows = _rows(starts_s, interval_s, begin[idx].min(), end[idx].max())
        share = _overlap_s(starts_s[rows], interval_s, begin[idx], end[idx]) / interval_s
        rate = shed_rate_kw(event, load_kw[rows, idx], meters.ac_share[idx])
        shed[rows, idx] = np.maximum(shed[rows, idx], share * rate)
    return np.minimum(shed, load_kw)


def last_interval_mid_s(end_s: np.ndarray, interval_s: int) -> np.ndarray:
    """Mid-point (UTC epoch s) of the interval of the epoch-aligned grid that holds the last
    instant before ``end_s`` (the event's last interval)."""
    last_start = np.ceil(np.asarray(end_s, dtype=np.float64) / interval_s) * interval_s - interval_s
    return last_start + interval_s / 2.0


LoadAt = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""load_at(mids_s (U,), meter_index (K,)) → (U, K): the load model's demand, kW, of meters
``meter_index`` of the group at interval mid-points ``mids_s`` (UTC epoch s)."""


def rebound_kw(
    events: tuple[LoadControl, ...],
    seed: int,
    meters: ControlledMeters,
    starts_s: np.ndarray,
    interval_s: int,
    load_at: LoadAt,
) -> np.ndarray:
    """Extra demand after the events end (energy payback), kW averaged over each interval, (T, M).

    For each event with ``rebound`` and each targeted meter that shed: S = the event's shed rate in
    its last interval, evaluated on ``load_at`` of that interval (a pure function of seed, meter
    and time, so the result does not depend on where windows begin); the extra demand is
    ρ · S · exp(−(t − end)/τ) for end ≤ t < end + 3τ, averaged exactly over each interval.
    Rebounds of several events add up.
    """
    starts_s = np.asarray(starts_s, dtype=np.int64)
    extra = np.zeros((len(starts_s), len(meters)))
    if not len(starts_s):
        return extra
    window_lo, window_hi = float(starts_s[0]), float(starts_s[-1] + interval_s)
    tau = float(REBOUND_TAU_S)
    for event in events:
        if not event.rebound:
            continue
        hit = targeted(event, meters)
        if not hit.any():
            continue
        begin, end = shed_window(event, seed, meters)
        live = hit & (end > begin) & (end < window_hi) & (end + REBOUND_SPAN_S > window_lo)
        if not live.any():
            continue
        idx = np.flatnonzero(live)
        mids = last_interval_mid_s(end[idx], interval_s)
        unique_mids, which = np.unique(mids, return_inverse=True)
        reference = load_at(unique_mids, idx)[which, np.arange(len(idx))]  # (K,)
        rate = shed_rate_kw(event, reference, meters.ac_share[idx])
        # Exact interval average of ρ·S·exp(−(t − end)/τ) over [max(start, end), min(stop, end+3τ)).
        e = end[idx][None, :]
        rows = _rows(starts_s, interval_s, e.min(), e.max() + REBOUND_SPAN_S)
        t0 = starts_s[rows, None].astype(np.float64)
        lo = np.maximum(t0, e)
        hi = np.maximum(np.minimum(t0 + float(interval_s), e + REBOUND_SPAN_S), lo)
        integral = tau * (np.exp(-(lo - e) / tau) - np.exp(-(hi - e) / tau))
        extra[rows, idx] += REBOUND_RATIO * rate[None, :] * integral / interval_s
    return extra
