"""Environment variables and CLI flags → one validated ``Settings``.

Flags override the environment; the environment overrides defaults. Every invalid value raises
``ConfigError`` with a message naming the flag or variable, which the CLI prints as one line and
turns into exit code 2.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gtx_ray.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PACKAGE_ROOT / "config" / "utcc_campus_config.json"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(y|w|d|h|m|s)")
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
# Simulated time the whole pipeline handles: InfluxDB keeps 1677-2262 (int64 ns), the holiday
# calendar and numpy are fine in between; a century either side of today is plenty.
EARLIEST_S = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp())
LATEST_S = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp())
_RESERVED_NAMESPACE = "_ray_internal"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs. Times are UTC epoch seconds; durations and intervals are seconds."""

    config_file: Path = DEFAULT_CONFIG
    scenario_file: Path | None = None  # DR events, tariff changes and notices of the run
    meters: int | None = None  # None: the campus from the config file
    meters_per_actor: int | None = None  # None: automatic
    seed: int = 42
    interval_s: int = 15
    start_s: int | None = None  # None: now
    speed: float | None = 1.0  # simulated seconds per wall second; None = as fast as possible
    duration_s: int | None = None  # None: forever
    data_dir: Path = Path("data")
    api_enabled: bool = True
    keep_serving: bool = False  # after a bounded run: REST API and 2030.5 server stay up
    api_host: str = "127.0.0.1"
    api_port: int = 4040
    admin_token: str | None = None  # GTX_ADMIN_TOKEN: required for control calls when set
    api_cors_origins: tuple[str, ...] = ()  # API_CORS_ORIGINS: web origins allowed to control
    influxdb_enabled: bool = True
    influxdb_url: str = "http://localhost:8086"
    influxdb_token: str = ""
    influxdb_org: str = "gridtokenx"  # the seed's defaults (GridTokenX)
    influxdb_bucket: str = "meter_readings_2y"
    influxdb_api: str = "auto"  # auto (from /ping), v1 or v2
    ieee2030_5_enabled: bool = True
    ieee2030_5_port: int = 8443
    ieee2030_5_host: str = "127.0.0.1"
    certs_dir: Path = Path("certs")
    ieee2030_5_server: str | None = None  # external server for the meters; None: the built-in
    ieee2030_5_ca: Path | None = None  # its trust anchor
    ieee2030_5_post: str | None = None  # every | sampled | off; None: by speed
    ieee2030_5_pin: int = 111115
    ieee2030_5_state_dir: Path | None = None  # 2030.5 registry state; None: DATA_DIR/ieee2030_5
    ieee2030_5_replicas: int | None = None  # Ray Serve replicas of the TLS front; None: one actor
    ieee2030_5_registry_shards: int = 1  # registry actors the devices are spread over by LFDI
    address: str | None = None  # Ray cluster address; None: join a local cluster or start one
    namespace: str = "gtx_ray"
    home_node: str | None = None  # node of the clock, storage, REST and 2030.5; None: the driver's
    max_in_flight: int = 4
    aggregators: int = 1  # storage actors, each for a share of the meter groups
    window_intervals: int | None = None  # None: automatic
    status_every_s: float = 5.0
    drain_timeout_s: float = 120.0  # a bounded run's wait at its end for spooled readings


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true or false)")


def parse_int(name: str, value: str, low: int | None = None, high: int | None = None) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if low is not None and number < low:
        raise ConfigError(f"{name}={number} is too small (minimum {low})")
    if high is not None and number > high:
        raise ConfigError(f"{name}={number} is too large (maximum {high})")
    return number


def parse_port(name: str, value: str) -> int:
    return parse_int(name, value, 1, 65535)


def parse_interval(name: str, value: str) -> int:
    seconds = parse_int(name, value, 1, 86400)
    if 86400 % seconds:
        raise ConfigError(
            f"{name}={seconds} must divide a day into whole intervals "
            "(e.g. 1, 5, 15, 60, 300, 900, 3600)"
        )
    return seconds


