"""The campus configuration and generated fleets.

``load_campus(path)`` reads and validates ``config/utcc_campus_config.json`` (pydantic): a malformed
or inconsistent file raises ``ConfigError`` naming the file, the meter and the field.
``generate_fleet(campus, n, seed)`` draws N meters with the campus's 35/45/20 type mix, building
types, capacities and PV/battery sizing ratios. ``Fleet.arrays()`` turns either into the numpy
columns the model steps.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gtx_ray.errors import ConfigError
from gtx_ray.model.battery import DispatchPolicy
from gtx_ray.model.calendar import TERM_KINDS, TermPeriod
from gtx_ray.model.load import BUILDING_TYPES
from gtx_ray.model.noise import stable_key
from gtx_ray.model.solar import PVSystem, Site
from gtx_ray.model.tariff import ALWAYS_S, TimeOfUseTariff
from gtx_ray.model.weather import Climate

METER_TYPES = ("consumer", "prosumer", "hybrid_prosumer")
CONSUMER, PROSUMER, HYBRID = range(3)
TYPE_MIX = {"consumer": 0.35, "prosumer": 0.45, "hybrid_prosumer": 0.20}

Monthly = list[float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatterySpec(_Strict):
    capacity_kwh: float = Field(gt=0, description="usable energy, kWh")
    power_kw: float = Field(gt=0, description="charge and discharge limit, kW")
    round_trip_efficiency: float = Field(gt=0.5, le=1.0, description="AC to AC, 0–1")


class MeterSpec(_Strict):
    meter_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    building: str = Field(min_length=1, max_length=128)
    floor: int = Field(ge=0, le=200)
    capacity_kw: float = Field(gt=0, description="peak demand, kW")
    phases: Literal[1, 3]
    building_type: Literal[BUILDING_TYPES]  # type: ignore[valid-type]
    meter_type: Literal[METER_TYPES]  # type: ignore[valid-type]
    pv_kwp: float | None = Field(default=None, gt=0, description="PV array DC size, kWp")
    inverter_kw: float | None = Field(default=None, gt=0, description="PV inverter AC limit, kW")
    battery: BatterySpec | None = None

    @model_validator(mode="after")
    def _equipment_matches_type(self) -> MeterSpec:
        has_pv = self.pv_kwp is not None
        if self.meter_type == "consumer" and (has_pv or self.battery is not None):
            raise ValueError("a consumer meter has no pv_kwp and no battery")
        if self.meter_type != "consumer" and not has_pv:
            raise ValueError(f"a {self.meter_type} meter needs pv_kwp")
        if self.meter_type == "prosumer" and self.battery is not None:
            raise ValueError("a prosumer meter has no battery (use hybrid_prosumer)")
        if self.meter_type == "hybrid_prosumer" and self.battery is None:
            raise ValueError("a hybrid_prosumer meter needs a battery")
        if (self.inverter_kw is None) != (self.pv_kwp is None):
            raise ValueError("pv_kwp and inverter_kw go together")
        return self


class SiteSpec(_Strict):
    name: str
    full_name: str = ""
    timezone: str = "Asia/Bangkok"
    utc_offset_s: int = Field(ge=-14 * 3600, le=14 * 3600, description="fixed UTC offset, s")
    latitude_deg: float = Field(ge=-90, le=90)
    longitude_deg: float = Field(ge=-180, le=180)
    altitude_m: float = Field(ge=-500, le=9000)
    holiday_country: str = "TH"


class ClimateSpec(_Strict):
    source: str = ""
    mean_temp_c: Monthly = Field(min_length=12, max_length=12)
    diurnal_range_c: Monthly = Field(min_length=12, max_length=12)
    humidity_pct: Monthly = Field(min_length=12, max_length=12)
    cloud_fraction: Monthly = Field(min_length=12, max_length=12)
    afternoon_convection: Monthly = Field(min_length=12, max_length=12)


class SolarSpec(_Strict):
    linke_turbidity: Monthly = Field(min_length=12, max_length=12)
    tilt_deg: float = Field(default=10.0, ge=0, le=90)
    azimuth_deg: float = Field(default=180.0, ge=0, lt=360)
    gamma_pdc_per_c: float = Field(default=-0.0037, ge=-0.01, le=0)
    system_loss: float = Field(default=0.14, ge=0, lt=1)
    inverter_efficiency: float = Field(default=0.96, gt=0, le=1)


class TariffSpec(_Strict):
    on_peak_start_hour: float = Field(default=9.0, ge=0, le=24)
    on_peak_end_hour: float = Field(default=22.0, ge=0, le=24)
    on_peak_thb_per_kwh: float = Field(default=4.18, ge=0)
    off_peak_thb_per_kwh: float = Field(default=2.60, ge=0)
    ft_thb_per_kwh: float = Field(default=0.39)
    export_thb_per_kwh: float = Field(
        default=2.2, ge=0, description="credit per exported kWh (Thai rooftop PV net billing)"
    )
    demand_charge_thb_per_kw: float = Field(default=132.93, ge=0)

    @model_validator(mode="after")
    def _ordered_hours(self) -> TariffSpec:
        if self.on_peak_start_hour > self.on_peak_end_hour:
            raise ValueError("on_peak_start_hour must not be after on_peak_end_hour")
        return self


class BatteryPolicySpec(_Strict):
    reserve_pct: float = Field(default=10.0, ge=0, le=100)
    max_soc_pct: float = Field(default=100.0, gt=0, le=100)
    grid_charge_off_peak: bool = True
    grid_charge_target_pct: float = Field(default=90.0, ge=0, le=100)


class TermSpec(_Strict):
    kind: Literal["semester", "exam", "summer", "break"]
    start: str = Field(pattern=r"^\d\d-\d\d$", description="MM-DD, inclusive")
    end: str = Field(pattern=r"^\d\d-\d\d$", description="MM-DD, inclusive")

    @field_validator("start", "end")
    @classmethod
    def _real_day(cls, value: str) -> str:
        month, day = (int(x) for x in value.split("-"))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            raise ValueError(f"{value!r} is not a month-day")
        return value


class CampusConfig(_Strict):
    notes: list[str] = []
    site: SiteSpec
    climate: ClimateSpec
    solar: SolarSpec
    tariff: TariffSpec = TariffSpec()
    battery_policy: BatteryPolicySpec = BatteryPolicySpec()
    academic_calendar: list[TermSpec]
    meters: list[MeterSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> CampusConfig:
        seen = Counter(m.meter_id for m in self.meters)
        twice = sorted(k for k, v in seen.items() if v > 1)
        if twice:
            raise ValueError(f"meter_id appears more than once: {', '.join(twice)}")
        return self

    # Conversions to the model's plain parameter objects.
    def model_site(self) -> Site:
        return Site(
            self.site.latitude_deg,
            self.site.longitude_deg,
            self.site.altitude_m,
            tuple(self.solar.linke_turbidity),
        )

    def model_climate(self) -> Climate:
        c = self.climate
        return Climate(
            tuple(c.mean_temp_c),
            tuple(c.diurnal_range_c),
            tuple(c.humidity_pct),
            tuple(c.cloud_fraction),
            tuple(c.afternoon_convection),
        )

    def model_pv(self) -> PVSystem:
        s = self.solar
        return PVSystem(
            s.tilt_deg, s.azimuth_deg, s.gamma_pdc_per_c, s.system_loss, s.inverter_efficiency
        )

    def model_policy(self) -> DispatchPolicy:
        return DispatchPolicy(**self.battery_policy.model_dump())

    def model_tariff(self) -> TimeOfUseTariff:
        """The configured tariff, in force from the beginning of time."""
        t = self.tariff
        return TimeOfUseTariff(
            effective_from_s=ALWAYS_S,
            on_peak_start_hour=t.on_peak_start_hour,
            on_peak_end_hour=t.on_peak_end_hour,
            on_peak_thb_per_kwh=t.on_peak_thb_per_kwh,
            off_peak_thb_per_kwh=t.off_peak_thb_per_kwh,
            ft_thb_per_kwh=t.ft_thb_per_kwh,
            export_thb_per_kwh=t.export_thb_per_kwh,
            name="configured",
        )

    def model_terms(self) -> tuple[TermPeriod, ...]:
        def code(mmdd: str) -> int:
            month, day = mmdd.split("-")
            return int(month) * 100 + int(day)

        return tuple(
            TermPeriod(TERM_KINDS.index(t.kind), code(t.start), code(t.end))
            for t in self.academic_calendar
        )


def _describe(path: Path, raw: object, error: dict) -> str:
    loc = list(error["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    if len(loc) >= 2 and loc[0] == "meters" and isinstance(loc[1], int):
        try:
            meter_id = raw["meters"][loc[1]].get("meter_id", "?")  # type: ignore[index]
        except (KeyError, IndexError, TypeError, AttributeError):
            meter_id = "?"
        field = ".".join(str(p) for p in loc[2:]) or "(meter)"
        where = f"meter {meter_id} (meters[{loc[1]}]) field {field}"
    return f"{path}: {where}: {error['msg']}"


def load_campus(path: str | Path) -> CampusConfig:
    """Read and validate a campus configuration file; raise ConfigError naming what is wrong."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    try:
        return CampusConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ConfigError(_describe(path, raw, first) + more) from None


