"""The DER function set on the server, over real mutual-TLS sockets: discovery by links from
/dcap, the device's FunctionSetAssignments and its EndDevice; DERControls targeted, superseded,
cancelled and active; the DefaultDERControl; a device's DERCapability, DERSettings, DERStatus
and DERAvailability PUT and read back (its own only); DERControlResponses. Every DER body sent
or received is validated against the CSIP-AUS schema (sep.xsd redefined with the csipaus
extensions), every other body against the official sep.xsd (helpers.Sep2Client)."""

from __future__ import annotations

import time

import pytest

from gtx_ray.ieee2030_5.der import (
    CSIPAUS_NS,
    DER_TYPE_PV_AND_STORAGE,
    DOE_EXP_LIM_W,
    DOE_IMP_LIM_W,
    MODE_CONNECT,
    MODE_FIXED_W,
    MODE_MAX_LIM_W,
    DerAvailability,
    DerCapability,
    DerSettings,
    DerStatus,
)
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.errors import BadRequest
from gtx_ray.ieee2030_5.server.managers import admin_der
from tests.ieee2030_5.helpers import Q, Sep2Client, ThreadedServer

C = "{" + CSIPAUS_NS + "}"
NS_ATTRS = f'xmlns="urn:ieee:std:2030.5:ns" xmlns:csipaus="{CSIPAUS_NS}"'


@pytest.fixture(scope="module")
def der_server(certs_dir):
    srv = ThreadedServer(Ieee2030_5Config(certs_dir=certs_dir, port=0))
    yield srv
    srv.stop()


@pytest.fixture()
def client(der_server, certs_dir, sep_schema, csip_schema):
    made: list[Sep2Client] = []

    def make(meter_id: str) -> Sep2Client:
        c = Sep2Client(der_server.port, certs_dir, meter_id, sep_schema, der_schema=csip_schema)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _link(resp_or_el, name: str) -> str:
    doc = getattr(resp_or_el, "doc", resp_or_el)
    el = doc.find(Q + name)
    assert el is not None, f"{name} missing"
    return el.get("href")


def _edev(c: Sep2Client) -> str:
    """The caller's EndDevice href (registering it on first use)."""
    listed = c.get("/edev")
    if listed.doc.get("all") == "0":
        return c.register()
    return listed.doc.find(Q + "EndDevice").get("href")


def _der(c: Sep2Client) -> str:
    """The href of the caller's DER, found by links from its EndDevice."""
    der_list = c.get(_link(c.get(_edev(c)), "DERListLink") + "?l=10")
    assert der_list.doc.get("all") == "1"
    return der_list.all("DER")[0].get("href")


def _program(c: Sep2Client):
    """The campus DERProgram element, found from the device's FunctionSetAssignments."""
    fsa_list = c.get(_link(c.get(_edev(c)), "FunctionSetAssignmentsListLink") + "?l=10")
    fsa = fsa_list.all("FunctionSetAssignments")[0]
    programs = c.get(_link(fsa, "DERProgramListLink") + "?l=10")
    return programs.all("DERProgram")[0]


def _mrids(resp, tag: str = "DERControl") -> list[str]:
    return [e.find(Q + "mRID").text for e in resp.all(tag)]


def _watts(el) -> int:
    """An ActivePower-like element's value × 10^multiplier."""
    return int(el.find(Q + "value").text) * 10 ** int(el.find(Q + "multiplier").text)


def _find(resp, mrid: str):
    return next(e for e in resp.all("DERControl") if e.find(Q + "mRID").text == mrid)


def test_der_is_discovered_by_links(client):
    c = client("AMI_METER_UTCC_010")
    dcap = c.get("/dcap")
    programs = c.get(_link(dcap, "DERProgramListLink") + "?l=10")
    assert programs.doc.get("all") == "1"
    program = _program(c)
    assert program.find(Q + "primacy").text == "1"
    assert _link(program, "DERControlListLink").endswith("/derc")
    assert _link(program, "ActiveDERControlListLink").endswith("/actderc")
    der = c.get(_der(c))
    for name in ("DERCapabilityLink", "DERSettingsLink", "DERStatusLink", "DERAvailabilityLink"):
        assert _link(der, name).startswith(_edev(c) + "/der/1/")
    current = c.get(_link(der, "CurrentDERProgramLink"))
    assert current.text("mRID") == program.find(Q + "mRID").text
    associated = c.get(_link(der, "AssociatedDERProgramListLink") + "?l=10")
    assert _mrids(associated, "DERProgram") == [program.find(Q + "mRID").text]


