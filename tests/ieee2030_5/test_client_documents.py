"""The 2030.5 client's pure parts: wire values and their rounding, mRIDs, the documents it posts
(valid against the official schema and read back by the server's own parser), the server URL."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from gtx_ray.errors import ConfigError
from gtx_ray.fleet import MeterArrays
from gtx_ray.ieee2030_5.client.documents import (
    end_device_document,
    meter_reading_mrid,
    mirror_mrid,
    mirror_usage_point_document,
    reading_set_mrid,
    readings_document,
)
from gtx_ray.ieee2030_5.client.quantities import (
    POWER_OF_TEN,
    QUANTITIES,
    QUANTITY_KEYS,
    from_wire,
    si_values,
    to_wire,
    wire_values,
)
from gtx_ray.ieee2030_5.client.settings import dcap_url
from gtx_ray.ieee2030_5.codec import INT48_MAX, parse_document
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.server.mappers.edev import parse_end_device
from gtx_ray.ieee2030_5.server.mappers.mirror import parse_meter_readings, parse_mirror_usage_point
from gtx_ray.model.meters import MeterModel

IDENT = DeviceIdentity("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5", 167261211391)
T0 = 1_767_225_600


def _valid(schema: etree.XMLSchema, body: bytes) -> etree._Element:
    doc = etree.fromstring(body)
    assert schema.validate(doc), f"{schema.error_log.last_error}\n{body.decode()[:1500]}"
    return doc


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_wire_rounding_is_within_half_a_unit(x):
    wire, ok = to_wire(np.array([x]))
    assert ok.all() and wire.dtype == np.int64
    assert abs(from_wire(int(wire[0])) - x) <= 0.5 * 10.0**POWER_OF_TEN * (1 + 1e-9) + 1e-9 * abs(x)


def test_unrepresentable_values_are_flagged():
    wire, ok = to_wire(np.array([[1.0, np.nan], [2.0, 3.0], [INT48_MAX, 0.0]]))
    assert ok.tolist() == [False, True, False]
    assert wire[1].tolist() == [2000, 3000]


def test_wire_values_follow_the_reading_schema(campus):
    model = MeterModel(MeterArrays.from_specs(campus.meters), campus, 3, 900)
    batch = model.step(model.initial_state(T0), 4).batch
    si = si_values(batch)
    wire, ok = wire_values(batch)
    assert ok.all() and wire.shape == (batch.num_rows, len(QUANTITIES))
    col = {n: batch.column(n).to_numpy(zero_copy_only=False) for n in batch.schema.names}
    battery = np.nan_to_num(col["battery_power"], nan=0.0)
    grid_w = (col["energy_consumed"] - col["energy_generated"] + battery) * 1000
    np.testing.assert_allclose(si[:, 0], grid_w)
    # grid power × hours closes with the interval's import − export energy (principle 5)
    np.testing.assert_allclose(
        si[:, 0] * 0.25 / 1000, col["energy_import_kwh"] - col["energy_export_kwh"], atol=1e-9
    )
    np.testing.assert_array_equal(si[:, 1], col["voltage"])
    np.testing.assert_array_equal(si[:, 4], col["import_register_kwh"] * 1000)
    np.testing.assert_array_equal(wire[:, 3], np.rint(col["power_factor"] * 1000))
    assert QUANTITY_KEYS == (
        "power",
        "voltage",
        "current",
        "power_factor",
        "import_wh",
        "export_wh",
    )


def test_reading_types_use_the_standard_codes():
    rt = {q.key: q.reading_type for q in QUANTITIES}
    assert [rt[k].uom for k in QUANTITY_KEYS] == [38, 29, 5, 65, 72, 72]
    assert rt["import_wh"].flow_direction == 1 and rt["export_wh"].flow_direction == 19
    assert rt["power"].kind == 37 and rt["import_wh"].kind == 12 == rt["export_wh"].kind
    assert all(rt[k].accumulation_behaviour == 12 for k in QUANTITY_KEYS[:4])
    assert all(rt[k].accumulation_behaviour == 9 for k in QUANTITY_KEYS[4:])
    assert all(r.power_of_ten_multiplier == -3 and r.commodity == 1 for r in rt.values())
    assert all(len(q.description) <= 32 for q in QUANTITIES)


def test_mrids_are_deterministic_and_distinct():
    assert mirror_mrid("M1") == mirror_mrid("M1") != mirror_mrid("M2")
    assert mirror_mrid("M1", pen=0xABCD) & 0xFFFFFFFF == 0xABCD
    keys = {meter_reading_mrid("M1", k) for k in QUANTITY_KEYS}
    assert len(keys) == len(QUANTITY_KEYS)
    assert reading_set_mrid("M1", "power", T0, 60) != reading_set_mrid("M1", "power", T0, 75)
    assert mirror_mrid("M1") < 2**128


def test_documents_are_schema_valid_and_read_back_by_the_server(sep_schema):
    body = end_device_document(IDENT, 1_800_000_000)
    _valid(sep_schema, body)
    ed = parse_end_device(parse_document(body))
    assert (ed.lfdi, ed.sfdi) == (IDENT.lfdi, IDENT.sfdi)

    mup = parse_mirror_usage_point(
        parse_document(mirror_usage_point_document("M1", IDENT.lfdi, 15))
    )
    _valid(sep_schema, mirror_usage_point_document("M1", IDENT.lfdi, 15))
    assert mup.mrid == mirror_mrid("M1") and mup.device_lfdi == IDENT.lfdi
    assert mup.role_flags == 0x41 and mup.service_category_kind == 0 and mup.status == 1
    assert mup.post_rate is None  # the server's postRate applies
    assert [m.mrid for m in mup.meter_readings] == [
        meter_reading_mrid("M1", k) for k in QUANTITY_KEYS
    ]
    assert all(m.reading_type.interval_length == 15 for m in mup.meter_readings)

    values = tuple(range(-3, 3))
    single = readings_document("M1", [(T0, values)], 15, 1_800_000_000, 1_800_000_015)
    _valid(sep_schema, single)
    mmrs = parse_meter_readings(parse_document(single))
    assert [m.reading.value for m in mmrs] == list(values)
    assert all(m.reading.time_start == T0 and m.reading.duration == 15 for m in mmrs)
    assert all(not m.reading_sets for m in mmrs)

    rows = [(T0 + 15 * i, tuple(10 * i + k for k in range(6))) for i in (2, 0, 1)]
    several = readings_document("M1", rows, 15)
    _valid(sep_schema, several)
    mmrs = parse_meter_readings(parse_document(several))
    for k, m in enumerate(mmrs):
        assert m.reading is None and len(m.reading_sets) == 1
        rs = m.reading_sets[0]
        assert (rs.start, rs.duration) == (T0, 45)
        assert rs.mrid == reading_set_mrid("M1", QUANTITY_KEYS[k], T0, 45)
        assert [(r.time_start, r.value) for r in rs.readings] == [
            (T0 + 15 * i, 10 * i + k) for i in range(3)
        ]
    with pytest.raises(ValueError):
        readings_document("M1", [], 15)


def test_dcap_url():
    assert str(dcap_url("https://127.0.0.1:8443")) == "https://127.0.0.1:8443/dcap"
    assert str(dcap_url("https://h:1/sep2/")) == "https://h:1/sep2/dcap"
    assert str(dcap_url("https://h/sep2/dcap?x=1")) == "https://h/sep2/dcap"
    for bad in ("http://h:8443", "h:8443", "https:///dcap"):
        with pytest.raises(ConfigError, match="https"):
            dcap_url(bad)


def test_si_values_treat_a_missing_battery_as_zero():
    from gtx_ray.readings import READING_SCHEMA

    row = {f.name: 0.0 for f in READING_SCHEMA}
    row.update(
        timestamp=T0,
        meter_id="M",
        building="B",
        floor=1,
        meter_type="consumer",
        energy_consumed=2.5,
        energy_generated=1.0,
        battery_power=None,
        battery_level=None,
        solar_generation=None,
        voltage=230.0004,
        import_register_kwh=12.3456789,
    )
    batch = pa.RecordBatch.from_pylist([row], schema=READING_SCHEMA)
    wire, ok = wire_values(batch)
    assert ok.all()
    assert wire[0].tolist() == [1_500_000, 230_000, 0, 0, 12_345_679, 0]
