"""Demand response, pricing, messaging and responses on the server, over real mutual-TLS
sockets: discovery by links from /dcap and the device's FunctionSetAssignments, targeting,
statuses (scheduled, active, cancelled, superseded), generated tariff intervals, Responses.
Every body is validated against the official schema by the client (helpers.Sep2Client)."""

from __future__ import annotations

import time

import pytest

from gtx_ray.ieee2030_5.events import TOU_OFF_PEAK, TOU_ON_PEAK, TimeOfUseRates
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.managers import admin_events
from tests.ieee2030_5.helpers import Q, ThreadedServer

CAMPUS_TOU = TimeOfUseRates(
    effective_from=0,
    on_peak_start_hour=9.0,
    on_peak_end_hour=22.0,
    on_peak_thb_per_kwh=4.1839,
    off_peak_thb_per_kwh=2.6037,
    ft_thb_per_kwh=0.3972,
    export_thb_per_kwh=2.2,
)


@pytest.fixture(scope="module")
def events_server(certs_dir):
    srv = ThreadedServer(Ieee2030_5Config(certs_dir=certs_dir, port=0, tariff=CAMPUS_TOU))
    yield srv
    srv.stop()


@pytest.fixture()
def client(events_server, certs_dir, sep_schema):
    from tests.ieee2030_5.helpers import Sep2Client

    made = []

    def make(meter_id: str) -> Sep2Client:
        c = Sep2Client(events_server.port, certs_dir, meter_id, sep_schema)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _link(resp, name: str) -> str:
    """The href of ``name`` in a response or an element."""
    doc = getattr(resp, "doc", resp)
    el = doc.find(Q + name)
    assert el is not None, f"{name} missing"
    return el.get("href")


def _fsa_links(c) -> dict[str, str]:
    edev = c.register() if c.get("/edev").doc.get("all") == "0" else None
    edev = edev or c.get("/edev").doc.find(Q + "EndDevice").get("href")
    fsa_list = c.get(_link(c.get(edev), "FunctionSetAssignmentsListLink") + "?l=10")
    fsa = fsa_list.all("FunctionSetAssignments")[0]
    return {el.tag.split("}")[1]: el.get("href") for el in fsa if el.tag.endswith("Link")}


def test_dcap_and_fsa_link_every_event_function_set(client):
    c = client("AMI_METER_UTCC_001")
    dcap = c.get("/dcap")
    for name in (
        "DemandResponseProgramListLink",
        "MessagingProgramListLink",
        "ResponseSetListLink",
        "TariffProfileListLink",
    ):
        assert _link(dcap, name)
    links = _fsa_links(c)
    assert {"DemandResponseProgramListLink", "TariffProfileListLink"} <= set(links)
    assert {"MessagingProgramListLink", "ResponseSetListLink"} <= set(links)


def test_dr_event_reaches_targets_only_and_moves_through_statuses(events_server, client):
    a, b = client("AMI_METER_UTCC_002"), client("AMI_METER_UTCC_003")
    a.register()
    b.register()
    now = int(time.time())
    created = events_server.admin(
        admin_events.create_dr_event,
        start=now + 3600,
        duration_s=1800,
        reduction_pct=20.0,
        randomize_start_s=120,
        targets=[a.identity.lfdi],
        description="afternoon shed",
    )
    assert created["status"] == "scheduled"
    programs = a.get(_fsa_links(a)["DemandResponseProgramListLink"] + "?l=10")
    edc_href = _link(programs.all("DemandResponseProgram")[0], "EndDeviceControlListLink")
    seen_a = a.get(edc_href + "?l=100")
    mrids = [e.find(Q + "mRID").text for e in seen_a.all("EndDeviceControl")]
    assert created["mrid"] in mrids
    assert created["mrid"] not in [
        e.find(Q + "mRID").text for e in b.get(edc_href + "?l=100").all("EndDeviceControl")
    ]
    edc = next(
        e for e in seen_a.all("EndDeviceControl") if e.find(Q + "mRID").text == created["mrid"]
    )
    assert edc.find(f"{Q}EventStatus/{Q}currentStatus").text == "0"
    assert edc.find(f"{Q}Offset/{Q}loadAdjustmentPercentageOffset").text == "2000"
    assert edc.find(Q + "randomizeStart").text == "120"
    assert edc.get("replyTo") == "/rsps/1/rsp"
    # A newer overlapping event for the same device supersedes it.
    newer = events_server.admin(
        admin_events.create_dr_event,
        start=now + 3000,
        duration_s=3600,
        duty_cycle_pct=50,
        targets=[a.identity.lfdi],
    )
    older = a.get(edc.get("href"))
    assert older.text("EventStatus/currentStatus") == "4"
    # Cancelling the newer one shows as cancelled to the device.
    events_server.admin(admin_events.cancel_dr_event, event_id=newer["id"])
    assert a.get(edc_href + f"/{newer['id']}").text("EventStatus/currentStatus") == "2"
    # Another device cannot read it at all.
    assert b.get(edc_href + f"/{newer['id']}").status == 404


