"""IEEE 2030.5 DER controls (DERControl, DefaultDERControl, CSIP-AUS limits) as model inputs:
what each control asks, whom it targets and how much of each interval it is in force.

A ``DerControl`` is one DERControl event reduced to what the model needs; a ``DerDefault`` is the
DefaultDERControl, in force whenever no event is. Like demand-response events they are inputs to a
window, like time: everything here is a pure function of (seed, meter, control, interval), so a
window replayed, split anywhere or run on another node yields the same readings.

When: each meter runs an event over [begin, end): begin = start + its randomizeStart draw, end =
begin + duration + its randomizeDuration draw (OneHourRangeType, −3600..3600 s, drawn uniformly
between 0 and the value, keyed by the seed, the meter's key and the event's mRID), cut at
``cancelled_at_s`` (+ the meter's start offset when ``cancel_randomized``).

Precedence: at each instant a meter follows one event, the one in force with the lowest
``primacy``; among equal primacy the latest ``created_s`` wins, then the greatest ``event_id``.
Modes the winning event leaves unset fall back to the meter's default control's (CSIP-AUS);
otherwise they are unconstrained. There may be several defaults (a server may give meters programs
with different DefaultDERControls): each meter follows the first one that targets it.

Ramp (rampTms): an event moves the meter's operation linearly, over ``ramp_s`` seconds from its
begin, from what the meter would do under the default control (or uncontrolled, without one) to
what the event asks; with ``ramp_s`` None the meter's default's ``set_grad_w`` (setGradW, % of the
rated power per second) gives the time to traverse the full rated range, 100 / set_grad_w s; without
either the change is a step. A disconnect (``connect`` or ``energize`` False) takes effect at once.
At its end (or cancellation) an event hands the meter back to the default at setGradW too: its
hold falls from the level it reached to 0 over that level × 100 / set_grad_w s (reconnection after
a disconnect included); without a default gradient the return is a step. The ramp is modelled as a
weight: in an interval, each event has the share of the interval it holds the meter, each instant
counted by its ramp progress, and the default (or uncontrolled) operation has the rest. The
strongest event in force holds the meter; where none is, the strongest one still ramping out does.
An event also counts only for the part of an interval it covers. The meter's interval averages are
the weighted averages of its operation under each (see ``der_dispatch``); for a limit u → L on a
steady quantity this equals ramping the limit itself. Not modelled: a ramp from a preceding
event's setting to the next event's (an event ramps in from the default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gtx_ray.model.controls import MAX_RANDOMIZE_S
from gtx_ray.model.noise import hash_keys, stable_key, uniform

_STREAM_START, _STREAM_DURATION = 601, 602
_FAR_S = 2.0**62  # an instant after every simulated time, UTC epoch s (exact in float64)

# The operating modes a control may set, shared by DerControl and DerDefault (None = not set).
MODE_FIELDS = (
    "connect",
    "energize",
    "export_limit_kw",
    "import_limit_kw",
    "generation_limit_kw",
    "load_limit_kw",
    "fixed_kw",
    "fixed_pct",
    "max_limit_pct",
)

MODE_OF_WIRE = {
    "connect": "connect",
    "energize": "energize",
    "export_limit_kw": "export_limit_kw",
    "import_limit_kw": "import_limit_kw",
    "generation_limit_kw": "generation_limit_kw",
    "load_limit_kw": "load_limit_kw",
    "fixed_w_pct": "fixed_pct",
    "max_lim_w_pct": "max_limit_pct",
}
"""The model's mode of each DERControlBase mode as 2030.5 names it (``ieee2030_5.der``, scenario
files): the percentages stay percentages of each meter's own rating."""


def _check_modes(name: str, control: DerControl | DerDefault) -> None:
    for field in ("export_limit_kw", "import_limit_kw", "generation_limit_kw", "load_limit_kw"):
        value = getattr(control, field)
        if value is not None and not value >= 0:
            raise ValueError(f"{name}: {field} must be ≥ 0 kW, got {value}")
    if control.fixed_kw is not None and not np.isfinite(control.fixed_kw):
        raise ValueError(f"{name}: fixed_kw must be finite, got {control.fixed_kw}")
    if control.fixed_pct is not None and not -100.0 <= control.fixed_pct <= 100.0:
        raise ValueError(f"{name}: fixed_pct must be in [-100, 100] %, got {control.fixed_pct}")
    if control.fixed_kw is not None and control.fixed_pct is not None:
        raise ValueError(f"{name}: set fixed_kw or fixed_pct, not both")
    pct = control.max_limit_pct
    if pct is not None and not 0.0 <= pct <= 100.0:
        raise ValueError(f"{name}: max_limit_pct must be in [0, 100] %, got {pct}")
    if control.device_category < 0:
        raise ValueError(f"{name}: device_category is a bitmap ≥ 0")
    if control.meter_ids is not None and not isinstance(control.meter_ids, frozenset):
        object.__setattr__(control, "meter_ids", frozenset(control.meter_ids))


