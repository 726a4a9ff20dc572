"""Scenario files: validation names the field, repeats expand with stable mRIDs, and the
admin actions that publish a scenario are the same every time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gtx_ray.errors import ConfigError
from gtx_ray.scenario import load_scenario, model_inputs, parse_scenario, server_actions

MONDAY_14H = "2025-03-03T14:00:00+07:00"
REPO = Path(__file__).resolve().parents[2]


def _event(**extra):
    return {"start": MONDAY_14H, "duration_s": 3600, "reduction_pct": 20, **extra}


def test_weekly_event_expands_to_52_with_stable_distinct_mrids():
    scenario = parse_scenario({"dr_events": [_event(repeat={"every_days": 7, "count": 52})]})
    starts = [e.start for e in scenario.events]
    assert len(starts) == 52
    assert starts[1] - starts[0] == 7 * 86_400
    assert len({e.mrid for e in scenario.events}) == 52
    again = parse_scenario({"dr_events": [_event(repeat={"every_days": 7, "count": 52})]})
    assert [e.mrid for e in again.events] == [e.mrid for e in scenario.events]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"dr_events": [_event(duration_s=0)]}, "dr_events[0].duration_s"),
        ({"dr_events": [{"start": MONDAY_14H, "duration_s": 600}]}, "load-shed form"),
        ({"dr_events": [_event(start="2025-03-03T14:00:00")]}, "UTC offset"),
        ({"dr_events": [_event(randomize_start_s=7200)]}, "randomize_start_s"),
        ({"dr_events": [_event(colour="red")]}, "colour"),
        (
            {
                "tariffs": [
                    {
                        "effective_from": 0,
                        "on_peak_start_hour": 20,
                        "on_peak_end_hour": 9,
                        "on_peak_thb_per_kwh": 4,
                        "off_peak_thb_per_kwh": 2,
                    }
                ]
            },
            "on_peak_start_hour must be before",
        ),
        ({"messages": [{"start": 0, "duration_s": 60, "text": ""}]}, "messages[0].text"),
        (
            {"der_defaults": [{"export_limit_kw": 1, "set_grad_w_pct_per_s": -1}]},
            "der_defaults[0].set_grad_w_pct_per_s",
        ),
        ({"der_defaults": [{"export_limit_kw": 1, "ramp_s": 5}]}, "der_defaults[0].ramp_s"),
        (
            {
                "der_controls": [
                    {
                        "start": 0,
                        "duration_s": 600,
                        "connect": False,
                        "created_at": 0,
                        "repeat": {"every_days": 1, "count": 2},
                    }
                ]
            },
            "not with repeat",
        ),
        (
            {"der_controls": [{"start": 0, "duration_s": 600, "connect": False, "primacy": 256}]},
            "der_controls[0].primacy",
        ),
    ],
)
def test_bad_scenarios_name_the_field(data, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(data, "s.json")


def test_load_scenario_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_scenario(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_scenario(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"dr_events": [_event()]}))
    assert len(load_scenario(good).events) == 1


def test_server_actions_resolve_targets_and_refuse_unknown_meters():
    scenario = parse_scenario({"dr_events": [_event(targets=["M1"])]})
    ((action, kwargs),) = server_actions(scenario, {"M1": "AB" * 20})
    assert action == "create_dr_event"
    assert kwargs["targets"] == ["AB" * 20]
    assert kwargs["mrid"] == scenario.events[0].mrid
    assert kwargs["creation_time"] == scenario.events[0].start - 86_400
    with pytest.raises(ConfigError, match="not meters of this run"):
        server_actions(scenario, {})


def test_a_year_backfilled_with_the_sample_scenario_sheds_on_52_wednesdays():
    """The sample scenario's weekly event, stepped through a whole year in day-long windows:
    exactly 52 local days carry a shed, each a Wednesday afternoon, and the June tariff
    change moves the price of a weekday 13:00 from off-peak to on-peak."""
    from gtx_ray.fleet import MeterArrays, load_campus
    from gtx_ray.model.meters import MeterModel
    from gtx_ray.scenario import model_inputs
    from tests.unit.helpers import column, run

    campus = load_campus(REPO / "config" / "utcc_campus_config.json")
    meters = MeterArrays.from_specs(campus.meters)
    scenario = load_scenario(REPO / "config" / "scenario_weekly_dr.json")
    inputs = model_inputs(scenario, campus.model_tariff())
    model = MeterModel(meters, campus, seed=2025, interval_s=900)
    start = 1_735_664_400  # 2025-01-01T00:00+07:00
    table, _ = run(model, start, 365 * 96, 96, inputs)
    shed = column(table, "shed_kw", len(meters)).sum(axis=1)
    starts = start + 900 * np.arange(365 * 96)
    local = starts + 25_200
    shed_days = np.unique(local[shed > 0] // 86_400)
    assert len(shed_days) == 53  # 52 weekly events and the April AC-cycling event
    weekly = [d for d in shed_days if (d + 3) % 7 == 2]  # Wednesdays (epoch day 0: Thursday)
    assert len(weekly) == 52
    hours = (local[shed > 0] % 86_400) / 3600
    assert hours.min() >= 13 and hours.max() < 15.5
    price = column(table, "price_thb_per_kwh", len(meters))[:, 0]
    at_13h = (local % 86_400 == 13 * 3600) & ((local // 86_400 + 3) % 7 == 0)  # Mondays 13:00
    before = price[at_13h & (starts < 1_748_710_800)]
    after = price[at_13h & (starts >= 1_748_710_800)]
    ft = campus.tariff.ft_thb_per_kwh  # working Mondays are on-peak, holidays off-peak
    assert before.max() == pytest.approx(campus.tariff.on_peak_thb_per_kwh + ft)
    assert after.max() == pytest.approx(5.2 + ft)
    at_10h = (local % 86_400 == 10 * 3600) & ((local // 86_400 + 3) % 7 == 0)
    assert price[at_10h & (starts >= 1_748_710_800)].max() == pytest.approx(2.4 + ft)


def test_der_controls_in_a_scenario_reach_the_model_and_the_server():
    """An export limit of 0 for a sunny campus noon, from a scenario: no meter exports in its
    hour (PV is curtailed), the same hour the day before exports; the control is published
    with its mRID, for the meters' LFDIs."""
    from gtx_ray.fleet import MeterArrays, load_campus
    from gtx_ray.model.meters import MeterModel
    from gtx_ray.scenario import model_inputs
    from tests.unit.helpers import column, run

    day = 1_743_958_800  # 2025-04-07T00:00+07:00, a Monday
    noon = day + 86_400 + 11 * 3600
    scenario = parse_scenario(
        {
            "der_controls": [
                {
                    "start": noon,
                    "duration_s": 7200,
                    "export_limit_kw": 0,
                    "description": "no export",
                }
            ]
        }
    )
    (control,) = scenario.der_controls
    campus = load_campus(REPO / "config" / "utcc_campus_config.json")
    meters = MeterArrays.from_specs(campus.meters)
    model = MeterModel(meters, campus, seed=2025, interval_s=900)
    table, _ = run(model, day, 2 * 96, 96, model_inputs(scenario, campus.model_tariff()))
    export = column(table, "energy_export_kwh", len(meters))
    curtailed = column(table, "curtailed_kw", len(meters))
    starts = day + 900 * np.arange(2 * 96)
    during = (starts >= noon) & (starts < noon + 7200)
    day_before = (starts >= noon - 86_400) & (starts < noon - 86_400 + 7200)
    assert export[day_before].sum() > 0, "the campus exports at noon without the control"
    assert export[during].sum() == 0
    assert curtailed[during].sum() > 0
    ((action, kwargs),) = server_actions(
        parse_scenario(
            {
                "der_controls": [
                    {"start": noon, "duration_s": 600, "fixed_w_pct": 50, "targets": ["M1"]}
                ]
            }
        ),
        {"M1": "AB" * 20},
    )
    assert action == "create_der_control" and kwargs["targets"] == ["AB" * 20]
    assert (
        kwargs["fixed_w_pct"] == 50 and kwargs["mrid"] and kwargs["creation_time"] == noon - 86_400
    )
    assert (
        control.mrid
        == parse_scenario(
            {"der_controls": [{"start": noon, "duration_s": 7200, "export_limit_kw": 0}]}
        )
        .der_controls[0]
        .mrid
    )
    with pytest.raises(ConfigError, match=r"der_controls\[0\]: .*needs a mode"):
        parse_scenario({"der_controls": [{"start": noon, "duration_s": 600}]}, "s.json")