def test_controls_reach_their_targets_only_and_move_through_statuses(der_server, client):
    a, b = client("AMI_METER_UTCC_011"), client("AMI_METER_UTCC_012")
    program_a, program_b = _program(a), _program(b)
    now = int(time.time())
    created = der_server.admin(
        admin_der.create_der_control,
        start=now + 3600,
        duration_s=1800,
        targets=[a.identity.lfdi],
        connect=True,
        energize=True,
        fixed_w_pct=-50.0,
        max_lim_w_pct=80.0,
        ramp_s=12.5,
        export_limit_kw=5.0,
        import_limit_kw=150.0,
        generation_limit_kw=0.0,
        load_limit_kw=3.3,
        randomize_start_s=60,
        description="export cap",
    )
    assert created["status"] == "scheduled"
    derc_href = _link(program_a, "DERControlListLink")
    seen = a.get(derc_href + "?l=100")
    assert created["mrid"] in _mrids(seen)
    assert created["mrid"] not in _mrids(b.get(_link(program_b, "DERControlListLink") + "?l=100"))
    control = _find(seen, created["mrid"])
    assert control.get("replyTo") == "/rsps/4/rsp"
    assert control.find(f"{Q}EventStatus/{Q}currentStatus").text == "0"
    assert control.find(Q + "randomizeStart").text == "60"
    base = control.find(Q + "DERControlBase")
    assert base.find(Q + "opModConnect").text == "true"
    assert base.find(Q + "opModEnergize").text == "true"
    assert base.find(Q + "opModFixedW").text == "-5000"  # hundredths of a percent
    assert base.find(Q + "opModMaxLimW").text == "8000"
    assert base.find(Q + "rampTms").text == "1250"  # hundredths of a second

    assert _watts(base.find(C + "opModExpLimW")) == 5000
    assert _watts(base.find(C + "opModImpLimW")) == 150_000
    assert _watts(base.find(C + "opModGenLimW")) == 0
    assert _watts(base.find(C + "opModLoadLimW")) == 3300
    # Another device cannot read it at all.
    assert b.get(control.get("href")).status == 404
    # A newer overlapping control for the same device supersedes it.
    newer = der_server.admin(
        admin_der.create_der_control,
        start=now + 3000,
        duration_s=3600,
        export_limit_kw=2.0,
        targets=[a.identity.lfdi],
    )
    assert a.get(control.get("href")).text("EventStatus/currentStatus") == "4"
    assert der_server.admin(admin_der.get_der_control, control_id=created["id"])["status"] == (
        "superseded"
    )
    # One for another device, overlapping, supersedes nothing of a's.
    der_server.admin(
        admin_der.create_der_control,
        start=now + 3000,
        duration_s=3600,
        export_limit_kw=1.0,
        targets=[b.identity.lfdi],
    )
    newer_href = f"{derc_href}/{newer['id']}"
    assert a.get(newer_href).text("EventStatus/currentStatus") == "0"
    # Cancelled shows as cancelled.
    der_server.admin(admin_der.cancel_der_control, control_id=newer["id"])
    assert a.get(newer_href).text("EventStatus/currentStatus") == "2"
    with pytest.raises(Exception, match="already cancelled"):
        der_server.admin(admin_der.cancel_der_control, control_id=newer["id"])


def test_active_list_holds_only_controls_in_force(der_server, client):
    c = client("AMI_METER_UTCC_013")
    now = int(time.time())
    running = der_server.admin(
        admin_der.create_der_control,
        start=now - 60,
        duration_s=600,
        max_lim_w_pct=50.0,
        targets=[c.identity.lfdi],
    )
    later = der_server.admin(
        admin_der.create_der_control,
        start=now + 7200,
        duration_s=600,
        max_lim_w_pct=40.0,
        targets=[c.identity.lfdi],
    )
    program = _program(c)
    active = c.get(_link(program, "ActiveDERControlListLink") + "?l=50")
    assert running["mrid"] in _mrids(active)
    assert later["mrid"] not in _mrids(active)
    assert _find(active, running["mrid"]).find(f"{Q}EventStatus/{Q}currentStatus").text == "1"
    assert program.find(Q + "ActiveDERControlListLink").get("all") == str(active.doc.get("all"))
    public = der_server.admin(admin_der.list_der_controls, active_only=True)
    assert running["mrid"] in [row["mrid"] for row in public]
    assert later["mrid"] not in [row["mrid"] for row in public]