def parse_api(name: str, value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in ("auto", "v1", "v2"):
        raise ConfigError(f"{name}={value!r} must be auto, v1 or v2")
    return lowered


def parse_origins(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated web origins (``http://host:port``), normalised as browsers send them."""
    from gtx_ray.serve.origins import normalise_origin  # pure, no web framework

    try:
        return tuple(normalise_origin(part) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def parse_speed(name: str, value: str) -> float | None:
    """``max`` (as fast as the sinks accept), ``realtime`` (1) or simulated s per wall s."""
    lowered = value.strip().lower()
    if lowered == "max":
        return None
    if lowered in {"realtime", "real-time"}:
        return 1.0
    try:
        speed = float(lowered)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a speed (a number > 0, or 'max')") from None
    if not math.isfinite(speed) or speed <= 0:
        raise ConfigError(f"{name}={value!r} must be a number > 0, or 'max'")
    return speed


def parse_start(name: str, value: str, tz: ZoneInfo, now_s: float | None = None) -> int:
    """ISO 8601 date or date-time; without an offset it is the campus's local time. ``now`` is
    the current time."""
    text = value.strip()
    if text.lower() == "now":
        return int(now_s if now_s is not None else datetime.now(UTC).timestamp())
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{name}={value!r} is not an ISO 8601 date or date-time "
            "(e.g. 2024-01-01 or 2024-01-01T08:00:00+07:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        start_s = int(moment.timestamp())
    except (OverflowError, ValueError):
        start_s = None
    if start_s is None or not EARLIEST_S <= start_s < LATEST_S:
        raise ConfigError(
            f"{name}={value!r} is out of range: the simulator covers {_day(EARLIEST_S)} "
            f"to {_day(LATEST_S - 1)}"
        )
    return start_s


def _day(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")


def parse_duration(name: str, value: str, start_s: int, tz: ZoneInfo) -> int:
    """``90m``, ``1d``, ``1h30m``, ``2w``, ``2y`` (calendar years from the start) or seconds."""
    text = value.strip().lower()
    if text.isdigit():
        seconds = int(text)
    else:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ConfigError(f"{name}={value!r} is not a duration (e.g. 90m, 1d, 1h30m, 2y)")
        start = datetime.fromtimestamp(start_s, tz)
        seconds = 0.0
        for number, unit in parts:
            if unit == "y":
                years = float(number)
                if not years.is_integer():
                    raise ConfigError(f"{name}={value!r}: years must be whole")
                year = start.year + int(years)
                if year > 9999:  # beyond datetime; far beyond LATEST_S anyway
                    seconds = math.inf
                    break
                try:
                    end = start.replace(year=year)
                except ValueError:  # 29 February
                    end = start.replace(year=year, day=28)
                seconds += (end - start).total_seconds()
            else:
                seconds += float(number) * _UNIT_SECONDS[unit]
    if seconds <= 0:
        raise ConfigError(f"{name}={value!r} must be longer than 0 s")
    if seconds == math.inf or start_s + seconds > LATEST_S:  # huge ints stay exact
        raise ConfigError(
            f"{name}={value!r} is too long: the run would end after {_day(LATEST_S - 1)}, "
            "the last day the simulator covers"
        )
    return int(seconds)


def parse_namespace(name: str, value: str) -> str:
    """A Ray namespace: a non-empty name without spaces or control characters."""
    text = value.strip()
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise ConfigError(f"{name} {value!r} must be a name without spaces (e.g. gtx_ray)")
    if text.startswith(_RESERVED_NAMESPACE):
        raise ConfigError(f"{name} {value!r}: names starting {_RESERVED_NAMESPACE} are Ray's own")
    return text


def parse_listen_host(name: str, value: str) -> str:
    """An address of this machine to listen on (``0.0.0.0``/``::`` for all): resolvable, and
    bindable (binding port 0 sends nothing)."""
    host = value.strip()
    if not host:
        raise ConfigError(f"{name} is empty (use 127.0.0.1, or 0.0.0.0 for all interfaces)")
    try:
        found = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"{name} {value!r} is not an address or a known host name ({why})"
        ) from None
    family, kind, proto, _, address = found[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(
            f"{name} {value!r} is not an address of this machine ({exc.strerror}); use "
            "127.0.0.1, 0.0.0.0 for all interfaces, or one of this machine's addresses"
        ) from None
    return host


def parse_ray_address(name: str, value: str) -> str | None:
    """``local``, ``auto``, ``host:port`` or ``ray://host:port``; None when empty."""
    text = value.strip()
    if not text:
        return None
    if text in ("local", "auto"):
        return text
    rest = text.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{name} {value!r} is not a Ray address (host:port as `ray start --head` prints it, "
            "ray://host:10001, auto or local)"
        )
    return text


def require_writable_dir(name: str, path: Path) -> None:
    """Create ``path`` if missing and prove a file can be written there (ConfigError if not)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{name} {path}: cannot create it ({exc.strerror})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".gtx-write-check-", dir=path)
    except OSError as exc:
        raise ConfigError(f"{name} {path}: cannot write there ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def from_environment(env: Mapping[str, str]) -> dict[str, object]:
    """Settings fields taken from the seed's environment variables (only those that are set)."""
    fields: dict[str, object] = {}
    readers = {
        "INFLUXDB_ENABLED": ("influxdb_enabled", parse_bool),
        "INFLUXDB_URL": ("influxdb_url", lambda n, v: v.strip()),
        "INFLUXDB_TOKEN": ("influxdb_token", lambda n, v: v),
        "INFLUXDB_ORG": ("influxdb_org", lambda n, v: v.strip()),
        "INFLUXDB_BUCKET": ("influxdb_bucket", lambda n, v: v.strip()),
        "INFLUXDB_API": ("influxdb_api", parse_api),
        "IEEE2030_5_ENABLED": ("ieee2030_5_enabled", parse_bool),
        "IEEE2030_5_PORT": ("ieee2030_5_port", parse_port),
        "API_PORT": ("api_port", parse_port),
        "API_HOST": ("api_host", parse_listen_host),
        "GTX_ADMIN_TOKEN": ("admin_token", lambda n, v: v.strip() or None),
        "API_CORS_ORIGINS": ("api_cors_origins", parse_origins),
        "SIMULATION_INTERVAL": ("interval_s", parse_interval),
        "RAY_ADDRESS": ("address", parse_ray_address),
    }
    for variable, (name, reader) in readers.items():
        raw = env.get(variable)
        if raw is not None and raw != "":
            fields[name] = reader(variable, raw)
    if "influxdb_url" in fields and not str(fields["influxdb_url"]).startswith(
        ("http://", "https://")
    ):
        raise ConfigError(
            f"INFLUXDB_URL={fields['influxdb_url']!r} must start with http:// or https://"
        )
    return fields


def duration_text(seconds: float) -> str:
    """Human-readable duration, e.g. ``1d 02:03:04``."""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    text = str(timedelta(seconds=rest))
    return f"{days}d {text}" if days else text