def test_der_defaults_reach_the_model_and_the_one_for_every_der_the_server():
    """Defaults for named meters reach the model only (the built-in server has one default for
    every DER); the first for every DER is published under an mRID made from its content."""
    from gtx_ray.fleet import load_campus

    data = {
        "der_defaults": [
            {"export_limit_kw": 0, "targets": ["AMI_METER_UTCC_001"]},
            {"max_lim_w_pct": 60, "set_grad_w_pct_per_s": 0.1, "description": "60 %"},
            {"connect": False},
        ]
    }
    scenario = parse_scenario(data)
    campus = load_campus(REPO / "config" / "utcc_campus_config.json")
    named, everyone, shadowed = model_inputs(scenario, campus.model_tariff()).der_defaults
    assert named.meter_ids == frozenset({"AMI_METER_UTCC_001"}) and named.export_limit_kw == 0
    assert (everyone.meter_ids, everyone.max_limit_pct, everyone.set_grad_w) == (None, 60, 0.1)
    assert shadowed.connect is False  # listed, but every meter follows an earlier one
    ((action, kwargs),) = server_actions(scenario, {})
    assert action == "set_default_der_control"
    assert kwargs["max_lim_w_pct"] == 60 and kwargs["set_grad_w_pct_per_s"] == 0.1
    assert server_actions(parse_scenario(data), {})[0][1]["mrid"] == kwargs["mrid"]
    other = dict(data["der_defaults"][1], max_lim_w_pct=50)
    assert (
        server_actions(parse_scenario({"der_defaults": [other]}), {})[0][1]["mrid"]
        != kwargs["mrid"]
    )


def test_merged_recordings_reach_every_meter_that_received_a_der_control():
    """Each meter actor records what its own meters learned: merged, a control one actor's
    meters and another's received reaches both."""
    from gtx_ray.scenario import merge_scenarios

    def recorded(meter: str):
        control = {
            "start": MONDAY_14H,
            "duration_s": 3600,
            "export_limit_kw": 0,
            "targets": [meter],
            "mrid": "AB" * 16,
        }
        return parse_scenario({"der_controls": [control]})

    merged = merge_scenarios([recorded("M2"), recorded("M1")])
    (control,) = merged.der_controls
    assert control.spec.targets == ["M1", "M2"]