@dataclass(frozen=True)
class DerControl:
    """One DER control event (an IEEE 2030.5 DERControl).

    event_id: the event's mRID (hex string); start_s: scheduled start, UTC epoch s; duration_s:
    scheduled duration, s; randomize_start_s / randomize_duration_s: −3600..3600 s, each meter
    shifts its start / stretches its duration by its own draw between 0 and this value.
    Targets: meter_ids (None: every meter of the category), device_category (DeviceCategoryType
    bitmap, 0: every category; see ``controls.device_category_of``). primacy: the program's
    primacy, lower wins; created_s: the event's creation time, UTC epoch s, the later wins among
    equal primacy; cancelled_at_s: UTC epoch s from which a cancelled or superseded event stops,
    shifted by the meter's start offset when cancel_randomized (EventStatus "cancelled with
    randomization").

    Modes (None: not set, the default control's applies):
    connect (opModConnect) / energize (opModEnergize): False takes PV and battery off (0 kW).
    export_limit_kw (opModExpLimW): grid export at the meter ≤ this, kW.
    import_limit_kw (opModImpLimW): grid import at the meter ≤ this, kW, as far as the battery can.
    generation_limit_kw (opModGenLimW): PV + battery discharge ≤ this, kW.
    load_limit_kw (opModLoadLimW): battery charge ≤ this, kW.
    fixed_kw (opModFixedW): battery set-point, kW, + discharge / − charge; or
    fixed_pct (opModFixedW as on the wire): the same as a signed % of each battery's rated power
    (one control then asks each battery in proportion to its size). No effect without a battery.
    max_limit_pct (opModMaxLimW): PV AC output ≤ this % of the inverter's rated power.
    ramp_s (rampTms): seconds to move to the new setting; None: the default's setGradW.
    """

    event_id: str
    start_s: int
    duration_s: int
    randomize_start_s: int = 0
    randomize_duration_s: int = 0
    meter_ids: frozenset[str] | None = None
    device_category: int = 0
    primacy: int = 1
    created_s: int = 0
    cancelled_at_s: int | None = None
    cancel_randomized: bool = False
    connect: bool | None = None
    energize: bool | None = None
    export_limit_kw: float | None = None
    import_limit_kw: float | None = None
    generation_limit_kw: float | None = None
    load_limit_kw: float | None = None
    fixed_kw: float | None = None
    fixed_pct: float | None = None
    max_limit_pct: float | None = None
    ramp_s: float | None = None

    def __post_init__(self) -> None:
        if not self.event_id:
            raise ValueError("a DER control needs an event_id (its mRID)")
        name = f"DER control {self.event_id}"
        if self.duration_s < 0:
            raise ValueError(f"{name}: duration_s must be ≥ 0, got {self.duration_s}")
        for field in ("randomize_start_s", "randomize_duration_s"):
            value = getattr(self, field)
            if not -MAX_RANDOMIZE_S <= value <= MAX_RANDOMIZE_S:
                raise ValueError(f"{name}: {field} must be in −3600..3600, got {value}")
        if self.ramp_s is not None and not self.ramp_s >= 0:
            raise ValueError(f"{name}: ramp_s must be ≥ 0 s, got {self.ramp_s}")
        _check_modes(name, self)

    @property
    def disconnects(self) -> bool:
        """The event takes the DER off the grid (opModConnect or opModEnergize False)."""
        return self.connect is False or self.energize is False


@dataclass(frozen=True)
class DerDefault:
    """The DefaultDERControl: modes in force when no event is (and for modes an event leaves
    unset). Targets and modes as in ``DerControl`` (the targets limit its modes; its gradient
    applies to every meter's events); set_grad_w (setGradW): ramp rate of events without their own
    ramp_s and of every return to the default, % of the rated power per second (None or 0: no
    ramp)."""

    meter_ids: frozenset[str] | None = None
    device_category: int = 0
    connect: bool | None = None
    energize: bool | None = None
    export_limit_kw: float | None = None
    import_limit_kw: float | None = None
    generation_limit_kw: float | None = None
    load_limit_kw: float | None = None
    fixed_kw: float | None = None
    fixed_pct: float | None = None
    max_limit_pct: float | None = None
    set_grad_w: float | None = None

    def __post_init__(self) -> None:
        if self.set_grad_w is not None and not self.set_grad_w >= 0:
            raise ValueError(
                f"default DER control: set_grad_w must be ≥ 0 %/s, got {self.set_grad_w}"
            )
        _check_modes("default DER control", self)

    def full_scale_ramp_s(self) -> float:
        """Seconds an event without rampTms takes to change the output: 100 / set_grad_w (full
        rated range at setGradW), 0 without a gradient."""
        return 100.0 / self.set_grad_w if self.set_grad_w else 0.0


