"""Registry and managers (pure): who may do what, bounds, atomicity, admin actions, and the
batching backend's ordering and failure handling."""

from __future__ import annotations

import asyncio

import pytest

from gtx_ray.ieee2030_5.identity import DeviceIdentity, sfdi_from_lfdi
from gtx_ray.ieee2030_5.models import (
    Created,
    EndDeviceIn,
    MirrorMeterReading,
    MirrorUsagePoint,
    PageRequest,
    Reading,
    ReadingSet,
    ReadingType,
    Updated,
)
from gtx_ray.ieee2030_5.server.backend import BatchingBackend, LocalBackend
from gtx_ray.ieee2030_5.server.dispatch import Op, execute
from gtx_ray.ieee2030_5.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    LimitReached,
    NotFound,
    Unavailable,
)
from gtx_ray.ieee2030_5.server.managers import admin, edev, metering, mirror
from gtx_ray.ieee2030_5.server.registry import Registry, RegistryLimits, RegistryPolicy


def ident(n: int) -> DeviceIdentity:
    lfdi = f"{n:02X}" * 20
    return DeviceIdentity(lfdi, sfdi_from_lfdi(lfdi))


A, B, HEAD_END = ident(1), ident(2), ident(3)
RT = ReadingType(uom=72)


def register(reg: Registry, who: DeviceIdentity) -> Created:
    return edev.register(reg, who, 100, EndDeviceIn(sfdi=who.sfdi, lfdi=who.lfdi))


def mup(who: DeviceIdentity, mrid: int, *mmrs: MirrorMeterReading) -> MirrorUsagePoint:
    return MirrorUsagePoint(mrid, who.lfdi, 1, 0, 1, meter_readings=mmrs)


def test_allowlist_policy_only_admits_preregistered_devices():
    reg = Registry(RegistryPolicy(registration="allowlist"))
    device_id = admin.preregister(reg, 0, A.lfdi.lower())
    assert edev.list_end_devices(reg, A, 0, PageRequest()).all == 1
    with pytest.raises(Conflict) as conflict:
        register(reg, A)
    assert conflict.value.location == f"/edev/{device_id}"
    with pytest.raises(Forbidden):
        register(reg, B)
    with pytest.raises(BadRequest):
        admin.preregister(reg, 0, "not hex")


def test_readers_see_every_usage_point_but_change_nothing():
    reg = Registry(RegistryPolicy(readers=frozenset({HEAD_END.lfdi})))
    register(reg, A)
    register(reg, HEAD_END)
    mirror.create_or_update(reg, A, 0, mup(A, 7, MirrorMeterReading(1, reading_type=RT)))
    assert metering.list_usage_points(reg, HEAD_END, 0, PageRequest(limit=9)).all == 1
    assert metering.get_reading_type(reg, HEAD_END, 0, 1, 1) == RT
    with pytest.raises(NotFound):
        mirror.post_readings(reg, HEAD_END, 0, 1, (MirrorMeterReading(1),))
    assert metering.list_usage_points(reg, B, 0, PageRequest()).all == 0


def test_rejected_requests_change_nothing():
    reg = Registry(limits=RegistryLimits(max_readings_per_mirror=2, max_mirrors_per_device=1))
    register(reg, A)
    created = mirror.create_or_update(reg, A, 0, mup(A, 1, MirrorMeterReading(1, reading_type=RT)))
    assert isinstance(created, Created)
    good = MirrorMeterReading(1, reading=Reading(value=5))
    unknown = MirrorMeterReading(9, reading=Reading(value=6))  # new and without ReadingType
    with pytest.raises(BadRequest):
        mirror.post_readings(reg, A, 0, 1, (good, unknown))
    assert reg.counts()["readings_mirrored"] == 0
    too_many = tuple(MirrorMeterReading(i, reading_type=RT) for i in (2, 3))
    with pytest.raises(LimitReached):
        mirror.post_readings(reg, A, 0, 1, too_many)
    assert len(reg.meter_reading_ids(1)) == 1
    with pytest.raises(LimitReached):
        mirror.create_or_update(reg, A, 0, mup(A, 2))
    dup = (MirrorMeterReading(1, reading=Reading(value=1)),) * 2
    with pytest.raises(BadRequest):
        mirror.post_readings(reg, A, 0, 1, dup)
    assert isinstance(mirror.create_or_update(reg, A, 0, mup(A, 1)), Updated)