def test_default_der_control(der_server, client):
    c = client("AMI_METER_UTCC_014")
    set_ = der_server.admin(
        admin_der.set_default_der_control,
        set_grad_w_pct_per_s=0.27,
        export_limit_kw=10.0,
        connect=True,
        description="campus default",
    )
    assert set_["modes"] == {"connect": True, "export_limit_kw": 10.0}
    program = _program(c)
    default = c.get(_link(program, "DefaultDERControlLink"))
    assert default.text("setGradW") == "27"
    assert default.text("description") == "campus default"
    base = default.doc.find(Q + "DERControlBase")
    assert base.find(Q + "opModConnect").text == "true"
    assert base.find(f"{C}opModExpLimW/{Q}value").text == "10000"
    got = der_server.admin(admin_der.get_default_der_control)
    assert got["set_grad_w_pct_per_s"] == 0.27


def capability_xml(doe: str = "<csipaus:doeModesSupported>03</csipaus:doeModesSupported>") -> str:
    modes = MODE_CONNECT | MODE_FIXED_W | MODE_MAX_LIM_W
    return (
        f"<DERCapability {NS_ATTRS}><modesSupported>{modes:08X}</modesSupported>"
        "<rtgMaxChargeRateW><multiplier>0</multiplier><value>-5000</value></rtgMaxChargeRateW>"
        "<rtgMaxDischargeRateW><multiplier>0</multiplier><value>5000</value>"
        "</rtgMaxDischargeRateW>"
        "<rtgMaxVA><multiplier>1</multiplier><value>1100</value></rtgMaxVA>"
        "<rtgMaxW><multiplier>1</multiplier><value>1000</value></rtgMaxW>"
        "<rtgMaxWh><multiplier>1</multiplier><value>1350</value></rtgMaxWh>"
        f"<type>{DER_TYPE_PV_AND_STORAGE}</type>{doe}</DERCapability>"
    )


def settings_xml(now: int) -> str:
    return (
        f"<DERSettings {NS_ATTRS}><modesEnabled>00000004</modesEnabled><setGradW>100</setGradW>"
        "<setMaxW><multiplier>1</multiplier><value>1000</value></setMaxW>"
        f"<updatedTime>{now}</updatedTime>"
        "<csipaus:doeModesEnabled>01</csipaus:doeModesEnabled></DERSettings>"
    )


def status_xml(now: int) -> str:
    return (
        f"<DERStatus {NS_ATTRS}>"
        f"<genConnectStatus><dateTime>{now}</dateTime><value>05</value></genConnectStatus>"
        f"<inverterStatus><dateTime>{now}</dateTime><value>4</value></inverterStatus>"
        f"<readingTime>{now}</readingTime>"
        f"<stateOfChargeStatus><dateTime>{now}</dateTime><value>6550</value>"
        "</stateOfChargeStatus></DERStatus>"
    )


def availability_xml(now: int) -> str:
    return (
        f"<DERAvailability {NS_ATTRS}><availabilityDuration>7200</availabilityDuration>"
        f"<readingTime>{now}</readingTime><reservePercent>2000</reservePercent>"
        "<statWAvail><multiplier>0</multiplier><value>4200</value></statWAvail>"
        "</DERAvailability>"
    )


