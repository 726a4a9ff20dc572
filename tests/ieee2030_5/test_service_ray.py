"""The 2030.5 server under Ray: named registry and front actors, status, restart of the front
without losing registrations or readings, clean stop."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.codec import NS
from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
from gtx_ray.ieee2030_5.server.service import (
    FRONT_NAME,
    REGISTRY_NAME,
    restart_front,
    start_ieee2030_5,
    status_ieee2030_5,
    status_ieee2030_5_async,
    stop_ieee2030_5,
)
from tests.ieee2030_5.helpers import Sep2Client, mirror_usage_point_xml, reading_type_xml

pytestmark = pytest.mark.ray
METER = "AMI_METER_UTCC_020"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_front_restart_keeps_registrations_and_readings(ray_runtime, certs_dir, sep_schema):
    ray = ray_runtime
    config = Ieee2030_5Config(certs_dir=certs_dir, port=0)
    handles = start_ieee2030_5(config)
    try:
        assert ray.get_actor(REGISTRY_NAME) and ray.get_actor(FRONT_NAME)
        with pytest.raises(ConfigError, match="already running"):
            start_ieee2030_5(config)
        c = Sep2Client(handles.port, certs_dir, METER, sep_schema)
        edev = c.register()
        mmr = f"<MirrorMeterReading><mRID>20</mRID>{reading_type_xml()}</MirrorMeterReading>"
        mup = c.post("/mup", mirror_usage_point_xml("20" * 16, c.identity.lfdi, mmr))
        assert mup.status == 201
        reading = (
            f'<MirrorMeterReading xmlns="{NS}"><mRID>20</mRID><Reading><timePeriod>'
            "<duration>900</duration><start>1767225600</start></timePeriod><value>4242</value>"
            "</Reading></MirrorMeterReading>"
        )
        assert c.post(mup.headers["location"], reading).status == 201
        c.close()
        status = status_ieee2030_5(handles)
        assert status["enabled"] and status["listening"] and status["port"] == handles.port
        assert status["registered_devices"] == 1 and status["readings_mirrored"] == 1
        assert status["server_errors"] == 0 and status["errors"] == []

        old_port = handles.port
        handles = restart_front(handles)
        c = Sep2Client(handles.port, certs_dir, METER, sep_schema)
        assert c.get(edev).status == 200
        assert c.post("/edev", c.end_device_xml()).status == 409
        upt = c.get("/upt").all("UsagePoint")[0].get("href")
        assert c.get(f"{upt}/mr/1/r").text("value") == "4242"
        c.close()
        status = status_ieee2030_5(handles)
        assert status["listening"] and status["registered_devices"] == 1
        async_status = asyncio.run(status_ieee2030_5_async(handles))
        assert async_status["listening"] and async_status["readings_mirrored"] == 1
        if old_port != handles.port:
            assert not _port_open(old_port)
    finally:
        stop_ieee2030_5(handles)
    assert not _port_open(handles.port)
    with pytest.raises(ValueError):
        ray.get_actor(FRONT_NAME)
    status = status_ieee2030_5(handles)
    assert status["listening"] is False and status["errors"]


def test_disabled_and_misconfigured(ray_runtime, tmp_path, certs_dir):
    handles = start_ieee2030_5(Ieee2030_5Config(enabled=False))
    assert status_ieee2030_5(handles) == {"enabled": False, "host": "127.0.0.1"}
    stop_ieee2030_5(handles)
    with pytest.raises(ConfigError, match="certs init"):
        start_ieee2030_5(Ieee2030_5Config(certs_dir=tmp_path, port=0))
    with socket.socket() as busy:  # a port someone else holds
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = Ieee2030_5Config(certs_dir=certs_dir, port=busy.getsockname()[1])
        with pytest.raises(ConfigError, match="cannot listen"):
            start_ieee2030_5(config)
    for name in (FRONT_NAME, REGISTRY_NAME):  # nothing is left behind
        with pytest.raises(ValueError):
            ray_runtime.get_actor(name)
