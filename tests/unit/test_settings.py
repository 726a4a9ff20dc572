"""Settings parsing: every bad value is a ConfigError naming the flag, never another exception."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gtx_ray.errors import ConfigError
from gtx_ray.settings import (
    LATEST_S,
    parse_duration,
    parse_listen_host,
    parse_namespace,
    parse_ray_address,
    parse_start,
    require_writable_dir,
)

BANGKOK = ZoneInfo("Asia/Bangkok")
START_2024 = 1_704_042_000  # 2024-01-01T00:00:00+07:00


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01",
        "1899-12-31",
        "2200-01-02",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00+14:00",
    ],
)
def test_starts_outside_the_simulated_range_name_the_flag(text):
    with pytest.raises(ConfigError, match=r"--start=.*out of range"):
        parse_start("--start", text, BANGKOK)


def test_a_start_inside_the_range_is_campus_local_time():
    assert parse_start("--start", "2024-01-01", BANGKOK) == START_2024


@pytest.mark.parametrize(
    "text", ["99999y", "9" * 400 + "w", "9999999999999999999999", "9" * 400, "200y"]
)
def test_durations_past_the_range_name_the_flag(text):
    with pytest.raises(ConfigError, match=r"--duration=.*too long"):
        parse_duration("--duration", text, START_2024, BANGKOK)


def test_a_duration_may_end_exactly_at_the_last_covered_second():
    seconds = LATEST_S - START_2024
    assert parse_duration("--duration", str(seconds), START_2024, BANGKOK) == seconds
    with pytest.raises(ConfigError):
        parse_duration("--duration", str(seconds + 1), START_2024, BANGKOK)


@pytest.mark.parametrize("text", ["", "   ", "two words", "tab\there", "_ray_internal_dashboard"])
def test_bad_namespaces(text):
    with pytest.raises(ConfigError, match="--namespace"):
        parse_namespace("--namespace", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local", "local"),
        ("auto", "auto"),
        ("10.0.0.5:6379", "10.0.0.5:6379"),
        ("ray://head:10001", "ray://head:10001"),
        ("[::1]:6379", "[::1]:6379"),
        (" ", None),
    ],
)
def test_ray_addresses(text, expected):
    assert parse_ray_address("--address", text) == expected


@pytest.mark.parametrize("text", ["head", "head:", ":6379", "head:port", "head:70000", "ray://x"])
def test_bad_ray_addresses(text):
    with pytest.raises(ConfigError, match="--address"):
        parse_ray_address("--address", text)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "localhost"])
def test_hosts_of_this_machine(host):
    assert parse_listen_host("--api-host", host) == host


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("999.1.1.1", "not an address or a known host name"),
        ("203.0.113.7", "not an address of this machine"),
        ("", "empty"),
    ],
)
def test_hosts_that_cannot_be_listened_on_blame_the_host_flag(host, why):
    with pytest.raises(ConfigError, match="--api-host") as caught:
        parse_listen_host("--api-host", host)
    assert why in str(caught.value) and "--api-port" not in str(caught.value)


def test_a_data_dir_is_created_and_left_empty(tmp_path):
    target = tmp_path / "a" / "b"
    require_writable_dir("--data-dir", target)
    assert target.is_dir() and not any(target.iterdir())


@pytest.mark.parametrize("where", ["/proc/forbidden", "/proc/self/status/x"])
def test_data_dirs_that_cannot_be_made(where):
    with pytest.raises(ConfigError, match=f"--data-dir {where}: cannot create it"):
        require_writable_dir("--data-dir", Path(where))


def test_a_file_is_not_a_data_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        require_writable_dir("--data-dir", tmp_path / "file")


def test_a_read_only_data_dir():
    with pytest.raises(ConfigError, match="--data-dir /proc: cannot write there"):
        require_writable_dir("--data-dir", Path("/proc"))
