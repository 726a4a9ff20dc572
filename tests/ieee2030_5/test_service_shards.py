"""The 2030.5 registry sharded by LFDI over several actors (real Ray, real mutual TLS): devices
land in both shards and keep unique ids; an event the operator publishes reaches every device
whatever its shard, and the Responses they post are counted together; admin actions on one
device reach its shard; a restart on the same state keeps everything, and the state refuses
another shard count with a clear error."""

from __future__ import annotations

import os
import signal
import time

import pytest

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.pki import load_devices_index
from gtx_ray.ieee2030_5.server.service import (
    start_ieee2030_5,
    status_ieee2030_5,
    stop_ieee2030_5,
)
from gtx_ray.ieee2030_5.server.shards import shard_of
from tests.ieee2030_5.helpers import Q, Sep2Client
from tests.ieee2030_5.test_service_durable import durable_config, set_xml, setup_meter

pytestmark = pytest.mark.ray
T0 = 1_767_225_600


def _two_per_shard(certs_dir) -> list[str]:
    """Meters whose LFDIs put two in each of 2 shards (so the test never depends on luck)."""
    by_shard: dict[int, list[str]] = {0: [], 1: []}
    for meter, row in sorted(load_devices_index(certs_dir).items()):
        by_shard[shard_of(str(row["lfdi"]), 2)].append(meter)
    assert len(by_shard[0]) >= 2 and len(by_shard[1]) >= 2
    return by_shard[0][:2] + by_shard[1][:2]


def _link(resp_or_el, name: str) -> str:
    el = getattr(resp_or_el, "doc", resp_or_el)
    return el.find(f"{Q}{name}").get("href")


def _dr_events(c: Sep2Client) -> tuple[str, dict[str, str]]:
    """The device's ResponseList href and the EndDeviceControls it sees (mRID → replyTo)."""
    edev = c.get("/edev").doc.find(Q + "EndDevice").get("href")
    fsa = c.get(_link(c.get(edev), "FunctionSetAssignmentsListLink") + "?l=10")
    links = {
        el.tag.split("}")[1]: el.get("href")
        for el in fsa.all("FunctionSetAssignments")[0]
        if el.tag.endswith("Link")
    }
    program = c.get(links["DemandResponseProgramListLink"] + "?l=10").all("DemandResponseProgram")[
        0
    ]
    edcs = c.get(_link(program, "EndDeviceControlListLink") + "?l=100").all("EndDeviceControl")
    rsps = c.get(links["ResponseSetListLink"] + "?l=10").all("ResponseSet")[0]
    return _link(rsps, "ResponseListLink"), {
        e.find(Q + "mRID").text: e.get("replyTo") for e in edcs
    }


def test_a_sharded_registry_serves_every_device_as_one(
    ray_runtime, certs_dir, sep_schema, tmp_path
):
    ray = ray_runtime
    config = durable_config(certs_dir, tmp_path / "ieee2030_5" / "state.sqlite")
    sharded = type(config)(**{**config.__dict__, "registry_shards": 2})
    meters = _two_per_shard(certs_dir)
    handles = start_ieee2030_5(sharded)
    pages: dict[str, dict[str, bytes]] = {}
    try:
        clients = {}
        for i, meter in enumerate(meters):
            c, edev, mup = setup_meter(handles.port, certs_dir, meter, sep_schema)
            for k in range(2 + i):
                assert c.post(mup, set_xml(100 * i + k, T0 + 3600 * k)).status == 201
            clients[meter] = (c, edev, mup)
        status = status_ieee2030_5(handles)
        assert status["registered_devices"] == 4 and status["shard_devices"] == [2, 2]
        assert status["readings_mirrored"] == 4 * (2 + 3 + 4 + 5)
        devices = ray.get(handles.registry.admin.remote("list_devices"), timeout=30)
        ids = [d["id"] for d in devices]
        assert len(ids) == 4 and len(set(ids)) == 4, ids
        assert sorted(ids) == sorted(int(e.rsplit("/", 1)[1]) for _, e, _ in clients.values())

        # the operator publishes once; every device sees the same event and answers it
        now = int(time.time())
        event = ray.get(
            handles.registry.admin.remote(
                "create_dr_event", start=now + 3600, duration_s=900, reduction_pct=20.0
            ),
            timeout=30,
        )
        for meter, (c, _, _) in clients.items():
            rsp_list, seen = _dr_events(c)
            assert event["mrid"] in seen, meter
            body = (
                '<DrResponse xmlns="urn:ieee:std:2030.5:ns">'
                f"<createdDateTime>{now}</createdDateTime>"
                f"<endDeviceLFDI>{c.identity.lfdi}</endDeviceLFDI>"
                f"<status>1</status><subject>{event['mrid']}</subject></DrResponse>"
            )
            assert c.post(rsp_list, body).status == 201
        (listed,) = ray.get(handles.registry.admin.remote("list_dr_events"), timeout=30)
        assert listed["mrid"] == event["mrid"] and listed["responses"] == {"event_received": 4}
        responses = ray.get(handles.registry.admin.remote("list_responses"), timeout=30)
        assert len(responses) == 4 and len({r["lfdi"] for r in responses}) == 4

        # an admin action on one device reaches that device's shard
        gone = meters[3]
        c, edev, _ = clients.pop(gone)
        ray.get(
            handles.registry.admin.remote("remove_device", device_id=int(edev.rsplit("/", 1)[1])),
            timeout=30,
        )
        assert c.get(edev).status == 404
        c.close()
        for meter, (c, edev, mup) in clients.items():
            upt = mup.replace("/mup/", "/upt/")
            pages[meter] = {p: c.get(p).body for p in (edev, mup, f"{upt}/mr/1/rs?l=100")}
            c.close()
    finally:
        stop_ieee2030_5(handles)

    handles = start_ieee2030_5(sharded)  # the same state: the same devices and history
    try:
        assert status_ieee2030_5(handles)["shard_devices"] == [2, 1]
        for meter, seen in pages.items():
            c = Sep2Client(handles.port, certs_dir, meter, sep_schema)
            for path, body in seen.items():
                resp = c.get(path)
                assert resp.status == 200 and resp.body == body, (meter, path)
            assert event["mrid"] in _dr_events(c)[1]
            c.close()
        # a shard killed and restarted by Ray takes shard 0's events: one published while it
        # was down reaches its devices too
        shard_1 = handles.shards[1]
        os.kill(ray.get(shard_1.pid.remote(), timeout=30), signal.SIGKILL)
        later = ray.get(
            handles.registry.admin.remote(
                "create_dr_event", start=now + 7200, duration_s=900, reduction_pct=10.0
            ),
            timeout=120,
        )
        c = Sep2Client(handles.port, certs_dir, meters[2], sep_schema)  # a device of shard 1
        assert {event["mrid"], later["mrid"]} <= set(_dr_events(c)[1])
        c.close()
    finally:
        stop_ieee2030_5(handles)
    with pytest.raises(ConfigError, match="written with 2 registry shard"):
        start_ieee2030_5(config)  # one shard would not find half the devices
