"""The 2030.5 server's state survives: SIGKILL of the registry process under load (Ray restarts
it from its SQLite file; every POST answered 2xx is still there, devices stay registered,
clients carry on after a retry), and a stop and start of the whole service on the same file
(the same devices, mirrors and history at the same hrefs). Real Ray, real mutual TLS."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.codec import NS
from gtx_ray.ieee2030_5.models import Created, EndDeviceIn, MirrorMeterReading, Reading, ReadingSet
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.dispatch import Op
from gtx_ray.ieee2030_5.server.errors import Unavailable
from gtx_ray.ieee2030_5.server.service import (
    FRONT_NAME,
    REGISTRY_NAME,
    FrontActor,
    start_ieee2030_5,
    status_ieee2030_5,
    stop_ieee2030_5,
)
from tests.ieee2030_5.helpers import Q, Sep2Client, mirror_usage_point_xml, reading_type_xml

pytestmark = pytest.mark.ray
T0 = 1_767_225_600
METERS = [f"AMI_METER_UTCC_{i:03d}" for i in range(1, 7)]


def durable_config(certs_dir, state_path) -> Ieee2030_5Config:
    """Bounds wide enough that nothing posted here is retired: all loss would be real loss."""
    return Ieee2030_5Config(
        certs_dir=certs_dir,
        port=0,
        state_path=state_path,
        history_per_mirror=100_000,
        max_bytes_per_device=1 << 28,
        max_readings_per_device=1_000_000,
        retention_s=100 * 365 * 86_400,
        max_page=100_000,
    )


def set_xml(set_mrid: int, start: int, n: int = 4) -> str:
    readings = "".join(
        f"<Reading><timePeriod><duration>900</duration><start>{start + 900 * i}</start>"
        f"</timePeriod><value>{set_mrid * 10 + i}</value></Reading>"
        for i in range(n)
    )
    return (
        f'<MirrorMeterReading xmlns="{NS}"><mRID>0A</mRID><MirrorReadingSet>'
        f"<mRID>{set_mrid:X}</mRID><timePeriod><duration>{900 * n}</duration>"
        f"<start>{start}</start></timePeriod>{readings}</MirrorReadingSet></MirrorMeterReading>"
    )


def setup_meter(port, certs_dir, meter, schema) -> tuple[Sep2Client, str, str]:
    """Register, mirror one quantity; returns the client, its EndDevice and MUP hrefs."""
    c = Sep2Client(port, certs_dir, meter, schema)
    edev = c.register()
    mmr = f"<MirrorMeterReading><mRID>0A</mRID>{reading_type_xml()}</MirrorMeterReading>"
    resp = c.post("/mup", mirror_usage_point_xml(c.identity.lfdi[:32], c.identity.lfdi, mmr))
    assert resp.status == 201, resp
    return c, edev, resp.headers["location"]


def kept_set_mrids(c: Sep2Client, mup: str) -> set[int]:
    page = c.get(f"{mup.replace('/mup/', '/upt/')}/mr/1/rs?l=100000")
    assert page.status == 200, page
    return {int(s.find(f"{Q}mRID").text, 16) for s in page.all("ReadingSet")}


class Poster(threading.Thread):
    """Posts reading sets as fast as answered; remembers the set mRIDs answered 2xx and
    re-sends the same set after a 5xx or a broken connection (what a meter does)."""

    def __init__(self, c: Sep2Client, mup: str, base: int) -> None:
        super().__init__(daemon=True)
        self.c, self.mup, self.base = c, mup, base
        self.acked: list[tuple[float, int]] = []  # (monotonic time, set mRID)
        self.retries = 0
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        n = 0
        deadline_each = 60.0
        while not self.stop.is_set():
            set_mrid = self.base + n
            first = time.monotonic()
            while True:
                try:
                    resp = self.c.post(self.mup, set_xml(set_mrid, T0 + 3600 * n))
                    if 200 <= resp.status < 300:
                        self.acked.append((time.monotonic(), set_mrid))
                        break
                    if resp.status < 500:
                        self.error = f"{resp.status} for set {set_mrid}"
                        return
                except OSError:
                    self.c.close()
                self.retries += 1
                if time.monotonic() - first > deadline_each:
                    self.error = f"set {set_mrid} not accepted within {deadline_each} s"
                    return
                time.sleep(0.2)
            n += 1


def test_sigkill_of_the_registry_under_load_loses_nothing_acknowledged(
    ray_runtime, certs_dir, sep_schema, tmp_path
):
    ray = ray_runtime
    handles = start_ieee2030_5(durable_config(certs_dir, tmp_path / "state.sqlite"))
    try:
        meters = [setup_meter(handles.port, certs_dir, m, sep_schema) for m in METERS]
        posters = [Poster(c, mup, 1000 * (i + 1)) for i, (c, _, mup) in enumerate(meters)]
        for p in posters:
            p.start()
        deadline = time.monotonic() + 60
        while min(len(p.acked) for p in posters) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        old_pid = ray.get(handles.registry.pid.remote(), timeout=30)
        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # load goes on until every client has been answered 2xx five more times after the kill
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(p.error is None for p in posters):
            if all(sum(t > killed_at for t, _ in p.acked) >= 5 for p in posters):
                break
            time.sleep(0.2)
        for p in posters:
            p.stop.set()
        for p in posters:
            p.join(70)
        assert [p.error for p in posters] == [None] * len(posters)
        assert all(sum(t > killed_at for t, _ in p.acked) >= 5 for p in posters)
        new_pid = ray.get(handles.registry.pid.remote(), timeout=30)
        assert new_pid != old_pid  # Ray restarted the registry in a new process

        for (c, edev, mup), p in zip(meters, posters, strict=True):
            assert c.get(edev).status == 200  # still registered
            assert c.post("/edev", c.end_device_xml()).status == 409
            acked = {m for _, m in p.acked}
            kept = kept_set_mrids(c, mup)
            assert acked <= kept, f"acknowledged but lost: {sorted(acked - kept)[:10]}"
            c.close()
        status = status_ieee2030_5(handles)
        assert status["registered_devices"] == len(METERS) and status["errors"] == []
    finally:
        stop_ieee2030_5(handles)


def test_stop_and_start_on_the_same_state_file_keeps_everything(
    ray_runtime, certs_dir, sep_schema, tmp_path
):
    config = durable_config(certs_dir, tmp_path / "ieee2030_5" / "state.sqlite")
    handles = start_ieee2030_5(config)
    seen: dict[str, dict[str, bytes]] = {}
    try:
        for i, meter in enumerate(METERS[:3]):
            c, edev, mup = setup_meter(handles.port, certs_dir, meter, sep_schema)
            for k in range(3 + i):
                assert c.post(mup, set_xml(100 * i + k, T0 + 3600 * k)).status == 201
            upt = mup.replace("/mup/", "/upt/")
            paths = [edev, f"{edev}/rg", "/mup", mup, "/upt", f"{upt}/mr/1/rs?l=100", f"{upt}/mr"]
            seen[meter] = {path: c.get(path).body for path in paths}
            c.close()
        before = status_ieee2030_5(handles)
    finally:
        stop_ieee2030_5(handles)

    handles = start_ieee2030_5(config)
    try:
        after = status_ieee2030_5(handles)
        for key in ("registered_devices", "mirror_usage_points", "readings_mirrored"):
            assert after[key] == before[key], key
        for meter, pages in seen.items():
            c = Sep2Client(handles.port, certs_dir, meter, sep_schema)
            for path, body in pages.items():
                resp = c.get(path)
                assert resp.status == 200 and resp.body == body, path
            assert c.post("/edev", c.end_device_xml()).status == 409
            c.close()
        # a new device after the restart gets a new id, not a reused one
        c, edev, _ = setup_meter(handles.port, certs_dir, METERS[3], sep_schema)
        assert edev == "/edev/4"
        c.close()
    finally:
        stop_ieee2030_5(handles)


def test_an_unusable_state_file_is_a_clear_error(ray_runtime, certs_dir, tmp_path):
    junk = tmp_path / "state.sqlite"
    junk.write_bytes(b"this is not an SQLite database" * 200)
    with pytest.raises(ConfigError, match="cannot use the state file"):
        start_ieee2030_5(durable_config(certs_dir, junk))
    for name in (FRONT_NAME, REGISTRY_NAME):  # nothing is left behind
        with pytest.raises(ValueError):
            ray_runtime.get_actor(name)


def test_a_batch_cut_by_a_crash_retries_what_is_safe_and_503s_the_rest(
    ray_runtime, certs_dir, sep_schema, tmp_path
):
    """The front's call to the registry, given a big mixed batch while the registry is
    SIGKILLed: the registration in it is answered 503 (it may not be repeated blindly), every
    mirror POST is re-sent to the restarted registry and stored exactly once."""
    ray = ray_runtime
    handles = start_ieee2030_5(durable_config(certs_dir, tmp_path / "state.sqlite"))
    try:
        c, _, mup = setup_meter(handles.port, certs_dir, METERS[0], sep_schema)
        mup_id = int(mup.rsplit("/", 1)[1])
        newcomer = Sep2Client(handles.port, certs_dir, METERS[1], sep_schema)
        n = 30_000  # long enough (seconds) that the kill lands while the batch runs
        posts = [
            Op(
                "mirror.post_readings",
                c.identity,
                T0,
                (
                    mup_id,
                    (
                        MirrorMeterReading(
                            0x0A,
                            reading_sets=(
                                ReadingSet(k + 1, T0 + 900 * k, 900, (Reading(k, T0 + 900 * k),)),
                            ),
                        ),
                    ),
                ),
            )
            for k in range(n)
        ]
        who = newcomer.identity
        ops = [Op("edev.register", who, T0, (EndDeviceIn(sfdi=who.sfdi),)), *posts]
        old_pid = ray.get(handles.registry.pid.remote(), timeout=30)
        killer = threading.Timer(0.3, os.kill, (old_pid, signal.SIGKILL))
        killer.start()
        outcomes = asyncio.run(FrontActor._call_registry(handles.registry)(ops))
        killer.join()
        assert ray.get(handles.registry.pid.remote(), timeout=60) != old_pid
        assert isinstance(outcomes[0], Unavailable)
        assert all(isinstance(o, Created) for o in outcomes[1:])
        status = status_ieee2030_5(handles)
        assert status["readings_mirrored"] == n and status["registered_devices"] == 1
        newcomer.register()  # the client's retry of its 503
        c.close()
        newcomer.close()
    finally:
        stop_ieee2030_5(handles)