def test_active_list_holds_only_running_events(events_server, client):
    c = client("AMI_METER_UTCC_004")
    c.register()
    now = int(time.time())
    running = events_server.admin(
        admin_events.create_dr_event,
        start=now - 60,
        duration_s=600,
        reduction_kw=30,
        targets=[c.identity.lfdi],
    )
    program = c.get(_fsa_links(c)["DemandResponseProgramListLink"] + "?l=1").all(
        "DemandResponseProgram"
    )[0]
    active = c.get(_link(program, "ActiveEndDeviceControlListLink") + "?l=50")
    found = [
        e for e in active.all("EndDeviceControl") if e.find(Q + "mRID").text == running["mrid"]
    ]
    assert len(found) == 1
    assert found[0].find(f"{Q}TargetReduction/{Q}value").text == "30"
    assert found[0].find(f"{Q}EventStatus/{Q}currentStatus").text == "1"


def test_responses_are_posted_checked_and_visible_to_the_operator(events_server, client, certs_dir):
    c, other = client("AMI_METER_UTCC_005"), client("AMI_METER_UTCC_006")
    c.register()
    now = int(time.time())
    event = events_server.admin(
        admin_events.create_dr_event,
        start=now + 7200,
        duration_s=900,
        cooling_offset_c=2,
        targets=[c.identity.lfdi],
    )
    rsps = c.get(_fsa_links(c)["ResponseSetListLink"] + "?l=10")
    rsp_href = _link(rsps.all("ResponseSet")[0], "ResponseListLink")

    def body(lfdi: str, status: int, subject: str = event["mrid"]) -> str:
        return (
            '<DrResponse xmlns="urn:ieee:std:2030.5:ns">'
            f"<createdDateTime>{now}</createdDateTime><endDeviceLFDI>{lfdi}</endDeviceLFDI>"
            f"<status>{status}</status><subject>{subject}</subject></DrResponse>"
        )

    created = c.post(rsp_href, body(c.identity.lfdi, 1))
    assert created.status == 201
    assert c.get(created.headers["location"]).text("status") == "1"
    assert c.post(rsp_href, body(other.identity.lfdi, 1)).status == 403
    assert c.post(rsp_href, body(c.identity.lfdi, 1, "0" * 31 + "1")).status == 400
    mine = c.get(rsp_href + "?l=10")
    assert mine.doc.get("all") == "1"
    assert other.get(rsp_href + "?l=10").doc.get("all") == "0"
    rows = events_server.admin(admin_events.list_responses, subject=event["mrid"])
    assert [(r["lfdi"], r["status_name"]) for r in rows] == [(c.identity.lfdi, "event_received")]
    listed = events_server.admin(admin_events.get_dr_event, event_id=event["id"])
    assert listed["responses"] == {"event_received": 1}


