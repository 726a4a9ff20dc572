"""Managed campus: what a demand-response event and the batteries mean for the UTCC campus, from
the meter model alone (no Ray, no storage, a pure function of seed, config and inputs).

    .venv/bin/python -m benchmarks.managed_campus [--seed 2025] [--out benchmarks/results]

1. A hot working Wednesday (2025-04-09), the 25 campus meters at 15-minute intervals stepped from
   local midnight for 24 h, once without and once with that day's weekly demand-response event of
   config/scenario_weekly_dr.json (20 % cut 14:00–15:00 local for every campus load, start
   randomised over 300 s, rebound after it).
2. March 2025 (31 days × 96 intervals, stepped in one-day windows) once as configured and once
   with every battery removed (``MeterArrays.without_batteries``).

Powers are kW (interval averages), energies kWh, money THB, times local (Asia/Bangkok, UTC+7).
Tables are printed and written to OUT/managed_campus.md with the figures OUT/managed_campus_*.png.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS_DIR, table, write_summary
from gtx_ray.fleet import CampusConfig, MeterArrays, load_campus
from gtx_ray.model.controls import LoadControl
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from gtx_ray.model.tariff import TimeOfUseTariff
from gtx_ray.scenario import load_scenario, model_inputs
from gtx_ray.settings import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "config" / "scenario_weekly_dr.json"
INTERVAL_S = 900
HOURS = INTERVAL_S / 3600.0  # interval length, h (kW × HOURS = kWh)
PER_DAY = 86_400 // INTERVAL_S
DR_DAY = date(2025, 4, 9)  # a Wednesday of the hot season, a working day in term
MONTH_START, MONTH_DAYS = date(2025, 3, 1), 31
BATTERY_DAY = date(2025, 3, 12)  # a working Wednesday of that month
BATTERY_METER = "AMI_METER_UTCC_022"  # gymnasium, the largest battery (400 kWh, 100 kW)
REBOUND_H = 3  # hours after the event counted as rebound
COLUMNS = (
    "energy_consumed",
    "shed_kw",
    "battery_power",
    "battery_level",
    "price_thb_per_kwh",
    "import_cost_thb",
    "export_credit_thb",
    "energy_import_kwh",
    "energy_export_kwh",
)


@dataclass(frozen=True)
class Run:
    """Readings of a stepped run: ``starts`` (T,) interval starts, UTC epoch s; ``meter_id`` (M,);
    ``col`` reading column → (T, M) array in the column's unit (NaN where null)."""

    starts: np.ndarray
    meter_id: np.ndarray
    col: dict[str, np.ndarray]

    def meter(self, meter_id: str) -> int:
        """Column index of a meter."""
        return int(np.flatnonzero(self.meter_id == meter_id)[0])

    def local_hours(self, day_start_s: int) -> np.ndarray:
        """Interval starts as hours since local midnight ``day_start_s`` (UTC epoch s)."""
        return (self.starts - day_start_s) / 3600.0


def local_midnight_s(day: date, campus: CampusConfig) -> int:
    """UTC epoch s of local midnight starting ``day`` at the campus."""
    return int((day - date(1970, 1, 1)).total_seconds()) - campus.site.utc_offset_s


