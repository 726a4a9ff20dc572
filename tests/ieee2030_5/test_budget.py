"""Each device's memory budget: what the registry really holds stays within the stated figure,
old readings are retired by documented retention, and a POST that can never fit is refused
whole. The first test runs on the registry itself (measured with tracemalloc), the others over
real mutual TLS."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from gtx_ray.ieee2030_5.codec import NS
from gtx_ray.ieee2030_5.identity import DeviceIdentity
from gtx_ray.ieee2030_5.models import (
    EndDeviceIn,
    MirrorMeterReading,
    MirrorUsagePoint,
    Reading,
    ReadingSet,
    ReadingType,
)
from gtx_ray.ieee2030_5.server import budget
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.managers import edev, mirror
from gtx_ray.ieee2030_5.server.registry import Registry, RegistryLimits
from tests.ieee2030_5.helpers import Q, Sep2Client, ThreadedServer, mirror_usage_point_xml

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
RT = ReadingType(accumulation_behaviour=12, commodity=1, flow_direction=1, kind=37, uom=38)


def _fill_device(reg: Registry, d: int, readings_per_set: int, posts: int) -> None:
    """Device ``d`` registers, mirrors six quantities and posts ``posts`` times, every post one
    set per quantity: what a simulated meter does, through the managers."""
    lfdi = f"{d + 1:040X}"
    who = DeviceIdentity(lfdi, 0)
    edev.register(reg, DeviceIdentity(lfdi, 10), T0, EndDeviceIn(sfdi=10))
    quantities = [MirrorMeterReading(mrid=(d << 8) + q, reading_type=RT) for q in range(6)]
    mup = MirrorUsagePoint(d + 1, lfdi, 0x49, 0, 1, meter_readings=tuple(quantities))
    mup_id = int(mirror.create_or_update(reg, who, T0, mup).location.rsplit("/", 1)[1])
    for p in range(posts):
        start = T0 + 900 * readings_per_set * p
        sets = tuple(
            MirrorMeterReading(
                mrid=(d << 8) + q,
                reading_sets=(
                    ReadingSet(
                        (p << 8) + q,
                        start,
                        900 * readings_per_set,
                        tuple(
                            Reading(100_000 + 37 * i + p, start + 900 * i, 900)
                            for i in range(readings_per_set)
                        ),
                    ),
                ),
            )
            for q in range(6)
        )
        mirror.post_readings(reg, who, start, mup_id, sets)  # raises if not accepted


@pytest.mark.parametrize("readings_per_set", [1, 8])
def test_full_devices_stay_within_the_stated_budget(readings_per_set):
    limits = RegistryLimits()  # the defaults the README states
    reg = Registry(limits=limits)
    n = 100
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for d in range(n):
            _fill_device(reg, d, readings_per_set, posts=300 // readings_per_set)
        gc.collect()  # retired sets still waiting for the collector are not held
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_device = held / n
    stated = budget.total_budget_bytes(1, limits.max_bytes_per_device)
    print(f"{readings_per_set}-reading sets: {per_device:.0f} B per full device")
    assert per_device <= stated, (per_device, stated)
    # Every device was filled past its budget and trimmed back to it, nothing refused.
    counts = reg.counts()
    assert counts["readings_dropped"] > 0
    assert counts["readings_mirrored"] - counts["readings_dropped"] <= n * 192
    for d in range(n):
        held_by = reg.budget_of(f"{d + 1:040X}")
        assert held_by.bytes <= limits.max_bytes_per_device
        assert held_by.readings <= limits.max_readings_per_device
        # Not over-trimmed: one set fewer retired would have been over the budget.
        assert (
            held_by.bytes > limits.max_bytes_per_device - budget.set_bytes(readings_per_set)
            or held_by.readings > limits.max_readings_per_device - readings_per_set
        )
    # The stated figure for the README: 100,000 devices.
    assert budget.total_budget_bytes(100_000, limits.max_bytes_per_device) < 3.2 * 2**30


@pytest.fixture(scope="module")
def small_server(certs_dir):
    """A server whose devices may keep 40 readings and 6 hours."""
    config = Ieee2030_5Config(
        certs_dir=certs_dir, port=0, max_readings_per_device=40, retention_s=6 * 3600
    )
    srv = ThreadedServer(config)
    yield srv
    srv.stop()


def _client(small_server, certs_dir, sep_schema, meter: str) -> Sep2Client:
    c = Sep2Client(small_server.port, certs_dir, meter, sep_schema)
    c.register()
    mmr = (
        "<MirrorMeterReading><mRID>0A</mRID><ReadingType><accumulationBehaviour>12"
        "</accumulationBehaviour><kind>37</kind><uom>38</uom></ReadingType></MirrorMeterReading>"
    )
    mrid = c.identity.lfdi[:32]
    assert c.post("/mup", mirror_usage_point_xml(mrid, c.identity.lfdi, mmr)).status == 201
    return c


def _set(set_mrid: int, start: int, values: list[int], step: int = 900) -> str:
    """A MirrorMeterReading with one set of ``values``, ``step`` seconds apart from ``start``."""
    readings = "".join(
        f"<Reading><timePeriod><duration>{step}</duration><start>{start + step * i}</start>"
        f"</timePeriod><value>{v}</value></Reading>"
        for i, v in enumerate(values)
    )
    return (
        f'<MirrorMeterReading xmlns="{NS}"><mRID>0A</mRID><MirrorReadingSet>'
        f"<mRID>{set_mrid:X}</mRID><timePeriod><duration>{step * len(values)}</duration>"
        f"<start>{start}</start></timePeriod>{readings}</MirrorReadingSet></MirrorMeterReading>"
    )


def _kept_starts(c: Sep2Client) -> list[int]:
    """Start times of the reading sets the server keeps for the client's meter reading."""
    upt = c.get("/mup").all("MirrorUsagePoint")[0].get("href").replace("/mup/", "/upt/")
    page = c.get(f"{upt}/mr/1/rs?l=1000")
    return sorted(int(s.find(f"{Q}timePeriod/{Q}start").text) for s in page.all("ReadingSet"))


