"""Meters as IEEE 2030.5 clients against the real server on real mutual-TLS sockets (loopback).

The campus's 25 meters register 25 devices with their certificates' LFDIs and mirror their
readings, which read back through the server's UsagePoint side equal the Arrow readings; every
body the clients post validates against the official schema; a server restart is survived with
the gap reported; a PIN mismatch fails cleanly; full queues drop the oldest with a counter; a slow
or absent server never blocks ``submit``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from gtx_ray.fleet import MeterArrays
from gtx_ray.ieee2030_5.client.documents import meter_reading_mrid
from gtx_ray.ieee2030_5.client.fleet import MeterClients
from gtx_ray.ieee2030_5.client.quantities import (
    QUANTITIES,
    QUANTITY_KEYS,
    from_wire,
    si_values,
    wire_values,
)
from gtx_ray.ieee2030_5.client.settings import ClientSettings
from gtx_ray.ieee2030_5.pki import CertsLayout, init_certs
from gtx_ray.ieee2030_5.pki.cli import certs_main
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.model.meters import MeterModel
from tests.ieee2030_5.helpers import Q, Sep2Client, ThreadedServer

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, a multiple of 60 s
INTERVAL_S = 15
PIN = 111115


@pytest.fixture(scope="module")
def campus_certs(tmp_path_factory, campus) -> tuple[Path, list[str]]:
    """Certificates for the campus's 25 meters, from ``pki.init_certs``."""
    path = tmp_path_factory.mktemp("client_certs")
    ids = [m.meter_id for m in campus.meters]
    init_certs(path, ids)
    return path, ids


@pytest.fixture(scope="module")
def model(campus) -> MeterModel:
    return MeterModel(MeterArrays.from_specs(campus.meters), campus, 11, INTERVAL_S)


def _server(certs: Path, port: int = 0, **overrides) -> ThreadedServer:
    config = dict(certs_dir=certs, port=port, post_rate_s=1, poll_rate_s=2, history_per_mirror=100)
    config.update(overrides)
    return ThreadedServer(Ieee2030_5Config(**config))


def _settings(**overrides) -> ClientSettings:
    values = dict(
        backoff_base_s=0.05,
        backoff_cap_s=0.4,
        connect_timeout_s=10.0,  # generous: CI machines can be loaded
        request_timeout_s=20.0,
    )
    values.update(overrides)
    return ClientSettings(**values)


