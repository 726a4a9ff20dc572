"""The XML codec (pure): safe parsing, leniency where clients differ, strictness where it
matters, and rendered documents valid against the official schema."""

from __future__ import annotations

import pytest
from lxml import etree

from gtx_ray.ieee2030_5.codec import NS, XmlError, parse_document
from gtx_ray.ieee2030_5.elements import render_error
from gtx_ray.ieee2030_5.models import (
    EndDeviceView,
    MeterReadingView,
    Page,
    Reading,
    ReadingSet,
    ReadingSetView,
    ReadingType,
    UsagePointView,
)
from gtx_ray.ieee2030_5.server.managers.dcap import DeviceCapabilityView, TimeView
from gtx_ray.ieee2030_5.server.mappers import dcap as dcap_map
from gtx_ray.ieee2030_5.server.mappers import edev as edev_map
from gtx_ray.ieee2030_5.server.mappers import metering as metering_map
from gtx_ray.ieee2030_5.server.mappers import mirror as mirror_map
from tests.ieee2030_5.helpers import mirror_usage_point_xml, reading_type_xml

LFDI = "00AB" + "C" * 36


def parse(text: str | bytes):
    return parse_document(text.encode() if isinstance(text, str) else text)


def test_lenient_mirror_usage_point():
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<m:MirrorUsagePoint xmlns:m="{NS}" xmlns:x="urn:vendor:ext" xmlns:xsi='
        '"http://www.w3.org/2001/XMLSchema-instance">'
        "<m:deviceLFDI>ab" + "c" * 36 + "</m:deviceLFDI>"  # leading zeros dropped, lower case
        "<m:mRID>F</m:mRID><x:vendorThing>ignored</x:vendorThing>"
        "<m:roleFlags>9</m:roleFlags><m:status>1</m:status>"
        "<m:serviceCategoryKind>0</m:serviceCategoryKind></m:MirrorUsagePoint>"
    )
    mup = mirror_map.parse_mirror_usage_point(parse(doc))
    assert (mup.mrid, mup.device_lfdi, mup.role_flags, mup.status) == (15, LFDI, 9, 1)


def test_mirror_meter_reading_list_without_all_and_results():
    doc = (
        f'<MirrorMeterReadingList xmlns="{NS}"><MirrorMeterReading><mRID>01</mRID>'
        "<Reading><value>-5</value></Reading></MirrorMeterReading><MirrorMeterReading>"
        "<mRID>02</mRID><MirrorReadingSet><mRID>03</mRID><timePeriod><duration>900</duration>"
        "<start>100</start></timePeriod><Reading><value>7</value></Reading></MirrorReadingSet>"
        "</MirrorMeterReading></MirrorMeterReadingList>"
    )
    first, second = mirror_map.parse_meter_readings(parse(doc))
    assert first.reading == Reading(value=-5)
    assert second.reading_sets == (ReadingSet(3, 100, 900, (Reading(value=7),)),)


@pytest.mark.parametrize(
    "doc, needle",
    [
        (f'<EndDevice xmlns="{NS}"><sFDI>1</sFDI></EndDevice>', "expected MirrorUsagePoint"),
        ("<MirrorUsagePoint/>", "namespace"),
        (mirror_usage_point_xml("01", LFDI).replace("<status>1", "<status>256"), "outside"),
        (mirror_usage_point_xml("01", LFDI).replace("<status>1", "<status>one"), "not an int"),
        (mirror_usage_point_xml("1" + "0" * 32, LFDI), "mRID: longer than 16 bytes"),
        (mirror_usage_point_xml("01", "Z" + LFDI[1:]), "not hexBinary"),
        (mirror_usage_point_xml("01", LFDI).replace("<status>1</status>", ""), "required"),
        (mirror_usage_point_xml("01", LFDI, "<MirrorMeterReading/>"), "mRID is required"),
        (
            mirror_usage_point_xml(
                "01",
                LFDI,
                "<MirrorMeterReading><mRID>1</mRID><Reading><value>140737488355329</value>"
                "</Reading></MirrorMeterReading>",
            ),
            "outside",
        ),
        (
            mirror_usage_point_xml(
                "01",
                LFDI,
                "<MirrorMeterReading><mRID>1</mRID><Reading><value>" + "7" * 5000 + "</value>"
                "</Reading></MirrorMeterReading>",
            ),
            r"Reading/value: 7{20}… \(5000 digits\) is outside",
        ),
    ],
)
def test_strict_where_it_matters(doc, needle):
    with pytest.raises(XmlError, match=needle):
        mirror_map.parse_mirror_usage_point(parse(doc))


