"""The registry's SQLite store (pure, on a real file): a registry written through and loaded
back is the same registry (ids, views, history, budgets, retirement order), retired readings
leave the file too, and a file it cannot read is refused with a clear error."""

from __future__ import annotations

import pickle
import sqlite3

import pytest

from gtx_ray.ieee2030_5.identity import DeviceIdentity, sfdi_from_lfdi
from gtx_ray.ieee2030_5.models import (
    DeviceInformation,
    EndDeviceIn,
    MirrorMeterReading,
    MirrorUsagePoint,
    Reading,
    ReadingSet,
    ReadingType,
)
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config, build_registry
from gtx_ray.ieee2030_5.server.dispatch import Op, execute
from gtx_ray.ieee2030_5.server.managers import admin
from gtx_ray.ieee2030_5.server.registry import Registry
from gtx_ray.ieee2030_5.server.store import RegistryStore, StoreError

T0 = 1_767_225_600
RT = ReadingType(uom=72, flow_direction=1, kind=12)
CONFIG = Ieee2030_5Config(
    max_bytes_per_device=8192, max_readings_per_device=40, history_per_mirror=6, retention_s=86_400
)


def ident(n: int) -> DeviceIdentity:
    lfdi = f"{n:02X}" * 20
    return DeviceIdentity(lfdi, sfdi_from_lfdi(lfdi))


def run(reg: Registry, store: RegistryStore, *ops: Op) -> list:
    """What the registry actor does per batch: execute, then write through."""
    out = execute(reg, list(ops))
    store.flush(reg)
    return out


def post_sets(who: DeviceIdentity, mup_id: int, p: int, n: int = 4) -> Op:
    start = T0 + 3600 * p
    sets = tuple(
        MirrorMeterReading(
            mrid=q,
            reading_sets=(
                ReadingSet(
                    (p << 4) + q,
                    start,
                    900 * n,
                    tuple(Reading(1000 * p + i, start + 900 * i, 900) for i in range(n)),
                ),
            ),
        )
        for q in (1, 2)
    )
    return Op("mirror.post_readings", who, start, (mup_id, sets))


def snapshot(reg: Registry) -> dict:
    """Everything a client or the budget can observe."""
    out: dict = {"counts": reg.counts(), "devices": reg.devices(), "policy": reg.policy}
    for d in reg.devices():
        b = reg.budget_of(d.lfdi)
        live = [e for e in b.order if reg._live(e)]
        out[d.lfdi] = (
            reg.mirrors_of(d.lfdi),
            reg.device_information(d.id),
            (b.meta_bytes, b.reading_bytes, b.readings, b.newest_end, live),
        )
        for m in reg.mirrors_of(d.lfdi):
            for mr in m.meter_readings:
                out[(m.id, mr.id)] = reg.reading_sets(m.id, mr.id)
    return out


def test_written_through_and_loaded_back_is_the_same_registry(tmp_path):
    path = tmp_path / "state.sqlite"
    store = RegistryStore(path)
    reg = build_registry(CONFIG, T0, store)
    a, b, c = ident(1), ident(2), ident(3)
    for who in (a, b, c):
        run(reg, store, Op("edev.register", who, T0, (EndDeviceIn(sfdi=who.sfdi),)))
    mups = {}
    for who, mrid in ((a, 0xA1), (b, 0xB1), (c, 0xC1)):
        body = MirrorUsagePoint(
            mrid,
            who.lfdi,
            0x49,
            0,
            1,
            post_rate=300,
            meter_readings=(
                MirrorMeterReading(mrid=1, reading_type=RT),
                MirrorMeterReading(mrid=2, reading_type=RT, description="export"),
            ),
        )
        created = run(reg, store, Op("mirror.create_or_update", who, T0, (body,)))[0]
        mups[who] = int(created.location.rsplit("/", 1)[1])
    # 12 posts of 2 sets × 4 readings: past 40 readings and 6 sets of history, so sets retire
    for p in range(12):
        run(reg, store, post_sets(a, mups[a], p), post_sets(b, mups[b], p))
    single = MirrorMeterReading(mrid=1, reading=Reading(77, T0 + 50_000, 900))
    run(reg, store, Op("mirror.post_readings", a, T0, (mups[a], (single,))))
    info = DeviceInformation(a.lfdi, T0, "1.0", 37, "GTX-1", "42", 0, 0, T0, "2.1")
    run(reg, store, Op("edev.put_di", a, T0, (1, info)))
    admin.set_rates(reg, T0, post_rate=60, device_id=2)
    admin.set_rates(reg, T0, poll_rate=120)
    run(reg, store, Op("mirror.delete", c, T0, (mups[c],)))
    admin.remove_device(reg, T0, 3)
    store.flush(reg)
    assert reg.readings_dropped > 0  # the budget and history bounds did retire sets

    kept_sets = sum(
        len(reg.reading_sets(m.id, mr.id))
        for d in reg.devices()
        for m in reg.mirrors_of(d.lfdi)
        for mr in m.meter_readings
    )
    assert store.counts() == {
        "stored_devices": 2,
        "stored_mirrors": 2,
        "stored_reading_sets": kept_sets,
    }
    store.close()

    store2 = RegistryStore(path)
    reloaded = build_registry(CONFIG, T0 + 1, store2)
    assert snapshot(reloaded) == snapshot(reg)
    assert reloaded.device_by_lfdi(c.lfdi) is None

    # the same further traffic gives the same result on both (ids, retirement order)
    elsewhere = RegistryStore(tmp_path / "elsewhere.sqlite")  # the original writes on elsewhere
    for r, s in ((reg, elsewhere), (reloaded, store2)):
        run(r, s, Op("edev.register", c, T0, (EndDeviceIn(sfdi=c.sfdi),)))
        for p in range(12, 16):
            run(r, s, post_sets(a, mups[a], p), post_sets(b, mups[b], p))
    assert snapshot(reloaded) == snapshot(reg)
    assert reloaded.device_by_lfdi(c.lfdi).id == 4  # ids are never reused