def _wait(pred: Callable[[], bool], timeout: float, what: Callable[[], object]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {what()}")
        time.sleep(0.05)


def _by_meter(status: list[dict]) -> dict[str, dict]:
    return {s["meter_id"]: s for s in status}


def _expected(batch, meter_id: str) -> tuple[dict[int, tuple[int, ...]], dict[int, np.ndarray]]:
    """Wire values and SI values by interval start for one meter of a batch."""
    wire, ok = wire_values(batch)
    si = si_values(batch)
    assert ok.all()
    starts = batch.column("timestamp").cast("int64").to_numpy()
    ids = np.array(batch.column("meter_id").to_pylist())
    rows = np.flatnonzero(ids == meter_id)
    return (
        {int(starts[r]): tuple(int(v) for v in wire[r]) for r in rows},
        {int(starts[r]): si[r] for r in rows},
    )


def _read_back(c: Sep2Client) -> dict[int, tuple[dict[str, int], dict[int, int]]]:
    """Through the read side: MeterReading mRID → (ReadingType fields, {start: value})."""
    dcap = c.get("/dcap")
    ups = c.get(dcap.doc.find(Q + "UsagePointListLink").get("href") + "?l=10").all("UsagePoint")
    assert len(ups) == 1, "one UsagePoint per meter"
    mr_list = ups[0].find(Q + "MeterReadingListLink").get("href")
    out = {}
    for mr in c.get(mr_list + "?l=100").all("MeterReading"):
        mrid = int(mr.find(Q + "mRID").text, 16)
        rt_doc = c.get(mr.find(Q + "ReadingTypeLink").get("href")).doc
        rt = {etree.QName(e).localname: int(e.text) for e in rt_doc}
        values: dict[int, int] = {}
        sets = c.get(mr.find(Q + "ReadingSetListLink").get("href") + "?l=1000").all("ReadingSet")
        for rs in sets:
            readings = c.get(rs.find(Q + "ReadingListLink").get("href") + "?l=1000").all("Reading")
            for r in readings:
                start = int(r.find(f"{Q}timePeriod/{Q}start").text)
                assert int(r.find(f"{Q}timePeriod/{Q}duration").text) == INTERVAL_S
                values[start] = int(r.find(Q + "value").text)
        out[mrid] = (rt, values)
    return out


def test_campus_meters_register_and_mirror_exact_values(campus_certs, model, sep_schema, capsys):
    certs, ids = campus_certs
    posted: list[tuple[str, str, bytes]] = []
    lock = threading.Lock()

    def observe(method: str, url: str, body: bytes) -> None:
        with lock:
            posted.append((method, url, body))

    first = model.step(model.initial_state(T0), 1)
    rest = model.step(first.state, 6)
    server = _server(certs)
    try:
        clients = MeterClients(
            certs,
            ids,
            f"https://127.0.0.1:{server.port}",
            pin=PIN,
            interval_s=INTERVAL_S,
            settings=_settings(observe=observe),
        )
        try:
            clients.start()
            assert clients.submit(first.batch) == 25  # queued before registration: kept
            assert clients.wait_registered(30), clients.summary()
            _wait(
                lambda: all(s["readings_posted"] == 1 for s in clients.status()),
                30,
                clients.summary,
            )
            assert clients.submit(rest.batch) == 25 * 6
            _wait(
                lambda: all(s["readings_posted"] == 7 for s in clients.status()),
                30,
                clients.summary,
            )
            _wait(lambda: all(s["polls"] >= 1 for s in clients.status()), 30, clients.summary)
            status = _by_meter(clients.status())
        finally:
            final = clients.stop(5)
        assert all(s["state"] == "stopped" for s in final)
        mirrored = {}
        for meter_id in ids:  # the read side, as another 2030.5 client of the meter sees it
            c = Sep2Client(server.port, certs, meter_id, sep_schema)
            try:
                mirrored[meter_id] = _read_back(c)
            finally:
                c.close()
    finally:
        server.stop()

    # 25 distinct devices whose LFDIs are those `certs show` prints for the certificate files
    shown = {}
    for meter_id in ids:
        assert certs_main(["show", "--json", str(CertsLayout(certs).device_cert(meter_id))]) == 0
        info = json.loads(capsys.readouterr().out)
        shown[meter_id] = (info["lfdi"], info["sfdi"])
    assert {d.lfdi for d in server.registry.devices()} == {lfdi for lfdi, _ in shown.values()}
    assert len(server.registry.devices()) == 25
    assert len({s["end_device_href"] for s in status.values()}) == 25
    assert len({s["mirror_usage_point_href"] for s in status.values()}) == 25
    for meter_id, s in status.items():
        assert (s["lfdi"], s["sfdi"]) == shown[meter_id]
        assert s["registered"] and s["registrations"] == 1 and s["last_error"] is None
        assert s["posts_ok"] == 2 and s["posts_failed"] == 0  # one single, one reading set
        assert s["readings_dropped"] == 0 and s["readings_queued"] == 0
        assert s["post_rate_s"] == 1 and s["poll_rate_s"] == 2
        assert abs(s["clock_offset_s"]) < 2
    assert server.registry.readings_mirrored == 25 * 7 * len(QUANTITIES)

    # every body posted validates against the official schema
    kinds = {etree.QName(etree.fromstring(b)).localname for _, _, b in posted}
    assert kinds == {"EndDevice", "MirrorUsagePoint", "MirrorMeterReadingList"}
    for method, url, body in posted:
        doc = etree.fromstring(body)
        assert sep_schema.validate(doc), f"{method} {url}: {sep_schema.error_log.last_error}"
    lists = [b for _, _, b in posted if b.find(b"<MirrorMeterReadingList") >= 0]
    assert len(lists) == 50
    assert sum(b.find(b"<MirrorReadingSet>") >= 0 for b in lists) == 25  # several intervals
    assert sum(b.count(b"<Reading>") == 6 for b in lists) == 25  # one interval: single Readings

    # mirrored values on the read side equal the Arrow readings of the same meter and interval
    for meter_id in ids:
        wire_1, si_1 = _expected(first.batch, meter_id)
        wire_n, si_n = _expected(rest.batch, meter_id)
        wire, si = {**wire_1, **wire_n}, {**si_1, **si_n}
        assert len(mirrored[meter_id]) == len(QUANTITIES)
        for k, q in enumerate(QUANTITIES):
            rt, values = mirrored[meter_id][meter_reading_mrid(meter_id, q.key)]
            assert rt["uom"] == q.reading_type.uom
            assert rt["powerOfTenMultiplier"] == -3
            assert rt["intervalLength"] == INTERVAL_S
            assert rt["accumulationBehaviour"] == q.reading_type.accumulation_behaviour
            assert rt.get("flowDirection", 0) == q.reading_type.flow_direction
            assert sorted(values) == sorted(wire) == [T0 + INTERVAL_S * i for i in range(7)]
            for start, value in values.items():
                assert value == wire[start][k], (meter_id, q.key, start)
                bound = 0.0005 + 1e-9 * abs(si[start][k])
                assert abs(from_wire(value) - si[start][k]) <= bound


def test_server_restart_reregisters_and_reports_the_gap(campus_certs, campus):
    certs, all_ids = campus_certs
    ids = all_ids[:3]
    server = _server(certs)
    port = server.port
    clients = MeterClients(
        certs,
        ids,
        f"https://127.0.0.1:{port}",
        pin=PIN,
        queue_limit=4,
        interval_s=INTERVAL_S,
        settings=_settings(),
    )
    meters = MeterModel(MeterArrays.from_specs(campus.meters[:3]), campus, 11, INTERVAL_S)
    w1 = meters.step(meters.initial_state(T0), 2)
    w2 = meters.step(w1.state, 7)  # submitted while the server is down: 3 of them dropped
    w3 = meters.step(w2.state, 2)
    first_hrefs = None
    try:
        clients.start()
        clients.submit(w1.batch)
        _wait(lambda: all(s["readings_posted"] == 2 for s in clients.status()), 30, clients.status)
        first_hrefs = {s["meter_id"]: s["end_device_href"] for s in clients.status()}
        server.stop()
        clients.submit(w2.batch)
        _wait(
            lambda: all(not s["registered"] for s in clients.status()),
            30,
            clients.status,
        )
        for s in clients.status():
            assert s["readings_dropped"] == 3 and s["readings_queued"] == 4
            assert s["gaps"] == [[T0 + 2 * INTERVAL_S, T0 + 4 * INTERVAL_S, 3]]
            # the first request to fail may be a POST or a poll, whichever was due first
            assert "TransportError" in s["last_error"]
        # a new server on the same port with an empty registry: the meters must register again
        server = _server(certs, port=port)
        assert clients.wait_registered(30), clients.status()
        _wait(lambda: all(s["readings_posted"] == 6 for s in clients.status()), 30, clients.status)
        clients.submit(w3.batch)
        _wait(lambda: all(s["readings_posted"] == 8 for s in clients.status()), 30, clients.status)
        status = _by_meter(clients.status())
    finally:
        clients.stop(5)
        server.stop()
    for meter_id in ids:
        s = status[meter_id]
        assert s["registrations"] == 2 and s["registered"]
        assert s["readings_dropped"] == 3 and s["readings_queued"] == 0
        assert s["gaps"] == [[T0 + 2 * INTERVAL_S, T0 + 4 * INTERVAL_S, 3]]
        device = server.registry.device_by_lfdi(s["lfdi"])
        assert device is not None and s["end_device_href"] == f"/edev/{device.id}"
        assert first_hrefs and meter_id in first_hrefs
        # the new server holds exactly the kept intervals: the last 4 of the outage and w3
        mirror_id = server.registry.mirror_ids_of(s["lfdi"])[0]
        mr = server.registry.meter_reading_id(mirror_id, meter_reading_mrid(meter_id, "power"))
        starts = sorted(
            r.time_start
            for v in server.registry.reading_sets(mirror_id, mr)
            for r in v.set.readings
        )
        assert starts == [T0 + INTERVAL_S * i for i in range(5, 11)]


def test_pin_right_registers_and_wrong_fails_cleanly(campus_certs, model):
    certs, ids = campus_certs
    server = _server(certs, pin=PIN)
    url = f"https://127.0.0.1:{server.port}"
    right = MeterClients(certs, ids[:1], url, pin=PIN, interval_s=INTERVAL_S, settings=_settings())
    wrong = MeterClients(
        certs, ids[1:2], url, pin=123455, interval_s=INTERVAL_S, settings=_settings()
    )
    try:
        right.start()
        wrong.start()
        assert right.wait_registered(30), right.status()
        _wait(lambda: wrong.status()[0]["state"] == "refused", 30, wrong.status)
        refused = wrong.status()[0]
        time.sleep(1.0)  # no retry storm: nothing more is sent
        assert wrong.status()[0]["requests"] == refused["requests"] <= 6
        wrong.submit(model.step(model.initial_state(T0), 1).batch)  # still never blocks
    finally:
        right.stop(2)
        wrong_final = wrong.stop(2)[0]
        server.stop()
    assert not refused["registered"] and refused["mirror_usage_point_href"] is None
    assert "PIN mismatch" in refused["last_error"] and "111115" in refused["last_error"]
    assert wrong_final["state"] == "refused" and wrong_final["posts_ok"] == 0
    assert server.registry.mirror_ids_of(refused["lfdi"]) == []  # nothing mirrored there
    ok = right.status()[0]
    assert ok["mirror_usage_point_href"] and ok["last_error"] is None


def test_absent_server_never_blocks_submit_and_overflow_drops_oldest(campus_certs, model):
    certs, ids = campus_certs
    with socket.socket() as probe:  # a free port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clients = MeterClients(
        certs,
        ids,
        f"https://127.0.0.1:{port}",
        pin=PIN,
        queue_limit=5,
        interval_s=INTERVAL_S,
        settings=_settings(),
    )
    window = model.step(model.initial_state(T0), 12)
    server = None
    try:
        clients.start()
        started = time.perf_counter()
        assert clients.submit(window.batch) == 25 * 12
        assert time.perf_counter() - started < 0.5
        for s in clients.status():
            assert s["readings_dropped"] == 7 and s["readings_queued"] == 5
            assert s["gaps"] == [[T0, T0 + 6 * INTERVAL_S, 7]]
        _wait(
            lambda: all(s["last_error"] for s in clients.status()),
            30,
            clients.status,
        )
        assert all("TransportError" in s["last_error"] for s in clients.status())
        # the server appears: the 5 newest intervals of every meter arrive, the oldest do not
        server = _server(certs, port=port)
        assert clients.wait_registered(30), clients.summary()
        assert clients.flush(30), clients.summary()
        summary = clients.summary()
    finally:
        clients.stop(5)
        if server is not None:
            server.stop()
    assert summary["readings_posted"] == 25 * 5 and summary["readings_dropped"] == 25 * 7
    for s in clients.status():
        mirror_id = server.registry.mirror_ids_of(s["lfdi"])[0]
        mr = server.registry.meter_reading_id(
            mirror_id, meter_reading_mrid(s["meter_id"], "import_wh")
        )
        starts = sorted(
            r.time_start
            for v in server.registry.reading_sets(mirror_id, mr)
            for r in v.set.readings
        )
        assert starts == [T0 + INTERVAL_S * i for i in range(7, 12)]