@dataclass(frozen=True)
class DerMeters:
    """What DER control needs to know of a group of D meters with PV and/or a battery.

    meter_id: (D,) str; key: (D,) uint64 random stream of each meter; category: (D,) int64
    DeviceCategoryType bits; inverter_kw: (D,) PV inverter rating, kW (0 without PV); battery_kw:
    (D,) battery inverter rating, both directions, kW (0 without a battery).
    """

    meter_id: np.ndarray
    key: np.ndarray
    category: np.ndarray
    inverter_kw: np.ndarray
    battery_kw: np.ndarray

    def __len__(self) -> int:
        return len(self.meter_id)


def targeted(control: DerControl | DerDefault, meters: DerMeters) -> np.ndarray:
    """(D,) bool: the control applies to the meter (category 0 or a shared bit, and the meter is
    listed when the control lists meters)."""
    hit = np.full(len(meters), True)
    if control.device_category:
        hit &= (meters.category & control.device_category) != 0
    if control.meter_ids is not None:
        hit &= np.isin(meters.meter_id.astype(str), list(control.meter_ids))
    return hit


def control_window(
    control: DerControl, seed: int, meters: DerMeters
) -> tuple[np.ndarray, np.ndarray]:
    """Each meter's window [begin, end) of the event, UTC epoch s (float), (D,) each; end ≤ begin:
    never in force. Computed for every meter; ``targeted`` says whom it concerns."""
    keys = hash_keys(seed, meters.key, np.uint64(stable_key(control.event_id)))
    offset_s = uniform(keys, _STREAM_START) * control.randomize_start_s
    begin = control.start_s + offset_s
    duration_s = np.maximum(
        control.duration_s + uniform(keys, _STREAM_DURATION) * control.randomize_duration_s, 0.0
    )
    end = begin + duration_s
    if control.cancelled_at_s is not None:
        cancel = control.cancelled_at_s + (offset_s if control.cancel_randomized else 0.0)
        end = np.minimum(end, cancel)
    return begin, end


def by_precedence(controls: tuple[DerControl, ...]) -> tuple[DerControl, ...]:
    """Controls from the strongest to the weakest: lowest primacy, then latest created_s, then
    greatest event_id."""
    ordered = sorted(controls, key=lambda c: c.event_id, reverse=True)
    return tuple(sorted(ordered, key=lambda c: (c.primacy, -c.created_s)))


def default_of(defaults: tuple[DerDefault, ...], meters: DerMeters) -> np.ndarray:
    """(D,) int: the index in ``defaults`` of the default each meter follows (the first that
    targets it), −1 for a meter no default targets."""
    chosen = np.full(len(meters), -1)
    for i in range(len(defaults) - 1, -1, -1):
        chosen = np.where(targeted(defaults[i], meters), i, chosen)
    return chosen


def full_scale_ramp_s(defaults: tuple[DerDefault, ...], meters: DerMeters) -> np.ndarray:
    """(D,) seconds: 100 / setGradW of the default each meter follows, 0 without one (a step)."""
    chosen = default_of(defaults, meters)
    out = np.zeros(len(meters))
    for i, default in enumerate(defaults):
        out = np.where(chosen == i, default.full_scale_ramp_s(), out)
    return out


def ramp_of(control: DerControl, grad_ramp_s: np.ndarray) -> np.ndarray:
    """(D,) seconds the event takes each meter to its setting (see the module docstring);
    ``grad_ramp_s``: ``full_scale_ramp_s`` of the meters."""
    if control.disconnects:
        return np.zeros_like(grad_ramp_s)
    if control.ramp_s is not None:
        return np.full_like(grad_ramp_s, float(control.ramp_s))
    return grad_ramp_s


def _safe(ramp_s: np.ndarray) -> np.ndarray:
    """The ramp where it is > 0, else 1 (a divisor whose quotient ``np.where`` then discards)."""
    return np.where(ramp_s > 0.0, ramp_s, 1.0)


def _level(run_s: np.ndarray, ramp_s: np.ndarray) -> np.ndarray:
    """How far an event that ran ``run_s`` s with ramp ``ramp_s`` got: 0–1 (1 without a ramp)."""
    return np.where(ramp_s > 0.0, np.clip(run_s / _safe(ramp_s), 0.0, 1.0), 1.0)