@dataclass(frozen=True)
class MeterArrays:
    """A group of meters as columns (length M), the form the model steps.

    pv_kwp, inverter_kw, battery_kwh, battery_kw are 0 where the meter has no such equipment.
    """

    meter_id: np.ndarray  # str
    building: np.ndarray  # str
    floor: np.ndarray  # int32
    meter_type: np.ndarray  # int8 index into METER_TYPES
    building_type: np.ndarray  # int8 index into BUILDING_TYPES
    phases: np.ndarray  # int8, 1 or 3
    capacity_kw: np.ndarray
    pv_kwp: np.ndarray
    inverter_kw: np.ndarray
    battery_kwh: np.ndarray
    battery_kw: np.ndarray
    battery_efficiency: np.ndarray
    key: np.ndarray  # uint64 stable hash of meter_id: the meter's random stream

    def __len__(self) -> int:
        return len(self.meter_id)

    def take(self, index: np.ndarray | slice) -> MeterArrays:
        """A sub-group (e.g. the meters one actor steps)."""
        return MeterArrays(**{k: v[index] for k, v in self.__dict__.items()})

    def without_batteries(self) -> MeterArrays:
        """The same meters with every battery removed (capacity 0 kWh, power 0 kW, efficiency 1),
        e.g. to price a campus without storage. Ids, keys and meter types are kept, so the load,
        PV and demand-response targeting of every meter stay exactly as they were."""
        return replace(
            self,
            battery_kwh=np.zeros_like(self.battery_kwh),
            battery_kw=np.zeros_like(self.battery_kw),
            battery_efficiency=np.ones_like(self.battery_efficiency),
        )

    @staticmethod
    def from_specs(meters: list[MeterSpec]) -> MeterArrays:
        def col(get, dtype=np.float64) -> np.ndarray:
            return np.array([get(m) for m in meters], dtype=dtype)

        return MeterArrays(
            meter_id=col(lambda m: m.meter_id, object),
            building=col(lambda m: m.building, object),
            floor=col(lambda m: m.floor, np.int32),
            meter_type=col(lambda m: METER_TYPES.index(m.meter_type), np.int8),
            building_type=col(lambda m: BUILDING_TYPES.index(m.building_type), np.int8),
            phases=col(lambda m: m.phases, np.int8),
            capacity_kw=col(lambda m: m.capacity_kw),
            pv_kwp=col(lambda m: m.pv_kwp or 0.0),
            inverter_kw=col(lambda m: m.inverter_kw or 0.0),
            battery_kwh=col(lambda m: m.battery.capacity_kwh if m.battery else 0.0),
            battery_kw=col(lambda m: m.battery.power_kw if m.battery else 0.0),
            battery_efficiency=col(lambda m: m.battery.round_trip_efficiency if m.battery else 1.0),
            key=col(lambda m: stable_key(m.meter_id), np.uint64),
        )


