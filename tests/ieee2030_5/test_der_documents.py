"""The shared DER documents (gtx_ray.ieee2030_5.der_documents) and the meter's DER bodies
(client/der.py): what the server renders the meter parses back to the same value, what the meter
writes is valid against the CSIP-AUS schema and the server reads back the same value, and what
the DER pollers learned becomes the model's DER inputs (client/function_sets.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from lxml import etree

from gtx_ray.ieee2030_5.client.der import (
    DerPoller,
    DerRatings,
    DerReading,
    availability_of,
    capability_of,
    settings_of,
    status_of,
)
from gtx_ray.ieee2030_5.client.errors import ProtocolError
from gtx_ray.ieee2030_5.client.event_documents import Respondable
from gtx_ray.ieee2030_5.client.function_sets import MeterFunctionSets
from gtx_ray.ieee2030_5.client.responses import response_document
from gtx_ray.ieee2030_5.der import (
    DER_TYPE_PV,
    DER_TYPE_PV_AND_STORAGE,
    MODE_CONNECT,
    MODE_ENERGIZE,
    MODE_FIXED_W,
    MODE_MAX_LIM_W,
    DefaultDerControl,
    DerControl,
    DerControlBase,
)
from gtx_ray.ieee2030_5.der_documents import (
    parse_availability,
    parse_capability,
    parse_default_der_control,
    parse_der_control,
    parse_settings,
    parse_status,
    render_availability,
    render_capability,
    render_settings,
    render_status,
)
from gtx_ray.ieee2030_5.events import (
    CATEGORY_PV_AND_STORAGE,
    CATEGORY_PV_SYSTEM,
    EVENT_RECEIVED,
    mrid_hex,
)
from gtx_ray.ieee2030_5.server.mappers.der import render_control, render_default
from gtx_ray.model.der import DerControl as ModelDerControl
from gtx_ray.model.der import DerDefault
from gtx_ray.model.inputs import ModelInputs

T0 = 1_767_225_600
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
HYBRID = DerRatings(inverter_kw=43.5, battery_kwh=100.0, battery_kw=50.0)
PROSUMER = DerRatings(inverter_kw=30.4)


def _doc(body: bytes) -> etree._Element:
    return etree.fromstring(body)


def _valid(schema: etree.XMLSchema, body: bytes) -> etree._Element:
    doc = _doc(body)
    assert schema.validate(doc), (schema.error_log.last_error, body.decode())
    return doc


def _control(**base) -> DerControl:
    return DerControl(
        id=3,
        program_id=1,
        mrid=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0,
        description="midday cap",
        creation_time=T0 - 600,
        start=T0 + 3600,
        duration=7200,
        base=DerControlBase(**base),
        device_category=CATEGORY_PV_SYSTEM,
        randomize_start_s=-120,
        randomize_duration_s=300,
    )


@pytest.mark.parametrize(
    "base",
    [
        {"export_limit_kw": 0.0},
        {"export_limit_kw": 12.5, "import_limit_kw": 100.0, "ramp_s": 30.0},
        {"generation_limit_kw": 1_500.0, "load_limit_kw": 0.25},
        {"fixed_w_pct": -42.5, "max_lim_w_pct": 80.0},
        {"connect": False, "energize": True},
    ],
)
def test_a_der_control_the_server_renders_parses_back_to_the_same_value(csip_schema, base):
    control = _control(**base)
    doc = _valid(csip_schema, render_control(control, T0))
    parsed, respond = parse_der_control(doc)
    # the meter does not know the server's ids; the rest is the same value
    assert parsed == replace(control, id=0, program_id=0)
    assert respond.reply_to and respond.response_required == control.response_required


def _with_status(**changes) -> DerControl:
    c = _control(export_limit_kw=0.0)
    return replace(c, **changes)


@pytest.mark.parametrize(
    "control",
    [
        _with_status(cancelled_s=T0 + 4000),
        _with_status(cancelled_s=T0 + 4000, cancel_randomized=True),
        _with_status(superseded_s=T0 + 100),
    ],
)
def test_a_cancelled_or_superseded_control_says_when(csip_schema, control):
    parsed, _ = parse_der_control(_valid(csip_schema, render_control(control, T0 + 5000)))
    assert parsed.cancelled_s == control.cancelled_s
    assert parsed.cancel_randomized == control.cancel_randomized
    assert parsed.superseded_s == control.superseded_s


def test_the_default_der_control_parses_back(csip_schema):
    d = DefaultDerControl(
        program_id=1,
        mrid=0xABC,
        description="campus default",
        base=DerControlBase(export_limit_kw=5.0, max_lim_w_pct=90.0),
        set_grad_w_pct_per_s=0.5,
        updated=T0,
    )
    parsed = parse_default_der_control(_valid(csip_schema, render_default(d)))
    assert parsed == DefaultDerControl(0, 0xABC, "campus default", d.base, 0.5, 0)


def test_a_control_the_server_got_wrong_names_the_field():
    body = render_control(_control(max_lim_w_pct=50.0), T0).replace(
        b"<opModMaxLimW>5000", b"<opModMaxLimW>10001"
    )
    with pytest.raises(ProtocolError, match="opModMaxLimW"):
        parse_der_control(_doc(body))
    no_base = render_control(_control(export_limit_kw=1.0), T0)
    doc = _doc(no_base)
    doc.remove(doc.find("{urn:ieee:std:2030.5:ns}DERControlBase"))
    with pytest.raises(ProtocolError, match="DERControlBase"):
        parse_der_control(doc)


@pytest.mark.parametrize("ratings", [HYBRID, PROSUMER, DerRatings(0.0, 13.5, 5.0)])
def test_the_meter_s_der_records_are_schema_valid_and_read_back_the_same(csip_schema, ratings):
    href = "/edev/3/der/1"
    cap = capability_of(ratings)
    assert parse_capability(_valid(csip_schema, render_capability(href + "/dercap", cap))) == cap
    settings = settings_of(ratings, T0)
    doc = _valid(csip_schema, render_settings(href + "/derg", settings))
    assert parse_settings(doc) == settings
    for reading, connected in (
        (DerReading(T0, 20.0, 55.5, 3.5, -12.0), True),
        (DerReading(T0, 0.0, 0.0, 0.0, 0.0), True),
        (DerReading(T0, 0.0, 100.0, 0.0, 10.0), False),
    ):
        if not ratings.has_battery:
            reading = DerReading(reading.time_s, reading.pv_kw, None, reading.curtailed_kw, 0.0)
        status = status_of(ratings, reading, connected)
        assert parse_status(_valid(csip_schema, render_status(href + "/ders", status))) == status
        avail = availability_of(ratings, reading, connected)
        doc = _valid(csip_schema, render_availability(href + "/dera", avail))
        assert parse_availability(doc) == avail


def test_capability_and_status_follow_the_meter_s_equipment():
    hybrid = capability_of(HYBRID)
    assert hybrid.der_type == DER_TYPE_PV_AND_STORAGE
    wanted = MODE_CONNECT | MODE_ENERGIZE | MODE_FIXED_W | MODE_MAX_LIM_W
    assert hybrid.modes_supported & wanted == wanted
    assert (hybrid.rated_w_kw, hybrid.rated_wh_kwh) == (43.5, 100.0)
    assert hybrid.max_charge_rate_kw == hybrid.max_discharge_rate_kw == 50.0
    assert hybrid.doe_modes_supported == 0x0F
    pv = capability_of(PROSUMER)
    assert pv.der_type == DER_TYPE_PV and pv.rated_wh_kwh is None
    assert not pv.modes_supported & MODE_FIXED_W
    s = status_of(HYBRID, DerReading(T0, 20.0, 55.5, 3.5, -12.0), True)
    assert (s.gen_connect_status, s.stor_connect_status) == (0b111, 0b111)
    assert (s.inverter_status, s.storage_mode_status, s.state_of_charge_pct) == (5, 1, 55.5)
    off = status_of(HYBRID, DerReading(T0, 0.0, 40.0, 0.0, 0.0), False)
    assert (off.gen_connect_status, off.stor_connect_status) == (0b010, 0b010)
    assert (off.operational_mode_status, off.inverter_status) == (1, 1)
    a = availability_of(HYBRID, DerReading(T0, 20.0, 50.0, 3.5, 0.0), True)
    assert a.stat_w_avail_kw == 73.5 and a.availability_duration_s == 3600


def test_the_der_control_response_is_schema_valid(csip_schema, sep_schema):
    body = response_document("DERControlResponse", LFDI, 0xABC, EVENT_RECEIVED, T0)
    _valid(csip_schema, body)
    _valid(sep_schema, body)


# --- what the pollers learned, as the model's inputs ----------------------------------------


def _sets() -> MeterFunctionSets:
    categories = {"H": CATEGORY_PV_AND_STORAGE, "P1": CATEGORY_PV_SYSTEM, "P2": 1 << 21, "C": 0}
    sets = MeterFunctionSets(categories, {"H": HYBRID, "P1": PROSUMER, "P2": PROSUMER})
    for meter_id in categories:
        sets.pollers(meter_id)
    return sets


def _learn(poller: DerPoller, controls, default=None) -> None:
    seen = {c.mrid: (c, Respondable(None, 0), primacy) for c, primacy in controls}
    poller._merge(seen, None if default is None else (default, 1), T0)


def test_only_meters_with_der_get_a_der_poller():
    sets = _sets()
    assert set(sets.der) == {"H", "P1", "P2"}
    assert sets.model_inputs(ModelInputs()) == ModelInputs()


def test_der_controls_become_the_model_s_for_the_meters_that_received_them():
    sets = _sets()
    cap = _control(export_limit_kw=0.0)
    cancelled = replace(_control(fixed_w_pct=50.0), mrid=7, cancelled_s=T0 + 5000)
    _learn(sets.der["P1"], [(cap, 2)])
    _learn(sets.der["P2"], [(cap, 1)])
    _learn(sets.der["H"], [(cancelled, 1)])
    inputs = sets.model_inputs(ModelInputs())
    by_id = {c.event_id: c for c in inputs.der_controls}
    assert by_id[mrid_hex(cap.mrid)] == ModelDerControl(
        event_id=mrid_hex(cap.mrid),
        start_s=cap.start,
        duration_s=cap.duration,
        randomize_start_s=-120,
        randomize_duration_s=300,
        meter_ids=frozenset({"P1", "P2"}),
        device_category=CATEGORY_PV_SYSTEM,
        primacy=1,  # the lowest primacy a meter saw it under
        created_s=cap.creation_time,
        export_limit_kw=0.0,
    )
    fixed = by_id[mrid_hex(7)]
    assert fixed.fixed_pct == 50.0 and fixed.fixed_kw is None  # of each battery's own rating
    assert fixed.meter_ids == frozenset({"H"}) and fixed.cancelled_at_s == T0 + 5000
    # an event the scenario already has is not added twice
    known = ModelInputs(der_controls=(by_id[mrid_hex(7)],))
    again = sets.model_inputs(known)
    assert [c.event_id for c in again.der_controls] == [mrid_hex(7), mrid_hex(cap.mrid)]


def test_each_default_the_meters_hold_is_a_model_default_for_its_holders():
    sets = _sets()
    d = DefaultDerControl(1, 0xD1, "", DerControlBase(export_limit_kw=5.0), 0.5)
    for meter_id in ("H", "P1", "P2"):
        _learn(sets.der[meter_id], [], d)
    shared = DerDefault(meter_ids=frozenset({"H", "P1", "P2"}), export_limit_kw=5.0, set_grad_w=0.5)
    assert sets.model_inputs(ModelInputs()).der_defaults == (shared,)
    other = DefaultDerControl(1, 0xD2, "", DerControlBase(fixed_w_pct=-20.0), None)
    _learn(sets.der["H"], [], other)
    assert sets.model_inputs(ModelInputs()).der_defaults == (
        DerDefault(meter_ids=frozenset({"P1", "P2"}), export_limit_kw=5.0, set_grad_w=0.5),
        DerDefault(meter_ids=frozenset({"H"}), fixed_pct=-20.0),
    )
    # the scenario's defaults come first: where they target a meter, they win
    mine = DerDefault(export_limit_kw=1.0)
    assert sets.model_inputs(ModelInputs(der_defaults=(mine,))).der_defaults[0] is mine


def test_what_the_meters_learned_replays_as_a_scenario_with_the_same_der_inputs():
    """The recorded scenario (``learned_scenario``) gives the model the same DER controls and
    defaults the pollers gave it: modes, ramp, primacy, receivers, cancellation, setGradW."""
    from gtx_ray.fleet import load_campus
    from gtx_ray.scenario import model_inputs, parse_scenario
    from tests.conftest import REPO

    sets = _sets()
    cap = replace(
        _control(export_limit_kw=0.0), base=DerControlBase(export_limit_kw=0.0, ramp_s=20.0)
    )
    cancelled = replace(_control(fixed_w_pct=50.0), mrid=7, cancelled_s=T0 + 5000)
    shared = DefaultDerControl(1, 0xD1, "", DerControlBase(max_lim_w_pct=80.0), 0.25)
    own = DefaultDerControl(2, 0xD2, "", DerControlBase(connect=False), None)
    _learn(sets.der["P1"], [(cap, 2)], shared)
    _learn(sets.der["P2"], [(cap, 1)], shared)
    _learn(sets.der["H"], [(cancelled, 1)], own)
    learned = json.loads(json.dumps(sets.learned_scenario()))
    campus = load_campus(REPO / "config" / "utcc_campus_config.json")
    replayed = model_inputs(parse_scenario(learned, "learned"), campus.model_tariff())
    direct = sets.model_inputs(ModelInputs())
    key = lambda c: c.event_id  # noqa: E731
    assert sorted(replayed.der_controls, key=key) == sorted(direct.der_controls, key=key)
    assert set(replayed.der_defaults) == set(direct.der_defaults) and len(direct.der_defaults) == 2