def test_slow_server_never_blocks_submit_or_stop(campus_certs, model):
    """A listener that accepts TCP but never answers TLS: requests time out, nothing blocks."""
    certs, ids = campus_certs
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(64)
    port = black_hole.getsockname()[1]
    clients = MeterClients(
        certs,
        ids[:5],
        f"https://127.0.0.1:{port}",
        interval_s=INTERVAL_S,
        settings=_settings(connect_timeout_s=2.0, request_timeout_s=3.0),
    )
    state = model.initial_state(T0)
    try:
        clients.start()
        worst = 0.0
        for _ in range(5):
            w = model.step(state, 4)
            state = w.state
            started = time.perf_counter()
            clients.submit(w.batch)
            worst = max(worst, time.perf_counter() - started)
            time.sleep(0.2)
        assert worst < 0.5, f"submit took {worst:.3f} s"  # a network wait would be ≥ 2 s
        _wait(lambda: all(s["last_error"] for s in clients.status()), 30, clients.status)
        started = time.perf_counter()
        final = clients.stop(timeout_s=0.5)
        assert time.perf_counter() - started < 3.0
    finally:
        clients.stop(0.5)
        black_hole.close()
    for s in final:
        assert not s["registered"] and s["readings_queued"] == 20 and s["readings_posted"] == 0
        assert "Timeout" in s["last_error"] or "TransportError" in s["last_error"]