def test_device_puts_its_der_and_reads_it_back_others_cannot(der_server, client):
    a, b = client("AMI_METER_UTCC_015"), client("AMI_METER_UTCC_016")
    now = int(time.time())
    der = a.get(_der(a))
    assert _der(b) != der.doc.get("href")  # b has a DER of its own
    hrefs = {
        name: _link(der, f"DER{name}Link")
        for name in ("Capability", "Settings", "Status", "Availability")
    }
    assert a.get(hrefs["Status"]).status == 404  # nothing sent yet
    bodies = {
        "Capability": capability_xml(),
        "Settings": settings_xml(now),
        "Status": status_xml(now),
        "Availability": availability_xml(now),
    }
    for name, body in bodies.items():
        assert b.put(hrefs[name], body).status == 404  # not b's DER
        put = a.put(hrefs[name], body)
        assert put.status == 204, (name, put.reason)
        assert b.get(hrefs[name]).status == 404
    cap = a.get(hrefs["Capability"])
    # Powers come back as the same quantity (the server writes the smallest multiplier).
    assert _watts(cap.doc.find(Q + "rtgMaxW")) == 10_000
    assert _watts(cap.doc.find(Q + "rtgMaxWh")) == 13_500
    assert cap.text("type") == str(DER_TYPE_PV_AND_STORAGE)
    assert cap.doc.find(C + "doeModesSupported").text == "03"
    settings = a.get(hrefs["Settings"])
    assert settings.text("setGradW") == "100"
    assert settings.doc.find(C + "doeModesEnabled").text == "01"
    status = a.get(hrefs["Status"])
    assert status.text("stateOfChargeStatus/value") == "6550"
    assert status.text("genConnectStatus/value") == "05"
    avail = a.get(hrefs["Availability"])
    assert _watts(avail.doc.find(Q + "statWAvail")) == 4200
    # What the operator sees, in kW and %.
    rows = {r["lfdi"]: r for r in der_server.admin(admin_der.list_der_devices)}
    mine = rows[a.identity.lfdi]
    assert DerCapability(**mine["capability"]) == DerCapability(
        modes_supported=MODE_CONNECT | MODE_FIXED_W | MODE_MAX_LIM_W,
        der_type=DER_TYPE_PV_AND_STORAGE,
        rated_w_kw=10.0,
        rated_va_kva=11.0,
        rated_wh_kwh=13.5,
        max_charge_rate_kw=-5.0,
        max_discharge_rate_kw=5.0,
        doe_modes_supported=DOE_EXP_LIM_W | DOE_IMP_LIM_W,
    )
    assert DerSettings(**mine["settings"]).set_grad_w_pct_per_s == 1.0
    assert DerStatus(**mine["status"]).state_of_charge_pct == 65.5
    assert DerAvailability(**mine["availability"]).stat_w_avail_kw == 4.2
    assert rows[b.identity.lfdi]["capability"] is None
    # A second PUT replaces the first.
    later = status_xml(now + 60).replace("6550", "7000")
    assert a.put(hrefs["Status"], later).status == 204
    assert a.get(hrefs["Status"]).text("stateOfChargeStatus/value") == "7000"


@pytest.mark.parametrize(
    ("part", "body", "word"),
    [
        (
            "dercap",
            capability_xml().replace("<rtgMaxW>", "<x>").replace("</rtgMaxW>", "</x>"),
            "rtgMaxW",
        ),
        ("derg", settings_xml(0).replace("<setGradW>100", "<setGradW>-1"), "setGradW"),
        ("ders", status_xml(0).replace("6550", "10001"), "value"),
        ("dera", "<DERStatus xmlns='urn:ieee:std:2030.5:ns'/>", "DERAvailability"),
    ],
)
def test_malformed_der_records_are_refused(der_server, certs_dir, sep_schema, part, body, word):
    c = Sep2Client(der_server.port, certs_dir, "AMI_METER_UTCC_017", sep_schema)
    try:
        resp = c.put(f"{_der(c)}/{part}", body)
        assert resp.status == 400
        assert word in resp.reason
    finally:
        c.close()


