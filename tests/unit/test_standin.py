"""Stand-ins step a meter group exactly as its actor would (``actors.standin``)."""

from __future__ import annotations

from dataclasses import replace

from gtx_ray.actors.meter import fleet_group
from gtx_ray.actors.standin import STANDIN_MAX_METERS, StandInPlan, StandIns, wants_standins
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from gtx_ray.scenario import Scenario, model_inputs
from tests.integration.runs import JAN_1_2025_BANGKOK

BOUNDS = ((0, 7), (7, 19), (19, 30))


def _actor_windows(campus, fleet_size, group, inputs, windows=(1, 4, 2)):
    """What a meter actor of ``group`` steps: its own fleet slice and model."""
    lo, hi = BOUNDS[group]
    model = MeterModel(fleet_group(campus, fleet_size, 5, lo, hi), campus, 5, 900)
    state = model.initial_state(JAN_1_2025_BANGKOK)
    batches = []
    for n in windows:
        result = model.step(state, n, None, inputs)
        batches.append(result.batch)
        state = result.state
    return batches, state


def _standin_windows(standins, group, windows=(1, 4, 2)):
    state = standins.initial_state(group, JAN_1_2025_BANGKOK)
    batches = []
    for n in windows:
        result = standins.step(group, state, n)
        batches.append(result.batch)
        state = result.state
    return batches, state


def test_a_stand_in_steps_a_generated_group_as_its_actor_does(campus):
    inputs = model_inputs(Scenario.empty(), campus.model_tariff())
    standins = StandIns(StandInPlan(campus, 30, 5, 900, inputs, BOUNDS))
    for group in (2, 0, 1):  # any order: the fleet is generated once and sliced
        ours, our_state = _standin_windows(standins, group)
        theirs, their_state = _actor_windows(campus, 30, group, inputs)
        assert all(a.equals(b) for a, b in zip(ours, theirs, strict=True))
        assert (our_state.import_register_kwh == their_state.import_register_kwh).all()
        assert our_state.next_start_s == JAN_1_2025_BANGKOK + 7 * 900
        standins.drop(group)


def test_a_stand_in_steps_campus_meters_with_the_scenario_inputs(campus):
    inputs = model_inputs(Scenario.empty(), campus.model_tariff())
    standins = StandIns(StandInPlan(campus, None, 5, 900, inputs, BOUNDS))
    ours, _ = _standin_windows(standins, 1)
    theirs, _ = _actor_windows(campus, None, 1, inputs)
    assert all(a.equals(b) for a, b in zip(ours, theirs, strict=True))
    assert ours[0].num_rows == 12  # campus meters 7..18, one interval


def test_a_stand_in_uses_its_plan_inputs_not_none(campus):
    """The inputs reach the model: a different tariff gives different cost columns."""
    scenario = model_inputs(Scenario.empty(), campus.model_tariff())
    doubled = ModelInputs(tariffs=(replace(campus.model_tariff(), ft_thb_per_kwh=9.0),))
    plain = StandIns(StandInPlan(campus, None, 5, 900, scenario, BOUNDS))
    other = StandIns(StandInPlan(campus, None, 5, 900, doubled, BOUNDS))
    a, _ = _standin_windows(plain, 0, (4,))
    b, _ = _standin_windows(other, 0, (4,))
    assert not a[0].equals(b[0])


def test_stand_ins_only_bridge_paced_runs_of_small_fleets():
    assert wants_standins(1.0, 25)
    assert wants_standins(3600.0, STANDIN_MAX_METERS)
    assert not wants_standins(None, 25)  # as fast as possible: the clock would run the fleet
    assert not wants_standins(1.0, STANDIN_MAX_METERS + 1)