def _ramped_s(rel_s: np.ndarray, ramp_s: np.ndarray) -> np.ndarray:
    """∫ from 0 to rel of min(max(x / ramp, 0), 1) dx: seconds of full effect by ``rel_s`` s after
    the begin (ramp 0: a step)."""
    inside = np.clip(rel_s, 0.0, ramp_s)
    return inside * inside / (2.0 * _safe(ramp_s)) + np.maximum(rel_s - ramp_s, 0.0)


def _held_s(
    x_s: np.ndarray,
    begin_s: np.ndarray,
    stop_s: np.ndarray,
    ramp_in_s: np.ndarray,
    ramp_out_s: np.ndarray,
) -> np.ndarray:
    """∫ from begin to x of an event's hold on a meter, s: its ramp-in progress until it stops,
    then falling from the level it reached by 1 / ramp_out_s per second (ramps per meter)."""
    held = _ramped_s(np.minimum(x_s, stop_s) - begin_s, ramp_in_s)
    level = _level(stop_s - begin_s, ramp_in_s)
    fall = np.clip(x_s - stop_s, 0.0, level * ramp_out_s)
    return held + level * fall - fall * fall / (2.0 * _safe(ramp_out_s))


def control_weights(
    controls: tuple[DerControl, ...],
    defaults: tuple[DerDefault, ...],
    seed: int,
    meters: DerMeters,
    starts_s: np.ndarray,
    interval_s: int,
) -> tuple[tuple[DerControl, ...], np.ndarray]:
    """The events that concern the group, strongest first, and each one's weight in each interval,
    shape (E, T, D), 0–1: the share of the interval [start, start + interval) the event holds the
    meter, each instant counted by the event's ramp progress (in or out). The default (or
    uncontrolled) operation has 1 − the sum. A pure function of the controls, the seed, the meter
    and the interval: the same whichever window holds the interval.
    """
    starts_s = np.asarray(starts_s, dtype=np.int64)
    n_meters = len(meters)
    release = full_scale_ramp_s(defaults, meters)  # each meter's return to its default
    if not len(starts_s):
        return (), np.zeros((0, 0, n_meters))
    window_lo, window_hi = float(starts_s[0]), float(starts_s[-1] + interval_s)
    events: list[DerControl] = []
    begins, stops, ends = [], [], []
    for control in by_precedence(controls):
        hit = targeted(control, meters)
        if not hit.any():
            continue
        begin, stop = control_window(control, seed, meters)
        live = hit & (stop > begin)
        if not live.any():
            continue
        ramp = ramp_of(control, release)
        level = _level(stop - begin, ramp)
        if not (live & (stop + level * release > window_lo) & (begin < window_hi)).any():
            continue  # it holds no meter in the window: leaving it out changes no weight there
        events.append(control)
        begins.append(np.where(live, begin, _FAR_S))
        stops.append(np.where(live, stop, _FAR_S))
        ends.append(np.where(live, stop + level * release, _FAR_S))
    weights = np.zeros((len(events), len(starts_s), n_meters))
    if not events:
        return (), weights
    begin, stop, end = np.array(begins), np.array(stops), np.array(ends)  # (E, D)

    # Cut each meter's time line at every begin, stop and end of a ramp-out; a piece belongs to
    # the strongest event in force on it, else to the strongest one ramping out. Untargeted events
    # sit at _FAR_S, so they change no meter's pieces.
    cuts = np.sort(np.vstack([begin, stop, end]), axis=0)  # (3E, D)
    lo_t = starts_s[:, None].astype(np.float64)
    hi_t = lo_t + float(interval_s)
    for piece in range(len(cuts) - 1):
        lo, hi = cuts[piece], cuts[piece + 1]
        mid = lo + (hi - lo) / 2.0
        in_force = (begin <= mid) & (mid < stop)  # (E, D)
        ramping_out = (stop <= mid) & (mid < end)
        winner = np.where(
            in_force.any(axis=0),
            np.argmax(in_force, axis=0),
            np.where(ramping_out.any(axis=0), np.argmax(ramping_out, axis=0), -1),
        )
        for e, event in enumerate(events):
            mine = (winner == e) & (hi > lo) & (hi > window_lo) & (lo < window_hi)
            if not mine.any():
                continue
            idx = np.flatnonzero(mine)
            a = np.maximum(lo_t, lo[idx][None, :])  # (T, K)
            b = np.maximum(np.minimum(hi_t, hi[idx][None, :]), a)
            ramp = ramp_of(event, release)[idx][None, :]
            held = (begin[e, idx][None, :], stop[e, idx][None, :], ramp, release[idx][None, :])
            weights[e][:, idx] += (_held_s(b, *held) - _held_s(a, *held)) / interval_s
    return tuple(events), np.clip(weights, 0.0, 1.0)