def test_der_control_responses_are_accepted(der_server, client):
    c = client("AMI_METER_UTCC_018")
    now = int(time.time())
    control = der_server.admin(
        admin_der.create_der_control,
        start=now + 86_000,
        duration_s=600,
        energize=False,
        targets=[c.identity.lfdi],
    )
    seen = c.get(_link(_program(c), "DERControlListLink") + "?l=100")
    reply_to = _find(seen, control["mrid"]).get("replyTo")
    body = (
        '<DERControlResponse xmlns="urn:ieee:std:2030.5:ns">'
        f"<createdDateTime>{now}</createdDateTime><endDeviceLFDI>{c.identity.lfdi}"
        f"</endDeviceLFDI><status>1</status><subject>{control['mrid']}</subject>"
        "</DERControlResponse>"
    )
    created = c.post(reply_to, body)
    assert created.status == 201
    assert c.get(created.headers["location"]).text("subject") == control["mrid"]
    # A subject that is no DER control of this server is refused.
    assert c.post(reply_to, body.replace(control["mrid"], "0" * 31 + "1")).status == 400
    got = der_server.admin(admin_der.get_der_control, control_id=control["id"])
    assert got["responses"] == {"event_received": 1}
    rsps = c.get("/rsps?l=10")
    assert [s.find(Q + "description").text for s in rsps.all("ResponseSet")][-1] == "der"


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"duration_s": 600}, "needs a mode"),
        ({"duration_s": 0, "connect": False}, "duration_s"),
        ({"duration_s": 600, "fixed_w_pct": 120.0}, "fixed_w_pct"),
        ({"duration_s": 600, "max_lim_w_pct": -1.0}, "max_lim_w_pct"),
        ({"duration_s": 600, "export_limit_kw": -5.0}, "export_limit_kw"),
        ({"duration_s": 600, "import_limit_kw": float("nan")}, "import_limit_kw"),
        ({"duration_s": 600, "ramp_s": 1000.0, "connect": True}, "ramp_s"),
        ({"duration_s": 600, "connect": "yes"}, "connect"),
        ({"duration_s": 600, "connect": True, "randomize_start_s": 4000}, "randomize_start_s"),
        ({"duration_s": 600, "connect": True, "targets": ["xyz"]}, "targets"),
        ({"duration_s": 600, "connect": True, "colour": "red"}, "colour"),
    ],
)
def test_malformed_controls_are_refused_with_the_field_named(der_server, fields, word):
    with pytest.raises(BadRequest, match=word):
        der_server.admin(admin_der.create_der_control, start=int(time.time()), **fields)


def test_malformed_default_is_refused_with_the_field_named(der_server):
    with pytest.raises(BadRequest, match="set_grad_w_pct_per_s"):
        der_server.admin(admin_der.set_default_der_control, set_grad_w_pct_per_s=-1.0)
    with pytest.raises(BadRequest, match="load_limit_kw"):
        der_server.admin(admin_der.set_default_der_control, load_limit_kw=1e9)


def test_der_controls_and_defaults_round_trip_through_a_scenario_file(certs_dir):
    """What operators put on a server, exported as a scenario file and published on a fresh
    server, is the same there (mRIDs, targets, cancellation, the default); the model gets the
    same controls with their program's primacy. Publishing it twice changes nothing."""
    import json

    from gtx_ray.fleet import load_campus
    from gtx_ray.ieee2030_5.server.config import build_registry
    from gtx_ray.ieee2030_5.server.managers import admin_events
    from gtx_ray.scenario import model_inputs, parse_scenario, server_actions
    from tests.conftest import REPO

    now = int(time.time())
    config = Ieee2030_5Config(certs_dir=certs_dir, port=0)
    first = build_registry(config, now)
    lfdi = "AB" * 20
    admin_der.create_der_control(
        first, now, now + 600, 3600, targets=[lfdi], export_limit_kw=0.0, ramp_s=30.0
    )
    later = admin_der.create_der_control(first, now, now + 7200, 1800, fixed_w_pct=-40.0)
    admin_der.cancel_der_control(first, now, later["id"], at=now + 60)
    admin_der.set_default_der_control(
        first, now, export_limit_kw=5.0, set_grad_w_pct_per_s=0.5, description="5 kW cap"
    )
    exported = json.loads(json.dumps(admin_events.export_scenario(first, now)))
    assert len(exported["der_controls"]) == 2 and len(exported["der_defaults"]) == 1
    scenario = parse_scenario(exported, "exported")

    second = build_registry(config, now + 5)
    for _ in range(2):
        for action, kwargs in server_actions(scenario, {lfdi: lfdi}):
            getattr(admin_events if hasattr(admin_events, action) else admin_der, action)(
                second, now + 5, **kwargs
            )
    again = admin_events.export_scenario(second, now + 5)
    for key in ("der_controls", "der_defaults"):
        assert again[key] == exported[key]
    controls = {c["mrid"]: c for c in admin_der.list_der_controls(second, now + 5)}
    assert controls[later["mrid"]]["status"] == "cancelled"

    campus = load_campus(REPO / "config" / "utcc_campus_config.json")
    inputs = model_inputs(scenario, campus.model_tariff())
    by_id = {c.event_id: c for c in inputs.der_controls}
    assert by_id[later["mrid"]].cancelled_at_s == now + 60
    assert by_id[later["mrid"]].fixed_pct == -40.0 and by_id[later["mrid"]].primacy == 1
    (default,) = inputs.der_defaults
    assert (default.export_limit_kw, default.set_grad_w, default.meter_ids) == (5.0, 0.5, None)
