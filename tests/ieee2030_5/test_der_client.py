"""The meters' DER function set against the real server on real mutual-TLS sockets (no Ray): a
hybrid and a prosumer of the campus report their DER from their ratings, learn the DERControls
addressed to them and the DefaultDERControl, answer the controls as simulated time passes and
report their state; the consumer has no DER poller. A server refusing the DER records does not
keep a meter from its controls. Every DER body a meter sends is validated
against the CSIP-AUS schema (``ClientSettings.observe`` sees every body before it is sent)."""

from __future__ import annotations

import threading
import time

import numpy as np
from lxml import etree

from gtx_ray.fleet import MeterArrays
from gtx_ray.ieee2030_5.client.der import AVAILABLE, DerRatings
from gtx_ray.ieee2030_5.client.fleet import MeterClients
from gtx_ray.ieee2030_5.client.function_sets import MeterFunctionSets
from gtx_ray.ieee2030_5.client.settings import ClientSettings
from gtx_ray.ieee2030_5.codec import XmlError
from gtx_ray.ieee2030_5.der_documents import PARSERS
from gtx_ray.ieee2030_5.events import mrid_hex
from gtx_ray.ieee2030_5.pki import load_devices_index
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.managers import admin_der
from gtx_ray.model.controls import device_category_of
from gtx_ray.model.inputs import ModelInputs
from gtx_ray.model.meters import MeterModel
from tests.ieee2030_5.helpers import ThreadedServer

INTERVAL_S = 900
DER_ROOTS = {"DERCapability", "DERSettings", "DERStatus", "DERAvailability", "DERControlResponse"}


