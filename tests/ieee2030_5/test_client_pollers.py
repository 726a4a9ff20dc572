"""The function-set seam against the real server on real mutual-TLS sockets: a meter's pollers
are called after registration with its session and the links it discovered, at their own pace,
and a poller that fails backs off on its own while the meter keeps mirroring."""

from __future__ import annotations

import time

import numpy as np

from gtx_ray.fleet import MeterArrays
from gtx_ray.ieee2030_5.client.discovery import Links
from gtx_ray.ieee2030_5.client.fleet import MeterClients
from gtx_ray.ieee2030_5.client.session import Session, text
from gtx_ray.ieee2030_5.client.settings import ClientSettings
from gtx_ray.ieee2030_5.identity import normalise_lfdi
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.model.meters import MeterModel
from tests.ieee2030_5.helpers import ThreadedServer

T0 = 1_767_225_600
INTERVAL_S = 15


class Probe:
    """Reads the meter's own EndDevice through the links (so the meter must be registered) and
    records what it was given; polls again after 0.2 s."""

    name = "probe"

    def __init__(self) -> None:
        self.calls: list[tuple[Links, int, str | None]] = []

    async def poll(self, session: Session, links: Links, now: int) -> float:
        assert links.end_device.href is not None
        edev = await session.get(links.end_device.href, "EndDevice")
        self.calls.append((links, now, text(edev, "lFDI")))
        return 0.2


class Broken:
    """A function set whose resource the server does not have: every poll ends in a 404."""

    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    async def poll(self, session: Session, links: Links, now: int) -> float:
        self.calls += 1
        await session.get(session.join("/no-such-function-set"), "DemandResponseProgramList")
        return 1.0


def test_pollers_run_after_registration_and_a_failing_one_does_not_stop_mirroring(
    certs_dir, meter_ids, campus
):
    ids = meter_ids[:2]
    made: dict[str, tuple[Probe, Broken]] = {}

    def pollers(meter_id: str) -> tuple[Probe, Broken]:
        made[meter_id] = (Probe(), Broken())
        return made[meter_id]

    model = MeterModel(MeterArrays.from_specs(campus.meters[:2]), campus, 11, INTERVAL_S)
    window = model.step(model.initial_state(T0), 4)
    server = ThreadedServer(
        Ieee2030_5Config(certs_dir=certs_dir, port=0, post_rate_s=1, poll_rate_s=2)
    )
    clients = MeterClients(
        certs_dir,
        ids,
        f"https://127.0.0.1:{server.port}",
        interval_s=INTERVAL_S,
        settings=ClientSettings(backoff_base_s=0.05, backoff_cap_s=0.4),
        pollers=pollers,
    )
    try:
        clients.start()
        clients.submit(window.batch)

        def done() -> bool:
            return all(
                s["readings_posted"] == 4
                and s["function_sets"]["probe"]["polls"] >= 3
                and s["function_sets"]["broken"]["errors"] >= 2
                for s in clients.status()
            )

        deadline = time.monotonic() + 30
        while not done():
            assert time.monotonic() < deadline, clients.status()
            time.sleep(0.05)
        status = clients.stop(5)  # final: no poll runs after this
    finally:
        clients.stop(5)
        server.stop()

    for s in status:
        probe, broken = made[s["meter_id"]]
        links, now, lfdi = probe.calls[0]
        # called after registration: its own EndDevice answers, with the meter's LFDI
        assert lfdi is not None and normalise_lfdi(lfdi) == s["lfdi"]
        assert links.end_device.href is not None
        assert links.end_device.href.path == s["end_device_href"]
        assert abs(now - time.time()) < 60
        # the links of DeviceCapability, the EndDevice and its FunctionSetAssignments
        dcap = links.device_capability
        assert dcap.link("EndDeviceListLink") and dcap.link("MirrorUsagePointListLink")
        assert links.end_device.link("FunctionSetAssignmentsListLink")
        assert links.function_sets and links.function_sets[0].link("TimeLink")
        assert links.all("TimeLink") == [dcap.link("TimeLink")]  # the same /tm everywhere
        fs = s["function_sets"]
        assert fs["probe"]["errors"] == 0 and fs["probe"]["last_error"] is None
        # the failing poller backs off on its own (no spinning) ...
        assert fs["broken"]["polls"] == 0 and 2 <= fs["broken"]["errors"] == broken.calls < 60
        assert "Gone" in fs["broken"]["last_error"] and "404" in fs["broken"]["last_error"]
        # ... and the meter is untouched: registered once, every reading posted, no error
        assert s["state"] == "stopped" and s["registrations"] == 1
        assert s["readings_posted"] == 4 and s["posts_failed"] == 0 and s["last_error"] is None


def test_a_fleet_registered_at_once_does_not_poll_in_a_herd():
    """After discovery every poller polls at once; its next poll comes after a random share
    (FIRST_REPOLL_SHARE..1) of its pollRate, then every pollRate: 200 meters registered in the
    same second spread their polls over the period instead of polling together each time."""
    import asyncio
    import logging

    from gtx_ray.ieee2030_5.client.backoff import RateLimitedLog
    from gtx_ray.ieee2030_5.client.pollers import FIRST_REPOLL_SHARE, PollerSchedule

    class Every100s:
        name = "every100s"

        async def poll(self, session, links, now) -> float:
            return 100.0

    warnings = RateLimitedLog(logging.getLogger("test"))
    schedules = [
        PollerSchedule([Every100s()], ClientSettings(), f"M{i}", warnings) for i in range(200)
    ]

    async def first_polls() -> list[float]:
        nexts = []
        for schedule in schedules:
            now = time.monotonic()
            schedule.start(now)
            await schedule.run(schedule.due(now), None, None, 0)
            nexts.append(schedule.next_at() - now)
            await schedule.run(schedule.due(schedule.next_at()), None, None, 0)  # then steady
            assert 99.0 <= schedule.next_at() - time.monotonic() <= 100.0
        return nexts

    delays = asyncio.run(first_polls())
    assert all(100 * FIRST_REPOLL_SHARE - 1 <= d <= 100.0 for d in delays)
    counts, _ = np.histogram(delays, bins=9, range=(10, 100))
    assert counts.min() >= 5, counts  # spread over the period, not bunched