def simulate(
    campus: CampusConfig,
    meters: MeterArrays,
    seed: int,
    start_s: int,
    days: int,
    inputs: ModelInputs,
) -> Run:
    """Step ``meters`` from ``start_s`` (UTC epoch s, local midnight) for ``days`` one-day
    windows of 15-minute intervals, batteries half full at the start."""
    model = MeterModel(meters, campus, seed=seed, interval_s=INTERVAL_S)
    state = model.initial_state(start_s)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
    for _ in range(days):
        result = model.step(state, PER_DAY, inputs=inputs)
        state = result.state
        for name in COLUMNS:
            values = result.batch.column(name).to_numpy(zero_copy_only=False)
            parts[name].append(values.reshape(PER_DAY, len(meters)))  # batches are time-major
    starts = start_s + INTERVAL_S * np.arange(days * PER_DAY, dtype=np.int64)
    return Run(starts, meters.meter_id, {k: np.vstack(v) for k, v in parts.items()})


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (PNG files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def clock(time_s: int, day_start_s: int) -> str:
    """Local wall-clock time HH:MM of ``time_s`` on the day starting at ``day_start_s`` (both
    UTC epoch s)."""
    minutes = (time_s - day_start_s) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def net_cost_thb(run: Run) -> np.ndarray:
    """Import cost − export credit per interval and meter, THB, (T, M)."""
    return run.col["import_cost_thb"] - run.col["export_credit_thb"]


# 1. A day with and without a demand-response event ---------------------------------------------


def scenario_event(day_start_s: int, tariff: TimeOfUseTariff) -> LoadControl:
    """The demand-response event of config/scenario_weekly_dr.json that starts on the local day
    beginning at ``day_start_s`` (UTC epoch s); with its scenario mRID, so it sheds exactly as in a
    ``--scenario`` run of the simulator."""
    controls = model_inputs(load_scenario(SCENARIO), tariff).load_controls
    today = [c for c in controls if day_start_s <= c.start_s < day_start_s + 86_400]
    if len(today) != 1:
        raise SystemExit(f"expected one scenario event on the DR day, found {len(today)}")
    return today[0]


def dr_rows(base: Run, event_run: Run, event: LoadControl, day_start_s: int) -> list[list]:
    """Table rows: peak in the event hour, energy shed, rebound, net change, day's cost."""
    campus_kw = base.col["energy_consumed"].sum(axis=1), event_run.col["energy_consumed"].sum(1)
    end_s = event.start_s + event.duration_s
    in_event = (base.starts >= event.start_s) & (base.starts < end_s)
    after = (base.starts >= end_s) & (base.starts < end_s + REBOUND_H * 3600)
    shed = event_run.col["shed_kw"].sum(axis=1)  # kW
    # Demand with the event = model demand − shed + rebound, and the model demand is the base run.
    rebound = campus_kw[1] - campus_kw[0] + shed
    cost = [net_cost_thb(r).sum() for r in (base, event_run)]
    net_kwh = (campus_kw[1] - campus_kw[0]).sum() * HOURS
    without, with_ = ("without event", "with event")
    hour = f"{clock(event.start_s, day_start_s)}–{clock(end_s, day_start_s)}"
    return [
        [f"peak demand {hour} (kW)", f"{campus_kw[0][in_event].max():,.0f}", without],
        ["", f"{campus_kw[1][in_event].max():,.0f}", with_],
        ["peak demand of the day (kW)", f"{campus_kw[0].max():,.0f}", without],
        ["", f"{campus_kw[1].max():,.0f}", with_],
        ["energy shed (kWh)", f"{shed.sum() * HOURS:,.0f}", "whole day"],
        ["rebound energy (kWh)", f"{rebound[after].sum() * HOURS:,.0f}", f"{REBOUND_H} h after"],
        ["net change of consumption (kWh)", f"{net_kwh:+,.0f}", "whole day"],
        ["campus cost of the day (THB)", f"{cost[0]:,.0f}", without],
        ["", f"{cost[1]:,.0f}", with_],
        ["change in cost (THB)", f"{cost[1] - cost[0]:+,.0f}", "with − without"],
    ]


def plot_dr_day(base: Run, event_run: Run, event: LoadControl, day_start_s: int, path: Path):
    """Campus demand without / with the event, and their difference (shed, then rebound)."""
    plt = pyplot()
    hours = base.local_hours(day_start_s) + HOURS / 2  # plotted at interval mid-points
    campus_kw = base.col["energy_consumed"].sum(axis=1), event_run.col["energy_consumed"].sum(1)
    begin_h = (event.start_s - day_start_s) / 3600.0
    end_h = begin_h + event.duration_s / 3600.0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    top.plot(hours, campus_kw[0], color="#777777", label="no event")
    top.plot(hours, campus_kw[1], color="#d8463b", label=f"{event.reduce_pct:.0f} % DR event")
    top.set_ylabel("campus demand (kW)")
    top.set_title(f"UTCC campus, 25 meters, {DR_DAY:%A %d %B %Y}")
    bottom.bar(hours, campus_kw[1] - campus_kw[0], width=HOURS * 0.9, color="#d8463b")
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.set_ylabel("with − without (kW)")
    bottom.set_xlabel("local time (h)")
    bottom.set_xticks(range(0, 25, 3))
    for ax in (top, bottom):
        ax.axvspan(begin_h, end_h, color="#f2c14e", alpha=0.35, label="event")
        ax.axvspan(end_h, end_h + REBOUND_H, color="#7fb3e6", alpha=0.2, label="rebound window")
        ax.set_xlim(0, 24)
    top.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# 2. A month with and without batteries ----------------------------------------------------------


def hybrid_ids(meters: MeterArrays) -> list[str]:
    """Ids of the meters with a battery."""
    return [str(m) for m in meters.meter_id[meters.battery_kwh > 0]]


def groups(run: Run, ids: list[str]) -> list[tuple[str, list[int] | slice]]:
    """(label, meter columns) for each meter of ``ids`` and for the whole campus."""
    return [(i, [run.meter(i)]) for i in ids] + [(f"campus ({len(run.meter_id)})", slice(None))]


def cost_rows(with_b: Run, without_b: Run, ids: list[str]) -> list[list[object]]:
    """Per hybrid meter and campus total: import cost, export credit, net cost with / without
    batteries (THB) and the saving (THB, % of the cost without)."""
    rows = []
    for label, index in groups(with_b, ids):
        imp, exp = (
            [r.col[name][:, index].sum() for r in (with_b, without_b)]
            for name in ("import_cost_thb", "export_credit_thb")
        )
        net = [imp[0] - exp[0], imp[1] - exp[1]]
        saving = net[1] - net[0]
        thb = [f"{v:,.0f}" for v in (*imp, *exp, *net)]
        rows.append([label, *thb, f"{saving:+,.0f}", f"{saving / net[1]:+.1%}"])
    return rows


def import_rows(with_b: Run, without_b: Run, ids: list[str], on_peak_thb: float) -> list[list]:
    """Per hybrid meter and campus total: on-peak, off-peak and total import (kWh) with / without
    batteries. An interval is on-peak when its import price is the tariff's on-peak price."""
    on_peak = np.isclose(with_b.col["price_thb_per_kwh"][:, 0], on_peak_thb)  # same in both runs
    rows = []
    for label, index in groups(with_b, ids):
        kwh = [r.col["energy_import_kwh"][:, index] for r in (with_b, without_b)]
        on = [k[on_peak].sum() for k in kwh]
        off = [k[~on_peak].sum() for k in kwh]
        rows.append([label, *(f"{v:,.0f}" for v in (*on, *off, on[0] + off[0], on[1] + off[1]))])
    return rows


def stored_kwh(run: Run, meters: MeterArrays, interval: int) -> float:
    """Energy stored in all batteries at the end of ``interval``, kWh."""
    has = meters.battery_kwh > 0
    return float((run.col["battery_level"][interval, has] / 100.0 * meters.battery_kwh[has]).sum())


def plot_month(with_b: Run, without_b: Run, path: Path) -> None:
    """Daily campus net cost with and without batteries, and the daily saving."""
    plt = pyplot()
    daily = [
        net_cost_thb(r).sum(axis=1).reshape(-1, PER_DAY).sum(axis=1) for r in (with_b, without_b)
    ]
    days = np.arange(1, len(daily[0]) + 1)
    weekend = [(MONTH_START + timedelta(days=int(d) - 1)).weekday() >= 5 for d in days]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    top.plot(days, daily[1] / 1e3, "o-", color="#777777", markersize=3, label="no batteries")
    top.plot(days, daily[0] / 1e3, "o-", color="#2f8f5b", markersize=3, label="as configured")
    top.set_ylabel("campus net cost (thousand THB/day)")
    top.set_title(f"UTCC campus, {MONTH_START:%B %Y}: import cost − export credit per day")
    top.legend(fontsize=8)
    saving = daily[1] - daily[0]
    bottom.bar(days, saving, color=np.where(saving >= 0, "#2f8f5b", "#d8463b"))
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.set_ylabel("battery saving (THB/day)")
    bottom.set_xlabel(f"day of {MONTH_START:%B} (weekends shaded)")
    for ax in (top, bottom):
        for d, is_weekend in zip(days, weekend, strict=True):
            if is_weekend:
                ax.axvspan(d - 0.5, d + 0.5, color="#dddddd", alpha=0.6, linewidth=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_battery_day(run: Run, meter_id: str, day_start_s: int, path: Path) -> None:
    """One day's battery power (kW, + charging) and state of charge of one meter, with the
    import price in force."""
    plt = pyplot()
    rows = (run.starts >= day_start_s) & (run.starts < day_start_s + 86_400)
    j = run.meter(meter_id)
    hours = run.local_hours(day_start_s)[rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    power = run.col["battery_power"][rows, j]
    top.bar(
        hours + HOURS / 2,
        power,
        width=HOURS * 0.9,
        color=np.where(power >= 0, "#2f8f5b", "#d8463b"),
    )
    top.axhline(0, color="black", linewidth=0.6)
    top.set_ylabel("battery power (kW)\n+ charging, − discharging")
    top.set_title(f"{meter_id}, {BATTERY_DAY:%A %d %B %Y}")
    price = top.twinx()
    tariff = run.col["price_thb_per_kwh"][rows, j]
    price.step(np.append(hours, 24.0), np.append(tariff, tariff[-1]), where="post", color="#3b7dd8")
    price.set_ylabel("import price (THB/kWh)", color="#3b7dd8")
    price.set_ylim(0, None)
    bottom.plot(hours + HOURS, run.col["battery_level"][rows, j], color="#555555")
    bottom.set_ylabel("state of charge (%)")
    bottom.set_ylim(0, 100)
    bottom.set_xlabel("local time (h)")
    bottom.set_xticks(range(0, 25, 3))
    bottom.set_xlim(0, 24)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------


def rebound_note(base: Run, event_run: Run) -> str:
    """A sentence on whether the rebound set a new campus peak for the day (kW)."""
    peaks = [r.col["energy_consumed"].sum(axis=1).max() for r in (base, event_run)]
    if peaks[1] <= peaks[0]:
        return "The rebound stays below the day's peak without the event."
    return (
        f"Note the rebound: every meter ends within 5 minutes of 15:00, so their paybacks add up "
        f"to a new campus peak for the day, {peaks[1]:,.0f} kW against {peaks[0]:,.0f} kW without "
        f"the event (+{peaks[1] - peaks[0]:,.0f} kW); a demand charge, which the readings do not "
        f"price, would bill that higher peak."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=2025, help="simulation seed")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for .md and .png")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    campus = load_campus(DEFAULT_CONFIG)
    meters = MeterArrays.from_specs(campus.meters)
    tariff = campus.model_tariff()
    plain = ModelInputs(tariffs=(tariff,))

    # 1. The DR day.
    day_s = local_midnight_s(DR_DAY, campus)
    event = scenario_event(day_s, tariff)
    base = simulate(campus, meters, args.seed, day_s, 1, plain)
    with_event = ModelInputs(load_controls=(event,), tariffs=(tariff,))
    event_run = simulate(campus, meters, args.seed, day_s, 1, with_event)
    shedding = int((event_run.col["shed_kw"].sum(axis=0) > 0).sum())
    dr_table = table(["campus, 25 meters", "value", ""], dr_rows(base, event_run, event, day_s))
    print(f"1. {DR_DAY:%A %Y-%m-%d}, {shedding} of {len(meters)} meters shed\n{dr_table}\n")
    plot_dr_day(base, event_run, event, day_s, args.out / "managed_campus_dr_day.png")

    # 2. The month with and without batteries.
    month_s = local_midnight_s(MONTH_START, campus)
    with_b = simulate(campus, meters, args.seed, month_s, MONTH_DAYS, plain)
    without_b = simulate(campus, meters.without_batteries(), args.seed, month_s, MONTH_DAYS, plain)
    ids = hybrid_ids(meters)
    cost_headers = ["meter", "import with", "import w/o", "export with", "export w/o"]
    cost_headers += ["net with", "net w/o", "saving", "saving %"]
    cost_table = table(cost_headers, cost_rows(with_b, without_b, ids))
    import_headers = ["meter", "on-peak with", "on-peak w/o", "off-peak with", "off-peak w/o"]
    import_headers += ["total with", "total w/o"]
    on_peak_thb = tariff.on_peak_thb_per_kwh + tariff.ft_thb_per_kwh
    import_table = table(import_headers, import_rows(with_b, without_b, ids, on_peak_thb))
    start_kwh, end_kwh = 0.5 * meters.battery_kwh.sum(), stored_kwh(with_b, meters, -1)
    print(f"2. {MONTH_START:%B %Y}, cost (THB)\n{cost_table}\n\nimport (kWh)\n{import_table}\n")
    print(f"batteries: {start_kwh:,.0f} kWh stored at the start, {end_kwh:,.0f} kWh at the end")
    plot_month(with_b, without_b, args.out / "managed_campus_month.png")
    battery_day_s = local_midnight_s(BATTERY_DAY, campus)
    battery_png = args.out / "managed_campus_battery_day.png"
    plot_battery_day(with_b, BATTERY_METER, battery_day_s, battery_png)

    off_peak_thb = tariff.off_peak_thb_per_kwh + tariff.ft_thb_per_kwh
    intro = INTRO.format(
        seed=args.seed,
        on_peak=on_peak_thb,
        off_peak=off_peak_thb,
        ft=tariff.ft_thb_per_kwh,
        peak_hours=f"{tariff.on_peak_start_hour:02.0f}:00–{tariff.on_peak_end_hour:02.0f}:00",
        export=tariff.export_thb_per_kwh,
        demand_charge=campus.tariff.demand_charge_thb_per_kw,
        shedding=shedding,
        rebound_h=REBOUND_H,
        rebound_note=rebound_note(base, event_run),
        hybrids=len(ids),
        battery_kwh=meters.battery_kwh.sum(),
        battery_meter=BATTERY_METER,
        battery_day=f"{BATTERY_DAY:%A %Y-%m-%d}",
        start_kwh=start_kwh,
        end_kwh=end_kwh,
        end_thb=(end_kwh - start_kwh) * off_peak_thb,
    )
    write_summary(
        "managed_campus",
        "Managed campus: a demand-response day and a month with and without batteries",
        f"python -m benchmarks.managed_campus --seed {args.seed}",
        intro,
        f"1. {DR_DAY:%A %Y-%m-%d}, 25 meters, 20 % event 14:00–15:00\n\n{dr_table}",
        f"2. {MONTH_START:%B %Y}, cost (THB)\n\n{cost_table}",
        f"2. {MONTH_START:%B %Y}, grid import (kWh)\n\n{import_table}",
        directory=args.out,
    )


INTRO = """\
The meter model alone (no Ray, no storage) for the 25 meters of config/utcc_campus_config.json,
seed {seed}, 15-minute intervals stepped from local midnight (Asia/Bangkok, UTC+7). Demand is the
readings' `energy_consumed` (kW, the building load after shed and rebound, before PV and battery).
Costs are THB from the readings, `import_cost_thb` − `export_credit_thb`, under the configured MEA
time-of-use tariff, the only one in force: {on_peak:.4f} THB/kWh on-peak ({peak_hours} Monday to
Friday except public holidays), {off_peak:.4f} THB/kWh off-peak (both including Ft {ft:.4f}),
exports credited {export:.2f} THB/kWh. The demand charge ({demand_charge:.2f} THB/kW of the
monthly peak) is not in the readings and is left out. Energies are kWh, powers kW.

**1. A day with and without demand response.** Wednesday 2025-04-09 stepped twice: without
events, and with that day's event of config/scenario_weekly_dr.json (same mRID, so it sheds as a
`--scenario` run does): 20 % of demand 14:00–15:00 for every campus load, each meter's start
randomised over 0–300 s ({shedding} of 25 meters shed). After it each meter pays back half its last
shed rate, decaying with a 45 min time constant over 135 min. Peaks are the highest 15-minute
campus demand; "energy shed" is the readings' `shed_kw` over the day (the randomised starts push a
little of it past 15:00); "rebound" is demand with − without + shed over the {rebound_h} h after
15:00; "net change" is the day's demand with − without (= rebound − shed). The cost change also
carries the batteries' response (they discharge to cover the net load, which the event lowers).
{rebound_note}

![demand-response day](managed_campus_dr_day.png)

**2. A month with and without batteries.** March 2025 (21 working days, no public holiday),
31 days × 96 intervals in one-day windows, no demand-response events, once as configured
({hybrids} hybrid meters, {battery_kwh:,.0f} kWh of batteries in all) and once with every battery
removed (`MeterArrays.without_batteries()`: same meters, load and PV). The batteries follow the
model's price-driven policy (gtx_ray/model/battery.py): PV surplus charges them; in on-peak
intervals they discharge to cover the building's net load down to a 10 % reserve; in off-peak
intervals they charge from the grid to 90 %. "saving" is net cost without − with (positive: the
batteries save money), "saving %" its share of the cost without; the campus saving is the hybrid
meters' (the other 20 meters are identical in both runs). On-peak import is the import of the
intervals priced on-peak; the batteries move import from on-peak to off-peak and add their
round-trip losses (about 10 %) to the total. The batteries start half full ({start_kwh:,.0f} kWh)
and end the month at {end_kwh:,.0f} kWh: stored energy worth about {end_thb:,.0f} THB at the
off-peak price that the "with" run has paid for and not used, not credited back.

In the daily costs the weekends show a negative saving: the whole weekend is off-peak, so the
recharge after Friday's on-peak discharge is bought on Saturday, and Monday saves about twice a
normal weekday because the batteries start it full without an overnight recharge. Below, one
working day of {battery_meter}'s battery ({battery_day}): charged from the grid to 90 % before
09:00, topped up by surplus PV around midday, discharged to the reserve through the afternoon,
recharged after 22:00.

![month](managed_campus_month.png)

![battery day](managed_campus_battery_day.png)
"""


if __name__ == "__main__":
    main()