def test_a_file_it_cannot_read_is_refused(tmp_path):
    with pytest.raises(StoreError, match="synchronous"):
        RegistryStore(tmp_path / "x.sqlite", synchronous="OFF")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(StoreError, match="cannot use the state file"):
        RegistryStore(junk)
    newer = tmp_path / "newer.sqlite"
    RegistryStore(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema'", (pickle.dumps(99),))
    with pytest.raises(StoreError, match="schema version 99"):
        RegistryStore(newer)


def test_allowlist_devices_are_kept_not_duplicated(tmp_path):
    lfdi = ident(9).lfdi
    config = Ieee2030_5Config(registration_policy="allowlist", allowlist=(lfdi,))
    store = RegistryStore(tmp_path / "s.sqlite")
    first = build_registry(config, T0, store)
    store.close()
    again = build_registry(config, T0 + 10, RegistryStore(tmp_path / "s.sqlite"))
    assert again.devices() == first.devices()


def test_where_the_cli_keeps_the_state(tmp_path):
    from gtx_ray.cli import build_parser, ieee2030_5_state_path, settings_from
    from gtx_ray.errors import ConfigError

    def settings(*argv: str):
        return settings_from(build_parser().parse_args(list(argv)), {}, "run")

    data = tmp_path / "data"
    assert ieee2030_5_state_path(settings("--data-dir", str(data))) == (
        data.resolve() / "ieee2030_5" / "state.sqlite"
    )
    chosen = tmp_path / "elsewhere"
    given = settings("--data-dir", str(data), "--ieee2030-5-state-dir", str(chosen))
    assert ieee2030_5_state_path(given) == chosen.resolve() / "state.sqlite"
    assert chosen.is_dir()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=r"--ieee2030-5-state-dir .* is not a directory"):
        settings("--ieee2030-5-state-dir", str(a_file))


def test_events_tariffs_messages_and_responses_survive_a_reload(tmp_path):
    """The event function sets are written through with the rest: a registry loaded from
    the file has the same events (with their statuses), tariff history, notices and
    Responses, and new ids continue after the old ones."""
    from gtx_ray.ieee2030_5.events import TimeOfUseRates
    from gtx_ray.ieee2030_5.server.managers import admin_events
    from gtx_ray.ieee2030_5.server.managers.response import ResponseIn

    path = tmp_path / "state.sqlite"
    store = RegistryStore(path)
    reg = build_registry(CONFIG, T0, store)
    who = ident(7)
    run(reg, store, Op("edev.register", who, T0, (EndDeviceIn(sfdi=who.sfdi, lfdi=who.lfdi),)))
    first = admin_events.create_dr_event(
        reg, T0, start=T0 + 3600, duration_s=900, reduction_pct=15.0, targets=[who.lfdi]
    )
    second = admin_events.create_dr_event(reg, T0, start=T0 + 7200, duration_s=600, reduction_kw=9)
    admin_events.cancel_dr_event(reg, T0 + 10, event_id=second["id"])
    rates = TimeOfUseRates(T0, 13.0, 20.0, 5.0, 2.0, 0.1, 2.2, "shift")
    admin_events.add_tariff(reg, T0, **{f: getattr(rates, f) for f in rates.__dataclass_fields__})
    admin_events.create_message(reg, T0, start=T0, duration_s=60, text="chiller work")
    body = ResponseIn("DrResponse", who.lfdi, int(first["mrid"], 16), 1, T0)
    assert run(reg, store, Op("rsp.post", who, T0 + 20, (1, body)))[0].location.endswith("/1")
    store.flush(reg)
    store.close()

    store = RegistryStore(path)
    again = build_registry(CONFIG, T0 + 100, store)
    assert admin_events.list_dr_events(again, T0 + 100) == admin_events.list_dr_events(
        reg, T0 + 100
    )
    assert [e["status"] for e in admin_events.list_dr_events(again, T0 + 100)] == [
        "scheduled",
        "cancelled",
    ]
    assert again.pricing.rates == reg.pricing.rates and again.pricing.rates[-1] == rates
    assert [m["text"] for m in admin_events.list_messages(again, T0)] == ["chiller work"]
    rows = admin_events.list_responses(again, T0, subject=first["mrid"])
    assert [(r["lfdi"], r["status"]) for r in rows] == [(who.lfdi, 1)]
    third = admin_events.create_dr_event(again, T0, start=T0, duration_s=60, duty_cycle_pct=50)
    assert third["id"] == second["id"] + 1