def test_history_is_bounded_and_counted():
    reg = Registry(limits=RegistryLimits(history_per_mirror=3))
    register(reg, A)
    mirror.create_or_update(reg, A, 0, mup(A, 1, MirrorMeterReading(1, reading_type=RT)))
    for i in range(10):
        rs = ReadingSet(100 + i, i * 900, 900, (Reading(value=i), Reading(value=-i)))
        mirror.post_readings(reg, A, 0, 1, (MirrorMeterReading(1, reading_sets=(rs,)),))
    page = metering.list_reading_sets(reg, A, 0, 1, 1, PageRequest(limit=10))
    assert [v.set.mrid for v in page.items] == [109, 108, 107]
    assert reg.counts()["readings_mirrored"] == 20 and reg.counts()["readings_dropped"] == 14
    assert metering.get_latest_reading(reg, A, 0, 1, 1).value in (9, -9)


def test_admin_actions():
    reg = Registry()
    register(reg, A)
    mirror.create_or_update(reg, A, 0, mup(A, 1))
    admin.set_rates(reg, 0, poll_rate=60)
    assert edev.get_registration(reg, A, 0, 1).poll_rate == 60
    admin.set_rates(reg, 0, post_rate=30, device_id=1)
    assert edev.get_end_device(reg, A, 0, 1).post_rate == 30
    with pytest.raises(BadRequest):
        admin.set_rates(reg, 0, poll_rate=0)
    (row,) = admin.list_devices(reg, 0)
    assert row["lfdi"] == A.lfdi and row["mirror_usage_points"] == [1]
    assert admin.clear_mirrors(reg, 0, A.lfdi) == 1
    admin.remove_device(reg, 0, 1)
    with pytest.raises(NotFound):
        admin.remove_device(reg, 0, 1)
    assert reg.counts()["registered_devices"] == 0


def test_execute_returns_errors_as_values():
    reg = Registry()
    ops = [
        Op("edev.register", A, 0, (EndDeviceIn(sfdi=A.sfdi),)),
        Op("edev.register", A, 0, (EndDeviceIn(sfdi=A.sfdi),)),
        Op("edev.get", B, 0, (1,)),
        Op("edev.no_such_operation", A, 0),  # a bug in the front: 500, not a crash
    ]
    out = execute(reg, ops)
    assert isinstance(out[0], Created)
    assert isinstance(out[1], Conflict) and isinstance(out[2], NotFound)
    assert isinstance(out[3], InternalError)


def test_batching_backend_keeps_order_and_batches():
    reg = Registry()
    batches: list[int] = []

    async def call(ops):
        batches.append(len(ops))
        await asyncio.sleep(0.01)
        return execute(reg, ops)

    async def main():
        backend = BatchingBackend(call, batch_max=8)
        first = await backend.execute(Op("edev.register", A, 0, (EndDeviceIn(sfdi=A.sfdi),)))
        assert isinstance(first, Created)
        outs = await asyncio.gather(
            *(backend.execute(Op("edev.get", A, 0, (1,))) for _ in range(20))
        )
        assert all(o.lfdi == A.lfdi for o in outs)
        return backend

    backend = asyncio.run(main())
    assert batches[0] == 1 and max(batches) <= 8 and sum(batches) == 21
    assert len(batches) < 21 and backend.ops == 21


def test_batching_backend_answers_503_when_registry_is_gone():
    async def broken(ops):
        raise ConnectionError("actor died")

    async def main():
        return await BatchingBackend(broken).execute(Op("dcap.time", A, 0))

    assert isinstance(asyncio.run(main()), Unavailable)


def test_local_backend():
    out = asyncio.run(LocalBackend(Registry()).execute(Op("dcap.time", A, 42)))
    assert out.now == 42 and out.tz_offset == 25200


def test_build_registry_preregisters_the_allowlist():
    from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config, build_registry

    config = Ieee2030_5Config(registration_policy="allowlist", allowlist=(A.lfdi.lower(),))
    reg = build_registry(config, 5)
    assert reg.device_by_lfdi(A.lfdi).registered_time == 5
    with pytest.raises(Forbidden):
        register(reg, B)


@pytest.mark.parametrize(
    "field, value",
    [
        ("port", 70000),
        ("registration_policy", "closed"),
        ("pin", 111116),
        ("allowlist", ("zz",)),
        ("poll_rate_s", 0),
        ("history_per_mirror", 0),
        ("max_body_bytes", 10),
    ],
)
def test_config_errors_name_the_field(field, value):
    from gtx_ray.errors import ConfigError
    from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config

    with pytest.raises(ConfigError, match=field):
        Ieee2030_5Config(**{field: value})