def _wait(what: str, check, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_der_meters_report_follow_and_answer_controls(campus, certs_dir, csip_schema):
    arrays = MeterArrays.from_specs(campus.meters)
    pick = [int(np.flatnonzero(arrays.meter_type == t)[0]) for t in (2, 1, 0)]
    meters = arrays.take(np.array(pick))
    ids = [str(m) for m in meters.meter_id]
    hybrid, prosumer, consumer = ids
    lfdi = {m: load_devices_index(certs_dir)[m]["lfdi"] for m in ids}
    ders = {
        m: DerRatings(
            float(meters.inverter_kw[i]), float(meters.battery_kwh[i]), float(meters.battery_kw[i])
        )
        for i, m in enumerate(ids)
        if meters.inverter_kw[i] > 0 or meters.battery_kwh[i] > 0
    }
    categories = dict(zip(ids, device_category_of(meters.meter_type).tolist(), strict=True))
    sets = MeterFunctionSets(categories, ders)

    sent: list[tuple[str, str, bytes]] = []
    lock = threading.Lock()

    def observe(method: str, url: str, body: bytes) -> None:
        with lock:
            sent.append((method, url, body))

    start = (int(time.time()) // INTERVAL_S + 4) * INTERVAL_S
    server = ThreadedServer(
        Ieee2030_5Config(certs_dir=certs_dir, port=0, post_rate_s=1, poll_rate_s=1)
    )
    clients = MeterClients(
        certs_dir,
        ids,
        f"https://127.0.0.1:{server.port}",
        interval_s=INTERVAL_S,
        settings=ClientSettings(backoff_base_s=0.05, backoff_cap_s=0.4, observe=observe),
        pollers=sets.pollers,
    )
    try:
        cap = server.admin(
            admin_der.create_der_control,
            start=start,
            duration_s=INTERVAL_S,
            export_limit_kw=0.0,
            targets=[lfdi[prosumer]],
        )
        off = server.admin(
            admin_der.create_der_control,
            start=start,
            duration_s=INTERVAL_S,
            connect=False,
            targets=[lfdi[hybrid]],
        )
        later = server.admin(
            admin_der.create_der_control,
            start=start + 4 * INTERVAL_S,
            duration_s=INTERVAL_S,
            import_limit_kw=5.0,
            targets=[lfdi[hybrid]],
        )
        server.admin(
            admin_der.set_default_der_control, export_limit_kw=10.0, set_grad_w_pct_per_s=0.5
        )
        clients.start()
        assert set(sets.der) == {hybrid, prosumer}, "only meters with PV or a battery"
        _wait(
            "both DER meters learned their control and the default",
            lambda: (
                len(sets.der[hybrid].controls()) == 2
                and len(sets.der[prosumer].controls()) == 1
                and all(sets.der[m].default() for m in sets.der)
            ),
        )
        # a control cancelled before it starts: the meter learns when, and says it was cancelled
        cancelled = server.admin(admin_der.cancel_der_control, control_id=later["id"])
        _wait(
            "the hybrid saw the cancellation",
            lambda: any(c.cancelled_s is not None for c, _ in sets.der[hybrid].controls()),
        )
        inputs = sets.model_inputs(ModelInputs())
        by_id = {c.event_id: c for c in inputs.der_controls}
        assert by_id[cap["mrid"]].meter_ids == frozenset({prosumer})
        assert by_id[cap["mrid"]].export_limit_kw == 0.0
        assert by_id[off["mrid"]].meter_ids == frozenset({hybrid})
        assert by_id[off["mrid"]].connect is False and by_id[off["mrid"]].primacy == 1
        assert by_id[later["mrid"]].cancelled_at_s == cancelled["status_time"]
        (default,) = inputs.der_defaults
        assert default.meter_ids == frozenset({hybrid, prosumer})
        assert (default.export_limit_kw, default.set_grad_w) == (10.0, 0.5)

        # the interval the controls cover is simulated; the meters report it and answer
        model = MeterModel(meters, campus, 7, INTERVAL_S)
        window = model.step(model.initial_state(start), 1, inputs=inputs)
        sets.observe(window.batch)
        sets.advance(start + INTERVAL_S)

        def reported():
            rows = {r["lfdi"]: r for r in server.admin(admin_der.list_der_devices)}
            mine = [rows.get(lfdi[m]) for m in sets.der]
            if all(r and r["status"] and r["status"]["reading_time"] == start for r in mine):
                return rows
            return None

        rows = _wait("both DER meters' DERStatus of the interval", reported)
        done = {"event_received": 1, "event_started": 1, "event_completed": 1}
        _wait(
            "received, started and completed for both controls",
            lambda: (
                all(
                    server.admin(admin_der.get_der_control, control_id=c["id"])["responses"] == done
                    for c in (cap, off)
                )
                and server.admin(admin_der.get_der_control, control_id=later["id"])["responses"]
                == {"event_received": 1, "event_cancelled": 1}
            ),
        )
        status = clients.stop(5)
    finally:
        clients.stop(5)
        server.stop()

    # what the server holds, from each meter's own ratings and state
    hybrid_row, prosumer_row = rows[lfdi[hybrid]], rows[lfdi[prosumer]]
    assert hybrid_row["capability"]["rated_wh_kwh"] == ders[hybrid].battery_kwh
    assert hybrid_row["capability"]["rated_w_kw"] == ders[hybrid].inverter_kw
    assert prosumer_row["capability"]["rated_wh_kwh"] is None
    # the hybrid was disconnected by its control in that interval: available, not connected
    assert hybrid_row["status"]["gen_connect_status"] == AVAILABLE
    assert hybrid_row["status"]["operational_mode_status"] == 1
    assert prosumer_row["status"]["operational_mode_status"] == 2
    assert rows[lfdi[consumer]]["capability"] is None
    by_meter = {s["meter_id"]: s for s in status}
    assert "der" not in by_meter[consumer]["function_sets"]
    assert by_meter[hybrid]["function_sets"]["der"]["errors"] == 0

    # every DER body the meters sent is valid against the CSIP-AUS schema
    kinds = set()
    for method, url, body in sent:
        doc = etree.fromstring(body)
        kind = etree.QName(doc).localname
        if kind not in DER_ROOTS:
            continue
        kinds.add(kind)
        assert csip_schema.validate(doc), (method, url, csip_schema.error_log.last_error)
        if kind == "DERControlResponse":
            subject = mrid_hex(int(doc.findtext("{*}subject"), 16))
            assert subject in (cap["mrid"], off["mrid"], later["mrid"])
    assert kinds == DER_ROOTS


def test_a_server_refusing_the_der_records_does_not_keep_a_meter_from_its_controls(
    campus, certs_dir, monkeypatch
):
    def refuse(doc):
        raise XmlError("DERCapability: not taken here")

    monkeypatch.setitem(PARSERS, "capability", refuse)
    arrays = MeterArrays.from_specs(campus.meters)
    i = int(np.flatnonzero(arrays.meter_type == 2)[1])
    meter_id = str(arrays.meter_id[i])
    ratings = DerRatings(
        float(arrays.inverter_kw[i]), float(arrays.battery_kwh[i]), float(arrays.battery_kw[i])
    )
    sets = MeterFunctionSets(
        {meter_id: int(device_category_of(arrays.meter_type[i : i + 1])[0])}, {meter_id: ratings}
    )
    lfdi = load_devices_index(certs_dir)[meter_id]["lfdi"]
    server = ThreadedServer(
        Ieee2030_5Config(certs_dir=certs_dir, port=0, post_rate_s=1, poll_rate_s=1)
    )
    clients = MeterClients(
        certs_dir,
        [meter_id],
        f"https://127.0.0.1:{server.port}",
        interval_s=INTERVAL_S,
        settings=ClientSettings(backoff_base_s=0.05, backoff_cap_s=0.2),
        pollers=sets.pollers,
    )
    try:
        control = server.admin(
            admin_der.create_der_control,
            start=int(time.time()) + 3600,
            duration_s=INTERVAL_S,
            fixed_w_pct=-25.0,
            targets=[lfdi],
        )
        clients.start()
        _wait(
            "the meter learned and answered its control while its capability is refused",
            lambda: (
                len(sets.der[meter_id].controls()) == 1
                and server.admin(admin_der.get_der_control, control_id=control["id"])["responses"]
                == {"event_received": 1}
                and clients.status()[0]["function_sets"]["der"]["errors"] >= 2
            ),
        )
        status = clients.stop(5)
    finally:
        clients.stop(5)
        server.stop()
    der = status[0]["function_sets"]["der"]
    assert "DERCapability" in der["last_error"] and not der["reported"]
    (learned,) = sets.model_inputs(ModelInputs()).der_controls
    assert learned.fixed_pct == -25.0 and learned.meter_ids == frozenset({meter_id})


def test_a_change_of_operating_state_reaches_the_server_before_the_next_poll(campus, certs_dir):
    """The server's pollRate is 300 s, so only a push explains a DERStatus that follows the
    battery from charging to discharging within seconds; a reading that changes only the state
    of charge pushes nothing; changes closer than MIN_PUSH_INTERVAL_S wait for it."""
    from gtx_ray.ieee2030_5.client.der import (
        MIN_PUSH_INTERVAL_S,
        STORAGE_CHARGING,
        STORAGE_DISCHARGING,
        STORAGE_HOLDING,
        DerReading,
    )

    arrays = MeterArrays.from_specs(campus.meters)
    i = int(np.flatnonzero(arrays.meter_type == 2)[0])  # a hybrid: PV and a battery
    hybrid = str(arrays.meter_id[i])
    lfdi = load_devices_index(certs_dir)[hybrid]["lfdi"]
    ratings = DerRatings(
        float(arrays.inverter_kw[i]), float(arrays.battery_kwh[i]), float(arrays.battery_kw[i])
    )
    sets = MeterFunctionSets(
        {hybrid: int(device_category_of(arrays.meter_type[i : i + 1])[0])}, {hybrid: ratings}
    )
    server = ThreadedServer(Ieee2030_5Config(certs_dir=certs_dir, port=0, poll_rate_s=300))
    clients = MeterClients(
        certs_dir,
        [hybrid],
        f"https://127.0.0.1:{server.port}",
        interval_s=INTERVAL_S,
        settings=ClientSettings(backoff_base_s=0.05, backoff_cap_s=0.4),
        pollers=sets.pollers,
    )
    t0 = (int(time.time()) // INTERVAL_S) * INTERVAL_S

    def reading(k: int, battery_kw: float, level: float) -> DerReading:
        return DerReading(t0 + k * INTERVAL_S, 20.0, level, 0.0, battery_kw)

    def held() -> dict | None:
        rows = {r["lfdi"]: r for r in server.admin(admin_der.list_der_devices)}
        return rows[lfdi]["status"] if lfdi in rows else None  # not registered yet

    poller = sets.der[hybrid]

    def observe(r: DerReading) -> None:
        if poller.observe(r):  # the state changed: what the meter actor does after a step
            clients.wake([hybrid])

    try:
        observe(reading(0, 30.0, 50.0))  # charging
        clients.start()
        first = _wait("the first poll's DERStatus", held)
        assert first["storage_mode_status"] == STORAGE_CHARGING
        assert poller.detail()["status_pushes"] == 0  # sent by the poll, not pushed

        observe(reading(1, 30.0, 55.0))  # the state of charge moves, the state does not
        time.sleep(1.0)
        assert held()["reading_time"] == t0 and poller.detail()["status_pushes"] == 0

        pushed_at = time.monotonic()
        observe(reading(2, -40.0, 60.0))  # discharging: pushed (≥ 5 s after the poll's PUT)
        status = _wait(
            "the discharge",
            lambda: (s := held())["storage_mode_status"] == STORAGE_DISCHARGING and s,
            MIN_PUSH_INTERVAL_S + 5,
        )
        assert status["reading_time"] == t0 + 2 * INTERVAL_S
        observe(reading(3, 0.0, 55.0))  # holding, right after: waits for the interval
        status = _wait(
            "the hold",
            lambda: (s := held())["storage_mode_status"] == STORAGE_HOLDING and s,
            MIN_PUSH_INTERVAL_S + 5,
        )
        assert time.monotonic() - pushed_at >= MIN_PUSH_INTERVAL_S
        detail = poller.detail()
        assert (detail["state_changes"], detail["status_pushes"]) == (2, 2)
        assert clients.status()[0]["function_sets"]["der"]["polls"] == 1
    finally:
        clients.stop(5)
        server.stop()