def test_sampled_and_off_modes(campus_certs, model):
    certs, ids = campus_certs
    server = _server(certs)
    url = f"https://127.0.0.1:{server.port}"
    sampled = MeterClients(
        certs,
        ids[:2],
        url,
        post_mode="sampled",
        interval_s=INTERVAL_S,
        sample_every=4,
        settings=_settings(),
    )
    off = MeterClients(certs, ids[2:4], url, post_mode="off", interval_s=INTERVAL_S)
    window = model.step(model.initial_state(T0), 8)
    try:
        sampled.start()
        off.start()
        assert sampled.submit(window.batch) == 2 * 2  # intervals 0 and 4 of 8
        assert off.submit(window.batch) == 0
        assert sampled.wait_registered(30) and off.wait_registered(30)
        assert sampled.flush(30)
        summary_off = off.summary()
    finally:
        sampled.stop(2)
        off.stop(2)
        server.stop()
    assert summary_off["registered"] == 2 and summary_off["requests"] > 0
    assert summary_off["readings_posted"] == 0 and summary_off["posts_ok"] == 0
    assert all(s["mirror_usage_point_href"] is None for s in off.status())
    for s in sampled.status():
        assert s["readings_posted"] == 2 and s["readings_dropped"] == 0
        mirror_id = server.registry.mirror_ids_of(s["lfdi"])[0]
        mr = server.registry.meter_reading_id(
            mirror_id, meter_reading_mrid(s["meter_id"], QUANTITY_KEYS[4])
        )
        starts = sorted(
            r.time_start
            for v in server.registry.reading_sets(mirror_id, mr)
            for r in v.set.readings
        )
        assert starts == [T0, T0 + 4 * INTERVAL_S]


