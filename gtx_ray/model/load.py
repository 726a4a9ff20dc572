"""Electrical load per building type, driven by occupancy and outdoor temperature.

In Bangkok air conditioning dominates campus electricity (roughly half to two thirds of a university
building's use), so a building's demand is modelled as

    load = capacity · scale · [base + (1 − base) · occupancy · ((1 − ac) + ac · cooling(T))] · noise

where ``occupancy`` (0–1) comes from an hourly profile for workdays and for weekends/holidays,
scaled by the academic term (dormitories have a profile of their own for breaks and the summer
session: most residents stay, and spend the day at home instead of in class); ``cooling(T)``
grows linearly from 0 at the balance temperature to 1 at the design temperature (degree-hour
method); ``noise`` is per-meter, log-normal and correlated in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gtx_ray.model.calendar import BREAK, SUMMER, CalendarDays
from gtx_ray.model.noise import hash_keys, smooth_noise, uniform

BALANCE_TEMP_C = 24.0  # outdoor temperature below which campus buildings need no cooling, °C
DESIGN_TEMP_C = 34.0  # outdoor temperature at which cooling reaches its design share, °C

_STREAM_SLOW, _STREAM_FAST, _STREAM_SCALE = 201, 202, 203


@dataclass(frozen=True)
class BuildingProfile:
    """Load shape of one building type.

    workday / non_workday: 24 hourly occupancy levels (0–1, local time, value at the hour's start);
    term_factor: occupancy multiplier for (break, semester, exam, summer);
    base: share of capacity drawn at zero occupancy (servers, fridges, corridors, security);
    ac_share: share of the occupancy-driven load that is cooling at the design temperature;
    night_lighting: adds lighting load between 18:30 and 06:00 (parking structures);
    off_term_day: hourly occupancy of every day outside semester and exams (breaks and the summer
        session), for buildings people live in: who stays has no classes to go to and spends the
        day at home, weekday or not. None: the workday / non-workday profiles all year.
    """

    workday: tuple[float, ...]
    non_workday: tuple[float, ...]
    term_factor: tuple[float, float, float, float]
    base: float
    ac_share: float
    power_factor: float
    night_lighting: bool = False
    off_term_day: tuple[float, ...] | None = None


def _hours(*points: tuple[int, float]) -> tuple[float, ...]:
    """Expand (hour, level) breakpoints into 24 hourly levels by linear interpolation."""
    hours, levels = zip(*points, strict=True)
    return tuple(np.interp(np.arange(24), hours, levels).round(3))


_CLASS_DAY = _hours(
    (0, 0.02),
    (6, 0.03),
    (7, 0.25),
    (8, 0.75),
    (10, 0.95),
    (12, 0.85),
    (13, 0.95),
    (16, 0.9),
    (17, 0.6),
    (19, 0.25),
    (21, 0.08),
    (23, 0.02),
)
_OFFICE_DAY = _hours(
    (0, 0.02),
    (6, 0.03),
    (7, 0.3),
    (8, 0.85),
    (12, 0.75),
    (13, 0.9),
    (16, 0.85),
    (17, 0.45),
    (18, 0.15),
    (20, 0.04),
    (23, 0.02),
)
_QUIET_DAY = _hours((0, 0.02), (8, 0.03), (9, 0.12), (15, 0.12), (16, 0.04), (23, 0.02))

# term_factor order follows calendar.TERM_KINDS: (break, semester, exam, summer)
BUILDING_PROFILES: dict[str, BuildingProfile] = {
    "academic": BuildingProfile(_CLASS_DAY, _QUIET_DAY, (0.35, 1.0, 0.8, 0.55), 0.10, 0.65, 0.90),
    "office": BuildingProfile(_OFFICE_DAY, _QUIET_DAY, (0.8, 1.0, 1.0, 0.9), 0.10, 0.60, 0.92),
    "library": BuildingProfile(
        _hours(
            (0, 0.03),
            (7, 0.05),
            (8, 0.55),
            (10, 0.85),
            (14, 0.95),
            (18, 0.85),
            (20, 0.7),
            (21, 0.3),
            (22, 0.05),
            (23, 0.03),
        ),
        _hours((0, 0.03), (9, 0.05), (10, 0.45), (16, 0.45), (17, 0.1), (18, 0.03), (23, 0.03)),
        (0.4, 1.0, 1.3, 0.6),
        0.12,
        0.65,
        0.93,
    ),
    "dormitory": BuildingProfile(
        _hours(
            (0, 0.8),
            (2, 0.7),
            (6, 0.55),
            (8, 0.35),
            (10, 0.2),
            (16, 0.25),
            (18, 0.55),
            (20, 0.85),
            (22, 1.0),
            (23, 0.95),
        ),
        _hours(
            (0, 0.85),
            (3, 0.7),
            (8, 0.5),
            (10, 0.45),
            (16, 0.45),
            (18, 0.6),
            (20, 0.85),
            (22, 1.0),
            (23, 0.95),
        ),
        # Outside term most residents stay (international students, summer-session students, jobs
        # in town): three quarters in breaks, four fifths in the summer session, home by day. The
        # building holds or rises, as Thai campus studies report (Chulalongkorn: residences rose
        # when teaching stopped; AIT: dormitories +47 % in a term break, school buildings −17 %).
        (0.75, 1.0, 1.05, 0.8),
        0.08,
        0.70,
        0.88,
        off_term_day=_hours(
            (0, 0.85),
            (3, 0.7),
            (8, 0.55),
            (10, 0.55),
            (13, 0.6),
            (16, 0.6),
            (18, 0.7),
            (20, 0.9),
            (22, 1.0),
            (23, 0.95),
        ),
    ),
    "cafeteria": BuildingProfile(
        _hours(
            (0, 0.02),
            (5, 0.03),
            (6, 0.35),
            (7, 0.7),
            (8, 0.5),
            (10, 0.6),
            (11, 0.9),
            (12, 1.0),
            (13, 0.75),
            (14, 0.4),
            (16, 0.45),
            (17, 0.8),
            (18, 0.85),
            (19, 0.5),
            (20, 0.15),
            (21, 0.03),
            (23, 0.02),
        ),
        _hours(
            (0, 0.02),
            (6, 0.03),
            (7, 0.2),
            (11, 0.4),
            (12, 0.45),
            (13, 0.3),
            (17, 0.35),
            (18, 0.3),
            (19, 0.1),
            (20, 0.03),
            (23, 0.02),
        ),
        (0.35, 1.0, 0.9, 0.55),
        0.12,
        0.45,
        0.86,
    ),
    "gymnasium": BuildingProfile(
        _hours(
            (0, 0.02),
            (6, 0.03),
            (7, 0.15),
            (9, 0.3),
            (12, 0.35),
            (15, 0.45),
            (16, 0.75),
            (18, 1.0),
            (20, 0.9),
            (21, 0.4),
            (22, 0.05),
            (23, 0.02),
        ),
        _hours(
            (0, 0.02),
            (7, 0.03),
            (8, 0.3),
            (10, 0.55),
            (16, 0.7),
            (18, 0.75),
            (20, 0.5),
            (21, 0.1),
            (22, 0.02),
            (23, 0.02),
        ),
        (0.5, 1.0, 0.7, 0.6),
        0.06,
        0.60,
        0.90,
    ),
    "research": BuildingProfile(
        _hours((0, 0.75), (7, 0.78), (9, 0.95), (17, 0.95), (19, 0.82), (23, 0.75)),
        _hours((0, 0.75), (9, 0.8), (17, 0.8), (19, 0.75), (23, 0.75)),
        (0.95, 1.0, 1.0, 0.97),
        0.45,
        0.35,
        0.94,
    ),
    "parking": BuildingProfile(
        _hours(
            (0, 0.1), (6, 0.15), (7, 0.35), (9, 0.25), (16, 0.3), (17, 0.45), (19, 0.3), (23, 0.1)
        ),
        _hours((0, 0.1), (8, 0.15), (17, 0.15), (23, 0.1)),
        (0.7, 1.0, 1.0, 0.8),
        0.10,
        0.0,
        0.95,
        night_lighting=True,
    ),
    "maintenance": BuildingProfile(
        _hours(
            (0, 0.02),
            (6, 0.05),
            (7, 0.6),
            (8, 1.0),
            (12, 0.7),
            (13, 1.0),
            (16, 0.9),
            (17, 0.2),
            (18, 0.04),
            (23, 0.02),
        ),
        _hours((0, 0.02), (8, 0.05), (9, 0.15), (15, 0.15), (16, 0.03), (23, 0.02)),
        (0.9, 1.0, 1.0, 0.9),
        0.08,
        0.30,
        0.82,
    ),
}
BUILDING_TYPES: tuple[str, ...] = tuple(BUILDING_PROFILES)

# Peak demand ("capacity") is rarely reached: the typical daily peak of a meter in its busiest
# season sits at about 85 % of it.
PEAK_TO_CAPACITY = 0.85


def cooling_factor(temperature_c: np.ndarray) -> np.ndarray:
    """Cooling demand relative to design: 0 at BALANCE_TEMP_C, 1 at DESIGN_TEMP_C, up to 1.3."""
    return np.clip((temperature_c - BALANCE_TEMP_C) / (DESIGN_TEMP_C - BALANCE_TEMP_C), 0.0, 1.3)


def type_occupancy(days: CalendarDays) -> np.ndarray:
    """Occupancy of every building type at every time: shape (T, len(BUILDING_TYPES))."""
    hour = days.local_hour
    h0 = np.floor(hour).astype(np.intp) % 24
    h1 = (h0 + 1) % 24
    frac = hour - np.floor(hour)
    off_term = (days.term == BREAK) | (days.term == SUMMER)

    def at_hour(levels: tuple[float, ...]) -> np.ndarray:
        values = np.asarray(levels)
        return values[h0] * (1 - frac) + values[h1] * frac

    rows = []
    for profile in BUILDING_PROFILES.values():
        shape = np.where(days.is_workday, at_hour(profile.workday), at_hour(profile.non_workday))
        if profile.off_term_day is not None:
            shape = np.where(off_term, at_hour(profile.off_term_day), shape)
        rows.append(shape * np.asarray(profile.term_factor)[days.term])
    return np.clip(np.column_stack(rows), 0.0, 1.0)


def type_constants(name: str) -> np.ndarray:
    """One constant per building type, in BUILDING_TYPES order (e.g. ``"base"``)."""
    return np.array([getattr(p, name) for p in BUILDING_PROFILES.values()], dtype=np.float64)


def meter_load_kw(
    seed: int,
    meter_keys: np.ndarray,
    building_type: np.ndarray,
    capacity_kw: np.ndarray,
    times_s: np.ndarray,
    days: CalendarDays,
    temperature_c: np.ndarray,
) -> np.ndarray:
    """Average demand of each meter over each interval, kW, shape (T, M).

    ``building_type`` holds indices into BUILDING_TYPES; ``times_s`` are interval mid-points.
    """
    occupancy = type_occupancy(days)[:, building_type]  # (T, M)
    base = type_constants("base")[building_type][None, :]
    ac = type_constants("ac_share")[building_type][None, :]
    cooling = cooling_factor(temperature_c)[:, None]
    share = base + (1.0 - base) * occupancy * ((1.0 - ac) + ac * cooling)

    lighting = np.array([p.night_lighting for p in BUILDING_PROFILES.values()])[building_type]
    if lighting.any():
        dark = ((days.local_hour >= 18.5) | (days.local_hour < 6.0)).astype(np.float64)
        share = share + 0.45 * lighting[None, :] * dark[:, None]

    keys = hash_keys(seed, meter_keys)
    scale = 0.9 + 0.2 * uniform(keys, _STREAM_SCALE)  # building-to-building spread, ±10 %
    noise = np.exp(
        0.07 * smooth_noise(hash_keys(keys, _STREAM_SLOW), times_s, 6 * 3600)
        + 0.035 * smooth_noise(hash_keys(keys, _STREAM_FAST), times_s, 3600)
    )
    load = (capacity_kw * PEAK_TO_CAPACITY * scale)[None, :] * share * noise
    return np.minimum(load, capacity_kw[None, :])