def test_tariff_intervals_follow_the_calendar_and_a_tariff_change(events_server, client):
    c = client("AMI_METER_UTCC_007")
    c.register()
    tp = c.get(_fsa_links(c)["TariffProfileListLink"] + "?l=10")
    profile = tp.all("TariffProfile")[0]
    assert profile.find(Q + "currency").text == "764"
    rcs = c.get(_link(profile, "RateComponentListLink") + "?l=10")
    rc_import = rcs.all("RateComponent")[0]
    assert c.get(_link(rc_import, "ReadingTypeLink")).text("flowDirection") == "1"
    # Monday 2026-03-02 (a working day in Thailand), local midnight = 17:00 UTC the day before.
    monday = 1_772_384_400
    tti = c.get(_link(rc_import, "TimeTariffIntervalListLink") + f"?a={monday}&l=3")
    tiers = [int(e.find(Q + "touTier").text) for e in tti.all("TimeTariffInterval")]
    starts = [int(e.find(f"{Q}interval/{Q}start").text) for e in tti.all("TimeTariffInterval")]
    assert tiers == [TOU_OFF_PEAK, TOU_ON_PEAK, TOU_OFF_PEAK]
    assert starts == [monday, monday + 9 * 3600, monday + 22 * 3600]
    on_peak = tti.all("TimeTariffInterval")[1]
    cti = c.get(_link(on_peak, "ConsumptionTariffIntervalListLink") + "?l=1")
    price = int(cti.all("ConsumptionTariffInterval")[0].find(Q + "price").text)
    assert price == round((4.1839 + 0.3972) * 10_000)
    # A tariff change from that Monday moves the on-peak window to 13:00-20:00.
    events_server.admin(
        admin_events.add_tariff,
        effective_from=monday,
        on_peak_start_hour=13.0,
        on_peak_end_hour=20.0,
        on_peak_thb_per_kwh=5.0,
        off_peak_thb_per_kwh=2.0,
        ft_thb_per_kwh=0.0,
        export_thb_per_kwh=2.2,
        name="campus peak shift",
    )
    tti = c.get(_link(rc_import, "TimeTariffIntervalListLink") + f"?a={monday}&l=3")
    starts = [int(e.find(f"{Q}interval/{Q}start").text) for e in tti.all("TimeTariffInterval")]
    assert starts == [monday, monday + 13 * 3600, monday + 20 * 3600]
    # Saturday is off-peak all day.
    saturday = monday + 5 * 86_400
    tti = c.get(_link(rc_import, "TimeTariffIntervalListLink") + f"?a={saturday}&l=1")
    sat = tti.all("TimeTariffInterval")[0]
    assert sat.find(Q + "touTier").text == str(TOU_OFF_PEAK)
    assert sat.find(f"{Q}interval/{Q}duration").text == "86400"


def test_messages_are_listed_and_cancelled(events_server, client):
    c = client("AMI_METER_UTCC_008")
    now = int(time.time())
    msg = events_server.admin(
        admin_events.create_message,
        start=now - 10,
        duration_s=3600,
        text="Chiller maintenance in Building A, 13:00-15:00",
        priority=2,
    )
    mp = c.get("/msg?l=5").all("MessagingProgram")[0]
    active = c.get(_link(mp, "ActiveTextMessageListLink") + "?l=50")
    texts = [e.find(Q + "textMessage").text for e in active.all("TextMessage")]
    assert msg["text"] in texts
    events_server.admin(admin_events.cancel_message, message_id=msg["id"])
    active = c.get(_link(mp, "ActiveTextMessageListLink") + "?l=50")
    assert msg["text"] not in [e.find(Q + "textMessage").text for e in active.all("TextMessage")]


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"duration_s": 0, "reduction_pct": 10.0}, "duration_s"),
        ({"duration_s": 600}, "load-shed"),
        ({"duration_s": 600, "duty_cycle_pct": 120}, "duty_cycle_pct"),
        (
            {"duration_s": 600, "reduction_pct": 10.0, "randomize_start_s": 4000},
            "randomize_start_s",
        ),
        ({"duration_s": 600, "reduction_pct": 10.0, "targets": ["xyz"]}, "targets"),
    ],
)
def test_malformed_events_are_refused_with_the_field_named(events_server, fields, word):
    from gtx_ray.ieee2030_5.server.errors import BadRequest

    with pytest.raises(BadRequest, match=word):
        events_server.admin(admin_events.create_dr_event, start=int(time.time()), **fields)