def test_oldest_readings_are_retired_and_every_post_is_kept(small_server, certs_dir, sep_schema):
    c = _client(small_server, certs_dir, sep_schema, "AMI_METER_UTCC_013")
    try:
        mup = c.get("/mup").all("MirrorUsagePoint")[0].get("href")
        # 10 sets of 8 one-minute readings (well inside the 6 h retention): 80 readings, twice
        # the device's budget of 40.
        for k in range(10):
            start = T0 + 8 * 60 * k
            assert c.post(mup, _set(k + 1, start, [k] * 8, step=60)).status == 201
            assert start in _kept_starts(c)  # what was just acknowledged is there
        kept = _kept_starts(c)
        assert kept == [T0 + 8 * 60 * k for k in range(5, 10)]  # the newest 40 readings
        assert small_server.registry.budget_of(c.identity.lfdi).readings == 40
    finally:
        c.close()


def test_retention_by_age(small_server, certs_dir, sep_schema):
    c = _client(small_server, certs_dir, sep_schema, "AMI_METER_UTCC_014")
    try:
        mup = c.get("/mup").all("MirrorUsagePoint")[0].get("href")
        assert c.post(mup, _set(1, T0, [1])).status == 201
        assert c.post(mup, _set(2, T0 + 3 * 3600, [2])).status == 201
        assert _kept_starts(c) == [T0, T0 + 3 * 3600]
        assert c.post(mup, _set(3, T0 + 7 * 3600, [3])).status == 201  # T0 is now > 6 h old
        assert _kept_starts(c) == [T0 + 3 * 3600, T0 + 7 * 3600]
    finally:
        c.close()


def test_a_post_larger_than_the_budget_is_refused_whole(small_server, certs_dir, sep_schema):
    c = _client(small_server, certs_dir, sep_schema, "AMI_METER_UTCC_015")
    try:
        mup = c.get("/mup").all("MirrorUsagePoint")[0].get("href")
        assert c.post(mup, _set(1, T0, [1] * 8)).status == 201
        resp = c.post(mup, _set(2, T0 + 8 * 900, list(range(41))))
        assert resp.status == 413 and resp.text("reasonCode") == "2"
        assert "41 readings" in resp.reason and "40 readings" in resp.reason, resp.reason
        assert _kept_starts(c) == [T0]  # nothing of it stored, nothing older retired for it
    finally:
        c.close()