def test_der_controls_default_and_device_records_survive_a_reload(tmp_path):
    """DER controls (with their statuses), the DefaultDERControl, DERControlResponses and each
    device's DER records are written through; a removed device's records leave the file."""
    from gtx_ray.ieee2030_5.der import DerAvailability, DerCapability, DerSettings, DerStatus
    from gtx_ray.ieee2030_5.server.managers import admin_der
    from gtx_ray.ieee2030_5.server.managers.response import ResponseIn
    from gtx_ray.ieee2030_5.server.responses import SET_DER

    path = tmp_path / "state.sqlite"
    store = RegistryStore(path)
    reg = build_registry(CONFIG, T0, store)
    who, gone = ident(7), ident(8)
    for d in (who, gone):
        run(reg, store, Op("edev.register", d, T0, (EndDeviceIn(sfdi=d.sfdi, lfdi=d.lfdi),)))
    first = admin_der.create_der_control(
        reg, T0, start=T0 + 3600, duration_s=900, export_limit_kw=5.0, targets=[who.lfdi]
    )
    second = admin_der.create_der_control(
        reg, T0 + 1, start=T0 + 3000, duration_s=1800, fixed_w_pct=-20.0
    )
    third = admin_der.create_der_control(reg, T0, start=T0 + 9000, duration_s=60, connect=False)
    admin_der.cancel_der_control(reg, T0 + 10, control_id=third["id"])
    admin_der.set_default_der_control(reg, T0, set_grad_w_pct_per_s=0.5, import_limit_kw=20.0)
    records = {
        "capability": DerCapability(0x100084, 83, 10.0, doe_modes_supported=3),
        "settings": DerSettings(T0, 10.0, 1.0, doe_modes_enabled=1),
        "status": DerStatus(T0, gen_connect_status=5, state_of_charge_pct=65.5),
        "availability": DerAvailability(T0, stat_w_avail_kw=4.2),
    }
    for part, value in records.items():
        for d, device_id in ((who, 1), (gone, 2)):
            run(reg, store, Op("der.put_part", d, T0, (device_id, 1, part, value)))
    body = ResponseIn("DERControlResponse", who.lfdi, int(first["mrid"], 16), 1, T0)
    assert run(reg, store, Op("rsp.post", who, T0 + 20, (SET_DER, body)))[0].location == (
        "/rsps/4/rsp/1"
    )
    admin.remove_device(reg, T0, 2)
    store.flush(reg)
    store.close()

    store = RegistryStore(path)
    again = build_registry(CONFIG, T0 + 100, store)
    listed = admin_der.list_der_controls(again, T0 + 100)
    assert listed == admin_der.list_der_controls(reg, T0 + 100)
    assert {c["id"]: c["status"] for c in listed} == {
        first["id"]: "superseded",
        second["id"]: "scheduled",
        third["id"]: "cancelled",
    }
    assert listed[-1]["responses"] == {} and any(c["responses"] for c in listed)
    assert admin_der.get_default_der_control(again, T0) == admin_der.get_default_der_control(
        reg, T0
    )
    assert admin_der.list_der_devices(again, T0) == admin_der.list_der_devices(reg, T0)
    mine = again.der.device(who.lfdi)
    assert {p: getattr(mine, p) for p in records} == records
    assert gone.lfdi not in again.der.devices
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM der_devices").fetchone()[0] == 1
    fourth = admin_der.create_der_control(again, T0, start=T0, duration_s=60, energize=True)
    assert fourth["id"] == third["id"] + 1
