"""The 2030.5 server over real mutual-TLS sockets: the mirror flow, paging, statuses,
authorisation by certificate, hostile bodies. Every response body is validated against the
official schema by the client (helpers.Sep2Client)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from lxml import etree

from gtx_ray.ieee2030_5.codec import MEDIA_TYPE, NS
from gtx_ray.ieee2030_5.pki import device_credentials
from gtx_ray.ieee2030_5.tls import client_context
from tests.ieee2030_5.helpers import Q, mirror_usage_point_xml, reading_type_xml

MUP_MRID = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
MMR_IMPORT = "00000000000000000000000000000A01"
MMR_POWER = "00000000000000000000000000000A02"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _href(resp, link: str) -> str:
    el = resp.doc.find(Q + link)
    assert el is not None, f"{link} missing from {resp.body[:300]!r}"
    return el.get("href")


def _mmr_with_set(mrid: str, set_mrid: str, start: int, values: list[int]) -> str:
    readings = "".join(
        f"<Reading><timePeriod><duration>900</duration><start>{start + 900 * i}</start>"
        f"</timePeriod><value>{v}</value></Reading>"
        for i, v in enumerate(values)
    )
    return (
        f"<MirrorMeterReading><mRID>{mrid}</mRID><MirrorReadingSet><mRID>{set_mrid}</mRID>"
        f"<timePeriod><duration>{900 * len(values)}</duration><start>{start}</start></timePeriod>"
        f"{readings}</MirrorReadingSet></MirrorMeterReading>"
    )


def _single(mrid: str, value: int) -> str:
    return (
        f'<MirrorMeterReading xmlns="{NS}"><mRID>{mrid}</mRID><Reading><value>{value}</value>'
        "</Reading></MirrorMeterReading>"
    )


def _as_list(*mmrs: str) -> str:
    return f'<MirrorMeterReadingList xmlns="{NS}">{"".join(mmrs)}</MirrorMeterReadingList>'


def test_full_mirror_flow_reads_back_posted_values(client_for, sep_schema):
    c = client_for("AMI_METER_UTCC_001")
    posted: list[str] = []
    post = c.post

    def post_valid(path: str, body: str):
        posted.append(body)  # what a conforming meter sends: checked against the schema below
        return post(path, body)

    c.post = post_valid
    dcap = c.get("/dcap")
    assert dcap.status == 200 and dcap.doc.get("pollRate") == "900"
    time_resp = c.get(_href(dcap, "TimeLink"))
    assert time_resp.status == 200 and time_resp.text("tzOffset") == "25200"
    assert abs(int(time_resp.text("currentTime")) - time.time()) < 5

    edev_href = c.register()
    edev = c.get(edev_href)
    assert edev.text("lFDI") == c.identity.lfdi and edev.text("sFDI") == str(c.identity.sfdi)
    rg = c.get(_href(edev, "RegistrationLink"))
    assert rg.status == 200 and rg.text("pIN") == "111115"
    fsa_list = c.get(_href(edev, "FunctionSetAssignmentsListLink"))
    assert fsa_list.doc.get("all") == "1" and fsa_list.doc.get("results") == "1"

    mup_list_href = _href(c.get("/dcap"), "MirrorUsagePointListLink")
    mmr = (
        f"<MirrorMeterReading><mRID>{MMR_IMPORT}</mRID><description>import energy</description>"
        f"{reading_type_xml(uom=72, flow=1, power=0)}</MirrorMeterReading>"
        f"<MirrorMeterReading><mRID>{MMR_POWER}</mRID>{reading_type_xml(uom=38, flow=1, power=-1)}"
        "</MirrorMeterReading>"
    )
    created = c.post(mup_list_href, mirror_usage_point_xml(MUP_MRID, c.identity.lfdi, mmr))
    assert created.status == 201
    mup_href = created.headers["location"]
    assert mup_href.startswith("/mup/")

    # A single MirrorMeterReading with one Reading …
    single = (
        f'<MirrorMeterReading xmlns="{NS}"><mRID>{MMR_POWER}</mRID><Reading><qualityFlags>01'
        f"</qualityFlags><timePeriod><duration>0</duration><start>{T0}</start></timePeriod>"
        "<value>-12345</value></Reading></MirrorMeterReading>"
    )
    assert c.post(mup_href, single).status == 201
    # … and a MirrorMeterReadingList carrying a MirrorReadingSet (other tests omit all/results).
    values = [1000, 1250, 1500, 1750]
    as_list = (
        f'<MirrorMeterReadingList xmlns="{NS}" all="1" results="1">'
        f"{_mmr_with_set(MMR_IMPORT, 'BEEF', T0, values)}</MirrorMeterReadingList>"
    )
    assert c.post(mup_href, as_list).status == 201

    # Read side, by links only.
    upt_list = c.get(_href(c.get("/dcap"), "UsagePointListLink") + "?l=10")
    assert upt_list.doc.get("all") == "1"
    upt = upt_list.all("UsagePoint")[0]
    assert upt.find(Q + "mRID").text == MUP_MRID
    assert upt.find(Q + "deviceLFDI").text == c.identity.lfdi
    mr_list = c.get(upt.find(Q + "MeterReadingListLink").get("href") + "?l=10")
    assert mr_list.doc.get("all") == "2" and mr_list.doc.get("results") == "2"
    by_mrid = {m.find(Q + "mRID").text: m for m in mr_list.all("MeterReading")}

    energy = by_mrid[MMR_IMPORT]
    rt = c.get(energy.find(Q + "ReadingTypeLink").get("href"))
    assert (rt.text("uom"), rt.text("flowDirection"), rt.text("powerOfTenMultiplier")) == (
        "72",
        "1",
        "0",
    )
    rs_list = c.get(energy.find(Q + "ReadingSetListLink").get("href"))
    assert rs_list.doc.get("all") == "1"
    rs = rs_list.all("ReadingSet")[0]
    assert rs.find(Q + "mRID").text == "0000000000000000000000000000BEEF"
    readings = c.get(rs.find(Q + "ReadingListLink").get("href") + "?l=100")
    assert readings.doc.get("all") == "4" and readings.doc.get("results") == "4"
    got = [
        (int(r.find(f"{Q}timePeriod/{Q}start").text), int(r.find(Q + "value").text))
        for r in readings.all("Reading")
    ]
    assert got == [(T0 + 900 * i, v) for i, v in enumerate(values)]

    power = by_mrid[MMR_POWER]
    latest = c.get(power.find(Q + "ReadingLink").get("href"))
    assert latest.text("value") == "-12345" and latest.text("qualityFlags") == "0001"
    power_sets = c.get(power.find(Q + "ReadingSetListLink").get("href"))
    one = c.get(power_sets.all("ReadingSet")[0].find(Q + "ReadingListLink").get("href"))
    assert [r.find(Q + "value").text for r in one.all("Reading")] == ["-12345"]

    # The mirror itself reads back with both meter readings and their types.
    mup = c.get(mup_href)
    assert mup.text("deviceLFDI") == c.identity.lfdi
    assert len(mup.all("MirrorMeterReading")) == 2

    assert len(posted) == 4
    for body in posted:
        assert sep_schema.validate(etree.fromstring(body.encode())), sep_schema.error_log


def test_repost_same_mrid_updates_with_204(client_for):
    c = client_for("AMI_METER_UTCC_002")
    c.register()
    doc = mirror_usage_point_xml(
        "11" * 16,
        c.identity.lfdi,
        f"<MirrorMeterReading><mRID>01</mRID>{reading_type_xml()}</MirrorMeterReading>",
    )
    first = c.post("/mup", doc)
    assert first.status == 201
    again = c.post("/mup", doc.replace("<status>1</status>", "<status>0</status>"))
    assert again.status == 204 and again.body == b""
    assert again.headers["location"] == first.headers["location"]
    assert c.get(first.headers["location"]).text("status") == "0"
    assert c.get("/mup").doc.get("all") == "1"


def test_registration_rules(client_for, certs_dir):
    c = client_for("AMI_METER_UTCC_003")
    other = client_for("AMI_METER_UTCC_004")
    # Someone else's LFDI / SFDI → 403; malformed LFDI → 400.
    assert c.post("/edev", c.end_device_xml(lfdi=other.identity.lfdi)).status == 403
    assert c.post("/edev", c.end_device_xml(sfdi=other.identity.sfdi)).status == 403
    bad = c.post("/edev", c.end_device_xml(lfdi="XYZ"))
    assert bad.status == 400 and bad.text("reasonCode") is not None
    # Leading zeros dropped by the client still match.
    lfdi = c.identity.lfdi
    loc = c.post("/edev", c.end_device_xml(lfdi=lfdi.lstrip("0").lower())).headers["location"]
    second = c.post("/edev", c.end_device_xml())
    assert second.status == 409 and second.headers["location"] == loc
    # Mirror before registering → 403; deviceLFDI of another device → 403.
    assert other.post("/mup", mirror_usage_point_xml("22", other.identity.lfdi)).status == 403
    assert c.post("/mup", mirror_usage_point_xml("23", other.identity.lfdi)).status == 403


def test_cross_device_access_is_denied(client_for):
    a = client_for("AMI_METER_UTCC_005")
    b = client_for("AMI_METER_UTCC_006")
    a_edev = a.register()
    b.register()
    mmr = f"<MirrorMeterReading><mRID>05</mRID>{reading_type_xml()}</MirrorMeterReading>"
    a_mup = a.post("/mup", mirror_usage_point_xml("55" * 16, a.identity.lfdi, mmr))
    a_mup_href = a_mup.headers["location"]
    a_upt = a.get("/upt").all("UsagePoint")[0].get("href")
    for path in (
        a_edev,
        a_edev + "/rg",
        a_edev + "/fsa",
        a_mup_href,
        a_upt,
        a_upt + "/mr",
        a_upt + "/mr/1",
        a_upt + "/mr/1/rt",
    ):
        assert b.get(path).status == 404, path
        assert a.get(path).status == 200, path
    reading = _single("05", 1)
    assert b.post(a_mup_href, reading).status == 404
    assert b.delete(a_mup_href).status == 404
    # b cannot take over a's mRID either.
    assert b.post("/mup", mirror_usage_point_xml("55" * 16, b.identity.lfdi)).status == 409
    # Lists show only one's own resources.
    assert b.get("/edev").doc.get("all") == "1"
    assert b.get("/edev?l=10").all("EndDevice")[0].get("href") != a_edev
    assert b.get("/upt").doc.get("all") == "0"


def test_paging_history_bound_and_delete(client_for, server):
    c = client_for("AMI_METER_UTCC_007")
    c.register()
    mmr = f"<MirrorMeterReading><mRID>07</mRID>{reading_type_xml()}</MirrorMeterReading>"
    mup = c.post("/mup", mirror_usage_point_xml("77" * 16, c.identity.lfdi, mmr)).headers[
        "location"
    ]
    # history_per_mirror is 5 in this server: post 8 sets, 5 are kept (most recent first).
    for i in range(8):
        body = _as_list(_mmr_with_set("07", f"{i + 1:X}", T0 + 3600 * i, [i]))
        assert c.post(mup, body).status == 201
    upt = mup.replace("/mup/", "/upt/")
    rs = f"{upt}/mr/1/rs"
    page = c.get(rs)  # default l=1
    assert (page.doc.get("all"), page.doc.get("results")) == ("5", "1")
    assert page.all("ReadingSet")[0].find(f"{Q}timePeriod/{Q}start").text == str(T0 + 3600 * 7)
    page = c.get(rs + "?s=1&l=2")
    starts = [int(s.find(f"{Q}timePeriod/{Q}start").text) for s in page.all("ReadingSet")]
    assert starts == [T0 + 3600 * 6, T0 + 3600 * 5]
    empty = c.get(rs + "?l=0")
    assert (empty.doc.get("all"), empty.doc.get("results")) == ("5", "0")
    after = c.get(rs + f"?a={T0 + 3600 * 6}&l=10")
    assert (after.doc.get("all"), after.doc.get("results")) == ("2", "2")
    assert c.get(rs + "?l=-1").status == 400
    assert c.get(rs + "?s=abc").status == 400
    # Retrying a set with the same mRID replaces it instead of adding one.
    again = _as_list(_mmr_with_set("07", "8", T0 + 3600 * 7, [99]))
    assert c.post(mup, again).status == 201
    assert c.get(rs).doc.get("all") == "5"
    latest_set = c.get(rs).all("ReadingSet")[0].find(Q + "ReadingListLink").get("href")
    assert c.get(latest_set).all("Reading")[0].find(Q + "value").text == "99"
    assert server.registry.counts()["readings_dropped"] >= 3
    # Delete the mirror: its usage point goes too.
    assert c.delete(mup).status == 204
    assert c.get(mup).status == 404 and c.get(upt).status == 404


def test_statuses_for_methods_paths_and_bodies(client_for):
    c = client_for("AMI_METER_UTCC_008")
    edev = c.register()
    assert c.request("PUT", "/dcap").status == 405
    assert c.request("DELETE", "/edev").status == 405
    resp = c.request("PATCH", edev)
    assert resp.status == 405 and "GET" in resp.headers["allow"]
    assert c.get("/nothing-here").status == 404
    assert c.get("/edev/abc").status == 404
    assert c.get("/edev/999999").status == 404
    # New MirrorMeterReading without a ReadingType → 400 and nothing stored.
    mup = c.post("/mup", mirror_usage_point_xml("88" * 16, c.identity.lfdi)).headers["location"]
    no_type = _single("09", 5)
    assert c.post(mup, no_type).status == 400
    assert len(c.get(mup).all("MirrorMeterReading")) == 0
    # Wrong root and wrong types → 400 with an Error body.
    wrong_root = c.post("/mup", f'<EndDevice xmlns="{NS}"><sFDI>1</sFDI></EndDevice>')
    assert wrong_root.status == 400 and wrong_root.doc.tag == Q + "Error"
    wrong_type = c.post(
        "/mup", mirror_usage_point_xml("89", c.identity.lfdi).replace(">1</status>", ">x</status>")
    )
    assert wrong_type.status == 400
    # DeviceInformation: 404 until PUT, then read back.
    di = (
        f'<DeviceInformation xmlns="{NS}"><lFDI>{c.identity.lfdi}</lFDI><mfDate>0</mfDate>'
        "<mfHwVer>1.0</mfHwVer><mfID>37244</mfID><mfModel>GTX-SIM</mfModel>"
        "<mfSerNum>AMI_METER_UTCC_008</mfSerNum><primaryPower>1</primaryPower>"
        "<secondaryPower>0</secondaryPower><swActTime>0</swActTime><swVer>0.1</swVer>"
        "</DeviceInformation>"
    )
    assert c.get(edev + "/di").status == 404
    assert c.put(edev + "/di", di).status == 204
    assert c.get(edev + "/di").text("mfSerNum") == "AMI_METER_UTCC_008"


HOSTILE = {
    "entity expansion": (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        f'<MirrorUsagePoint xmlns="{NS}"><mRID>&lol3;</mRID></MirrorUsagePoint>'
    ).encode(),
    "external entity": (
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<MirrorUsagePoint xmlns="{NS}"><mRID>&x;</mRID></MirrorUsagePoint>'
    ).encode(),
    "dtd": (
        '<!DOCTYPE MirrorUsagePoint SYSTEM "http://127.0.0.1:9/x.dtd">'
        f'<MirrorUsagePoint xmlns="{NS}"/>'
    ).encode(),
    "deep nesting": f'<MirrorUsagePoint xmlns="{NS}">'.encode()
    + b"<a>" * 5000
    + b"</a>" * 5000
    + b"</MirrorUsagePoint>",
    "moderately deep": f'<MirrorUsagePoint xmlns="{NS}">'.encode()
    + b"<a>" * 40
    + b"</a>" * 40
    + b"</MirrorUsagePoint>",
    "wrong namespace": (
        b'<MirrorUsagePoint xmlns="urn:example:other"><mRID>01</mRID></MirrorUsagePoint>'
    ),
    "no namespace": b"<MirrorUsagePoint><mRID>01</mRID></MirrorUsagePoint>",
    "garbage": bytes(range(256)) * 8,
    "utf-16": '<MirrorUsagePoint xmlns="urn:ieee:std:2030.5:ns"/>'.encode("utf-16"),
    "empty": b"",
    "json": b'{"mRID": "01"}',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bodies_get_4xx_quickly(name, client_for):
    c = client_for("AMI_METER_UTCC_009")
    started = time.perf_counter()
    resp = c.post("/mup", HOSTILE[name])
    assert 400 <= resp.status < 500, (name, resp.status)
    assert time.perf_counter() - started < 2.0
    assert c.get("/dcap").status == 200  # the same connection keeps working


def test_ten_megabyte_body_is_refused_and_server_keeps_serving(server, certs_dir, client_for):
    creds = device_credentials(certs_dir, "AMI_METER_UTCC_010")
    ctx = client_context(creds.ca, creds.cert_chain, creds.key)
    url = f"https://localhost:{server.port}/mup"
    body = b"<MirrorUsagePoint>" + b"x" * (10 * 1024 * 1024) + b"</MirrorUsagePoint>"

    async def upload(chunked: bool) -> int:
        async def chunks():
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
            data = chunks() if chunked else body
            try:
                async with s.post(url, data=data, headers={"Content-Type": MEDIA_TYPE}) as r:
                    return r.status
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                return -1

    for chunked in (False, True):
        started = time.perf_counter()
        status = asyncio.run(upload(chunked))
        assert status == 413, (chunked, status)
        assert time.perf_counter() - started < 5.0
    assert client_for("AMI_METER_UTCC_010").get("/dcap").status == 200