def test_a_small_body_limit_means_smaller_posts_not_lost_readings(campus_certs, model):
    certs, ids = campus_certs
    server = _server(certs, max_body_bytes=4096)  # one interval fits, eight do not
    clients = MeterClients(
        certs,
        ids[:2],
        f"https://127.0.0.1:{server.port}",
        interval_s=INTERVAL_S,
        settings=_settings(),
    )
    try:
        clients.submit(model.step(model.initial_state(T0), 8).batch)  # queued before start
        clients.start()
        assert clients.wait_registered(30), clients.status()
        assert clients.flush(30), clients.status()
        status = clients.status()
    finally:
        clients.stop(5)
        server.stop()
    for s in status:
        assert s["readings_posted"] == 8 and s["readings_rejected"] == 0
        assert s["posts_failed"] >= 1 and "413" in s["last_error"]
    assert server.registry.readings_mirrored == 2 * 8 * len(QUANTITIES)


def test_front_restart_over_the_same_registry_resumes_without_reregistering(campus_certs, campus):
    """Like the Ray service's front restart: the state survives, so the meters only check their
    mirror (one GET) and carry on; nothing is registered twice and nothing is lost."""
    certs, all_ids = campus_certs
    meters = MeterModel(MeterArrays.from_specs(campus.meters[:3]), campus, 11, INTERVAL_S)
    server = _server(certs)
    port, registry = server.port, server.registry
    clients = MeterClients(
        certs,
        all_ids[:3],
        f"https://127.0.0.1:{port}",
        interval_s=INTERVAL_S,
        settings=_settings(),
    )
    w1 = meters.step(meters.initial_state(T0), 2)
    w2 = meters.step(w1.state, 3)
    try:
        clients.start()
        clients.submit(w1.batch)
        _wait(lambda: all(s["readings_posted"] == 2 for s in clients.status()), 30, clients.status)
        before = _by_meter(clients.status())
        server.stop()
        clients.submit(w2.batch)
        _wait(lambda: all(not s["registered"] for s in clients.status()), 30, clients.status)
        server = ThreadedServer(
            Ieee2030_5Config(certs_dir=certs, port=port, post_rate_s=1, poll_rate_s=2),
            registry=registry,
        )
        _wait(lambda: all(s["readings_posted"] == 5 for s in clients.status()), 30, clients.status)
        after = _by_meter(clients.status())
    finally:
        clients.stop(5)
        server.stop()
    for meter_id, s in after.items():
        assert s["registrations"] == 1 and s["registered"] and s["readings_dropped"] == 0
        assert s["end_device_href"] == before[meter_id]["end_device_href"]
        assert s["mirror_usage_point_href"] == before[meter_id]["mirror_usage_point_href"]
    assert len(registry.devices()) == 3 and registry.readings_mirrored == 3 * 5 * len(QUANTITIES)