def test_leading_zeros_however_many():
    doc = mirror_usage_point_xml("0" * 5000 + "1", LFDI).replace(
        "<status>1<", "<status>" + "0" * 5000 + "1<"
    )
    mup = mirror_map.parse_mirror_usage_point(parse(doc))
    assert (mup.mrid, mup.status) == (1, 1)


@pytest.mark.parametrize(
    "body, needle",
    [
        (b'<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>', "DTD"),
        (b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/a.dtd"><a/>', "DTD"),
        (b"<a>" * 17 + b"</a>" * 17, "deeper than 16"),
        (b"<a>" * 1000 + b"</a>" * 1000, "XML"),
        (b"x" * 300_000, "over the limit"),
        (b"", "empty"),
        ("<a/>".encode("utf-16"), "UTF-8"),
        (b"<a><b></a>", "well-formed"),
    ],
)
def test_unsafe_documents_are_refused(body, needle):
    with pytest.raises(XmlError, match=needle):
        parse(body)


def _valid(schema, data: bytes) -> None:
    doc = etree.fromstring(data)
    assert schema.validate(doc), f"{schema.error_log.last_error}\n{data.decode()}"


def test_rendered_documents_are_schema_valid(sep_schema):
    rt = ReadingType(
        accumulation_behaviour=4,
        flow_direction=19,
        power_of_ten_multiplier=-3,
        uom=72,
        tiered_consumption_blocks=False,
        supply_limit=2**48 - 1,
    )
    reading = Reading(
        value=-(2**47),
        time_start=0,
        duration=900,
        quality_flags=1,
        local_id=2,
        tou_tier=1,
        consumption_block=0,
    )
    mr = MeterReadingView(1, 2**128 - 1, rt, "d" * 32, 65535, 1, 2, 3, reading)
    upt = UsagePointView(3, 0, LFDI, 0xFFFF, 255, 0, 900, None, None, (mr,))
    device = EndDeviceView(1, LFDI, 687194767359, 0, 0, 111115, True, 60, 60, 0xFFFFFFFF, True)
    rs = ReadingSetView(1, ReadingSet(1, 0, 900, (reading, Reading())))
    for data in (
        render_error(0),
        dcap_map.render_device_capability(DeviceCapabilityView(900, 1, 2, 3)),
        dcap_map.render_time(TimeView(2**40, -43200, 1)),
        edev_map.render_end_device(device),
        edev_map.render_end_device_list(Page((device,), 1), 900),
        edev_map.render_end_device_list(Page((), 0), 900),
        edev_map.render_fsa_list(1, Page((1,), 1), 900),
        edev_map.render_fsa(1, 1),
        mirror_map.render_mirror(upt),
        mirror_map.render_mirror_list(Page((upt, upt), 7), 900),
        metering_map.render_usage_point_list(Page((upt,), 1), 900),
        metering_map.render_meter_reading_list(3, Page((mr,), 1)),
        metering_map.render_reading_type("/upt/3/mr/1/rt", rt),
        metering_map.render_reading("/upt/3/mr/1/r", reading),
        metering_map.render_reading_set_list("/upt/3/mr/1/rs", Page((rs,), 1)),
        metering_map.render_reading_list("/x", Page(((0, reading), (1, Reading())), 2)),
    ):
        _valid(sep_schema, data)


def test_the_schema_check_has_teeth(sep_schema):
    wrong_order = (
        f'<EndDevice xmlns="{NS}"><sFDI>1</sFDI><lFDI>{LFDI}</lFDI>'
        "<changedTime>0</changedTime></EndDevice>"
    )
    assert not sep_schema.validate(etree.fromstring(wrong_order.encode()))


def test_reading_type_round_trip():
    doc = parse(f'<ReadingType xmlns="{NS}">{reading_type_xml(38, 19, -2)[13:]}')
    from gtx_ray.ieee2030_5.elements import parse_reading_type

    rt = parse_reading_type(doc)
    assert (rt.uom, rt.flow_direction, rt.power_of_ten_multiplier) == (38, 19, -2)