def type_counts(n: int) -> dict[str, int]:
    """How many meters of each type a fleet of n gets: 35 % consumers, 20 % hybrids, the rest
    prosumers (25 → 9 / 11 / 5)."""
    consumers = int(np.floor(n * TYPE_MIX["consumer"] + 0.5))
    hybrids = int(np.floor(n * TYPE_MIX["hybrid_prosumer"] + 0.5))
    return {"consumer": consumers, "prosumer": n - consumers - hybrids, "hybrid_prosumer": hybrids}


_TYPE_LABEL = {
    "academic": "Academic",
    "office": "Office",
    "library": "Library",
    "dormitory": "Dormitory",
    "cafeteria": "Cafeteria",
    "gymnasium": "Gymnasium",
    "research": "Research",
    "parking": "Parking",
    "maintenance": "Maintenance",
}


def generate_fleet(campus: CampusConfig, n: int, seed: int) -> MeterArrays:
    """N generated meters with deterministic ids ``AMI_METER_SIM_000001`` …, drawn from the campus.

    Building types follow the campus's meter counts per type; capacities are a campus capacity of
    the same type with ±15 % log-normal spread (rounded to 5 kW); phases follow the campus share of
    three-phase meters; PV and battery sizes keep the campus's kWp/kW, kWh/kWp and kW/kWh ratios.
    Meters are grouped into buildings of 1–3 floors. Same (campus, n, seed) → same fleet.
    """
    if n < 1:
        raise ConfigError(f"fleet size must be at least 1 meter, got {n}")
    rng = np.random.default_rng([seed, 0x5EED_F1EE7])
    counts = type_counts(n)
    meter_type = rng.permutation(np.repeat(np.arange(3, dtype=np.int8), list(counts.values())))

    specs = campus.meters
    campus_types = np.array([BUILDING_TYPES.index(m.building_type) for m in specs])
    campus_capacity = np.array([m.capacity_kw for m in specs])

    # Buildings of 1–3 floors (one meter per floor), each with a building type drawn with the
    # campus's meter counts per type as weights.
    floors_per_building = rng.integers(1, 4, size=n)  # over-long; cut where n meters are placed
    building_of_meter = np.repeat(np.arange(n), floors_per_building)[:n]
    starts = np.r_[0, np.flatnonzero(np.diff(building_of_meter)) + 1]
    sizes = np.diff(np.r_[starts, n])
    floor = np.arange(n) - np.repeat(starts, sizes) + 1
    first_type = campus_types[rng.integers(0, len(specs), size=len(starts))]
    building_type = np.repeat(first_type, sizes).astype(np.int8)
    names = np.array(
        [
            f"{_TYPE_LABEL[BUILDING_TYPES[t]]} Building {i + 1:05d}"
            for i, t in enumerate(first_type)
        ],
        dtype=object,
    )
    building = np.repeat(names, sizes)

    # Capacity: a campus meter of the same building type, with ±15 % log-normal spread.
    capacity = np.empty(n)
    for t in np.unique(building_type):
        mine = np.flatnonzero(building_type == t)
        pool = campus_capacity[campus_types == t]
        capacity[mine] = pool[rng.integers(0, len(pool), size=len(mine))]
    capacity = np.maximum(5.0, np.round(capacity * rng.lognormal(0.0, 0.15, n) / 5.0) * 5.0)
    three_share = np.mean([m.phases == 3 for m in specs])
    phases = np.where(rng.random(n) < three_share, 3, 1).astype(np.int8)

    solar = [m for m in specs if m.pv_kwp]
    pv_ratio = np.array([m.pv_kwp / m.capacity_kw for m in solar])
    dc_ac = np.array([m.pv_kwp / m.inverter_kw for m in solar])
    hybrids = [m for m in specs if m.battery]
    kwh_per_kwp = np.array([m.battery.capacity_kwh / m.pv_kwp for m in hybrids])
    c_rate = np.array([m.battery.power_kw / m.battery.capacity_kwh for m in hybrids])
    efficiency = np.array([m.battery.round_trip_efficiency for m in hybrids])
    if not len(solar) or not len(hybrids):
        raise ConfigError("the campus needs at least one solar and one battery meter to draw from")

    has_pv = meter_type != CONSUMER
    has_battery = meter_type == HYBRID
    s = rng.integers(0, len(solar), n)
    pv_kwp = np.where(has_pv, np.round(capacity * pv_ratio[s], 1), 0.0)
    inverter_kw = np.where(has_pv, np.round(pv_kwp / dc_ac[s], 1), 0.0)
    b = rng.integers(0, len(hybrids), n)
    battery_kwh = np.where(has_battery, np.round(pv_kwp * kwh_per_kwp[b]), 0.0)
    battery_kw = np.where(has_battery, np.round(battery_kwh * c_rate[b], 1), 0.0)

    meter_id = np.array([f"AMI_METER_SIM_{i + 1:06d}" for i in range(n)], dtype=object)
    return MeterArrays(
        meter_id=meter_id,
        building=building,
        floor=floor.astype(np.int32),
        meter_type=meter_type,
        building_type=building_type,
        phases=phases,
        capacity_kw=capacity,
        pv_kwp=pv_kwp,
        inverter_kw=inverter_kw,
        battery_kwh=battery_kwh,
        battery_kw=battery_kw,
        battery_efficiency=np.where(has_battery, efficiency[b], 1.0),
        key=np.array([stable_key(m) for m in meter_id], dtype=np.uint64),
    )
