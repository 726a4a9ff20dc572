"""The command line: ``python -m gtx_ray [run|backfill|certs|replay] [flags]``.

``run`` (the default) starts the simulator: the campus in real time unless told otherwise.
Usage and configuration errors print one line and exit 2; Ctrl-C or SIGTERM stop the clock, store
everything in flight, end the actors and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo

from gtx_ray.errors import ConfigError, TokenAvailable
from gtx_ray.fleet import load_campus
from gtx_ray.settings import (
    DEFAULT_CONFIG,
    Settings,
    duration_text,
    from_environment,
    parse_duration,
    parse_int,
    parse_interval,
    parse_listen_host,
    parse_namespace,
    parse_port,
    parse_ray_address,
    parse_speed,
    parse_start,
    require_writable_dir,
)

log = logging.getLogger("gtx_ray")

COMMAND_TIME_S = time.time()  # when the command began (UTC epoch s): a run from now starts here

SUBCOMMANDS = ("run", "backfill", "certs", "replay")


class UsageError(Exception):
    """A command-line usage error (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser(prog: str = "gtx-ray") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Ray-distributed smart meter simulator (UTCC campus).")
    add = parser.add_argument
    add(
        "--config-file",
        help="campus configuration (default config/utcc_campus_config.json)",
    )
    add(
        "--scenario",
        help="scenario file: DR events, tariff changes, notices (see config/scenario_*.json)",
    )
    add("--meters", help="simulate N generated meters instead of the campus")
    add(
        "--meters-per-actor",
        help="meters per meter actor (default: 1 on the campus, automatic for fleets)",
    )
    add("--seed", help="random seed (default 42); a run is reproducible from it")
    add("--interval", help="seconds per reading, dividing a day (SIMULATION_INTERVAL, default 15)")
    add(
        "--start",
        help="simulated start, ISO 8601 (campus local time unless an offset is given), default now",
    )
    add("--speed", help="simulated seconds per wall second: 1 = real time (default), 60, or max")
    add("--duration", help="simulated time to run: 90m, 1d, 1h30m, 2y ... (default forever)")
    add("--data-dir", help="where Parquet output goes (default ./data)")
    add("--api-port", help="REST API port (API_PORT, default 4040)")
    add("--api-host", help="REST API address (API_HOST, default 127.0.0.1; 0.0.0.0 for all)")
    add("--disable-api", action="store_true", help="do not start the REST API")
    add(
        "--keep-serving",
        action="store_true",
        help="after a bounded run, keep the REST API, dashboard and 2030.5 server up until Ctrl-C",
    )
    add(
        "--disable-influxdb",
        action="store_true",
        help="write Parquet only (INFLUXDB_ENABLED=false)",
    )
    add(
        "--disable-ieee2030-5",
        action="store_true",
        help="no IEEE 2030.5 server (IEEE2030_5_ENABLED=false)",
    )
    add("--ieee2030-5-port", help="IEEE 2030.5 TLS port (IEEE2030_5_PORT, default 8443)")
    add("--ieee2030-5-host", help="IEEE 2030.5 listen address (default 127.0.0.1)")
    add("--certs-dir", help="IEEE 2030.5 certificates; created when missing (default ./certs)")
    add("--ieee2030-5-server", help="point the meters at this external 2030.5 server URL instead")
    add("--ieee2030-5-ca", help="trust anchor (PEM) for --ieee2030-5-server")
    add(
        "--ieee2030-5-post",
        choices=["every", "sampled", "off"],
        help="meters mirror every interval, every 4th (sampled), or none; default every, "
        "sampled with --speed max",
    )
    add("--ieee2030-5-pin", help="registration PIN (default 111115)")
    add(
        "--ieee2030-5-replicas",
        help="host the 2030.5 TLS front on N Ray Serve replicas sharing the port (default: one "
        "front actor)",
    )
    add(
        "--ieee2030-5-registry-shards",
        help="spread the 2030.5 devices by LFDI over N registry actors (default 1); a state "
        "directory keeps the count it was written with",
    )
    add(
        "--ieee2030-5-state-dir",
        help="where the 2030.5 server keeps devices, mirrors and readings across restarts "
        "(state.sqlite; default DATA_DIR/ieee2030_5)",
    )
    add(
        "--address",
        help="Ray cluster address (RAY_ADDRESS); default: a cluster on this host, else local Ray",
    )
    add("--namespace", help="Ray namespace for the named actors (default gtx_ray)")
    add(
        "--home-node",
        help="Ray node (id, id prefix or address) of the clock, storage, REST API and 2030.5 "
        "server, whose --data-dir and --certs-dir are used (default: this machine's node)",
    )
    add("--max-in-flight", help="windows between the clock and storage (default 4)")
    add(
        "--aggregators",
        help="storage actors on the home node, each storing a share of the meter groups in "
        "window order (default 1; more when one cannot keep up)",
    )
    add("--window", help="intervals per meter-actor call (default automatic)")
    add("--status-every", help="seconds between status lines (default 5)")
    add(
        "--drain-timeout",
        help="seconds a bounded run waits at its end for InfluxDB to take spooled readings "
        "(default 120; they stay spooled for the next start or `replay`)",
    )
    add("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    return parser


def settings_from(args: argparse.Namespace, env: dict[str, str], command: str) -> Settings:
    """Merge defaults, environment and flags into validated Settings (flags win)."""
    fields: dict[str, object] = from_environment(env)
    if args.config_file is not None:
        fields["config_file"] = Path(args.config_file)
    if args.scenario is not None:
        fields["scenario_file"] = Path(args.scenario)
    if args.meters is not None:
        fields["meters"] = parse_int("--meters", args.meters, 1, 10_000_000)
    if args.meters_per_actor is not None:
        fields["meters_per_actor"] = parse_int("--meters-per-actor", args.meters_per_actor, 1)
    if args.seed is not None:
        fields["seed"] = parse_int("--seed", args.seed, 0, 2**63 - 1)
    if args.interval is not None:
        fields["interval_s"] = parse_interval("--interval", args.interval)
    if args.speed is not None:
        fields["speed"] = parse_speed("--speed", args.speed)
    elif command == "backfill":
        fields["speed"] = None
    if args.data_dir is not None:
        fields["data_dir"] = Path(args.data_dir)
    if args.api_port is not None:
        fields["api_port"] = parse_port("--api-port", args.api_port)
    if args.api_host is not None:
        fields["api_host"] = parse_listen_host("--api-host", args.api_host)
    if args.disable_api:
        fields["api_enabled"] = False
    if args.disable_influxdb:
        fields["influxdb_enabled"] = False
    if args.disable_ieee2030_5:
        fields["ieee2030_5_enabled"] = False
    if args.ieee2030_5_port is not None:
        fields["ieee2030_5_port"] = parse_port("--ieee2030-5-port", args.ieee2030_5_port)
    if args.ieee2030_5_host is not None:
        fields["ieee2030_5_host"] = parse_listen_host("--ieee2030-5-host", args.ieee2030_5_host)
    if args.certs_dir is not None:
        fields["certs_dir"] = Path(args.certs_dir)
    if args.ieee2030_5_server is not None:
        if not args.ieee2030_5_server.startswith("https://"):
            raise ConfigError(f"--ieee2030-5-server {args.ieee2030_5_server!r} must be https://")
        fields["ieee2030_5_server"] = args.ieee2030_5_server
    if args.ieee2030_5_ca is not None:
        if not Path(args.ieee2030_5_ca).is_file():
            raise ConfigError(f"--ieee2030-5-ca {args.ieee2030_5_ca}: no such file")
        fields["ieee2030_5_ca"] = Path(args.ieee2030_5_ca)
    if args.ieee2030_5_post is not None:
        fields["ieee2030_5_post"] = args.ieee2030_5_post
    if args.ieee2030_5_pin is not None:
        from gtx_ray.ieee2030_5.identity import is_valid_pin

        pin = parse_int("--ieee2030-5-pin", args.ieee2030_5_pin, 0, 99_999_999)
        if not is_valid_pin(pin):
            raise ConfigError(f"--ieee2030-5-pin {pin} has no valid check digit (e.g. 111115)")
        fields["ieee2030_5_pin"] = pin
    if args.ieee2030_5_replicas is not None:
        fields["ieee2030_5_replicas"] = parse_int(
            "--ieee2030-5-replicas", args.ieee2030_5_replicas, 1, 64
        )
    if args.ieee2030_5_registry_shards is not None:
        fields["ieee2030_5_registry_shards"] = parse_int(
            "--ieee2030-5-registry-shards", args.ieee2030_5_registry_shards, 1, 64
        )
    if args.ieee2030_5_state_dir is not None:
        state_dir = Path(args.ieee2030_5_state_dir)
        require_writable_dir("--ieee2030-5-state-dir", state_dir)
        fields["ieee2030_5_state_dir"] = state_dir
    if args.address is not None:
        fields["address"] = parse_ray_address("--address", args.address)
    if args.namespace is not None:
        fields["namespace"] = parse_namespace("--namespace", args.namespace)
    if args.home_node is not None:
        fields["home_node"] = args.home_node.strip() or None
    if args.max_in_flight is not None:
        fields["max_in_flight"] = parse_int("--max-in-flight", args.max_in_flight, 1, 64)
    if args.aggregators is not None:
        fields["aggregators"] = parse_int("--aggregators", args.aggregators, 1, 64)
    if args.window is not None:
        fields["window_intervals"] = parse_int("--window", args.window, 1, 100_000)
    if args.status_every is not None:
        fields["status_every_s"] = float(parse_int("--status-every", args.status_every, 1, 3600))
    if args.keep_serving:
        fields["keep_serving"] = True
    if args.drain_timeout is not None:
        fields["drain_timeout_s"] = float(
            parse_int("--drain-timeout", args.drain_timeout, 0, 86400)
        )

    config_file = Path(fields.get("config_file", DEFAULT_CONFIG))
    if not config_file.is_file():
        raise ConfigError(f"--config-file {config_file}: no such file")
    tz = ZoneInfo("Asia/Bangkok")
    if args.start is not None:
        fields["start_s"] = parse_start("--start", args.start, tz)
    elif command == "backfill":
        raise ConfigError("backfill needs --start (e.g. --start 2024-01-01)")
    if args.duration is not None:
        start = int(fields.get("start_s") or time.time())
        fields["duration_s"] = parse_duration("--duration", args.duration, start, tz)
    elif command == "backfill":
        raise ConfigError("backfill needs --duration (e.g. --duration 2y)")
    return Settings(**fields)


def _configure_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise UsageError(f"--log-level {level!r} is not a level (DEBUG, INFO, WARNING, ERROR)")
    logging.basicConfig(
        level=numeric,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def _iso(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusLine:
    """One status line every few seconds; a progress line with ETA for bounded runs."""

    def __init__(self, n_meters: int) -> None:
        self._n_meters = n_meters
        self._last: tuple[float, int] | None = None

    def render(self, status: dict | None) -> str:
        if status is None:
            return "starting actors ..."
        clock, storage = status["clock"], status["storage"]
        now = time.time()
        stored = storage["rows_stored"]
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (stored - self._last[1]) / (now - self._last[0])
        self._last = (now, stored)
        parts = [f"sim {_iso(storage['stored_until_s'])}", f"{rate:,.0f} readings/s"]
        if clock["speed"] is not None:
            parts.append(f"lag {clock['lag_s']:.1f} s")
        # stored: in the database or Parquet; spooled: kept on disk, waiting for the database
        parts.append(f"stored {storage.get('rows_delivered', stored):,} rows")
        if storage.get("rows_spooled"):
            parts.append(f"{storage['rows_spooled']:,} spooled")
        if storage["queue_depth"]:
            parts.append(f"queue {storage['queue_depth']}")
        total = clock["intervals_total"]
        if total:
            done = clock["intervals_done"]
            elapsed = clock["wall_elapsed_s"]
            eta = elapsed / done * (total - done) if done else None
            filled = int(20 * done / total)
            bar = "#" * filled + "-" * (20 - filled)
            parts.insert(
                0,
                f"[{bar}] {100 * done / total:5.1f}% {done:,}/{total:,} intervals"
                f"{', ETA ' + duration_text(eta) if eta is not None else ''}",
            )
        for sink in storage.get("sinks", []):
            if sink.get("last_error") and not sink.get("healthy", True):
                parts.append(f"{sink['sink']}: {sink['last_error']}")
            elif sink.get("rows_pending") and sink.get("last_attempt_ok"):
                parts.append(f"{sink['sink']}: answers again, replaying the spool")
        if clock.get("recoveries"):
            last = clock["last_recovery"]
            parts.append(
                f"recovered {clock['recoveries']}x from lost windows (last: {last['cause']}; "
                f"regenerated from {_iso(last['resumed_at_s'])}, nothing missing)"
            )
        if storage.get("last_error"):
            parts.append(f"STORAGE ERROR: {storage['last_error']}")
        if clock.get("error"):
            parts.append(f"CLOCK ERROR: {clock['error']}")
        return " | ".join(parts)


class Services:
    """What a run started, each stopped exactly once: the simulation first (its in-flight
    readings stored, its 2030.5 clients posting what they hold while the server still answers),
    then the 2030.5 server, then the REST API."""

    def __init__(self) -> None:
        self.simulation = None
        self.ieee2030_5 = None
        self.api: str | None = None  # the REST API's Serve application
        # True when this process started Ray and shuts it down after the run: the REST API then
        # goes with Ray (deleting its Serve application first took ~1 s and frees nothing that
        # Ray's shutdown does not).
        self.api_ends_with_ray = False
        self._final: dict | None = None
        self._held = None  # a finished simulation whose actors the REST API still reads

    def finish_keeping_actors(self) -> dict:
        """Store everything and close the sinks, but keep the simulation's actors for the REST
        API to serve the results from (``--keep-serving``); ``stop`` ends them."""
        simulation, self.simulation = self.simulation, None
        self._final = simulation.finish(keep_actors=True)
        self._held = simulation
        return self._final

    def stop(self) -> dict | None:
        began = time.monotonic()
        if self.simulation is not None:
            simulation, self.simulation = self.simulation, None
            simulation.stop()
            self._final = simulation.finish()
            log.debug("stopped the simulation in %.1f s", time.monotonic() - began)
        if self._held is not None:
            held, self._held = self._held, None
            held.release()
        if self.ieee2030_5 is not None:
            from gtx_ray.ieee2030_5.server.service import stop_ieee2030_5

            stop_ieee2030_5(self.ieee2030_5)
            self.ieee2030_5 = None
            log.debug("stopped the 2030.5 server at %.1f s", time.monotonic() - began)
        if self.api is not None and self.api_ends_with_ray:
            self.api = None  # still answering until Ray shuts down
        elif self.api is not None:
            from gtx_ray.serve.api import stop_rest_api

            stop_rest_api(self.api)
            self.api = None
            log.debug("stopped the REST API at %.1f s", time.monotonic() - began)
        return self._final


def ensure_certificates(settings: Settings) -> list[str]:
    """Create the CA chain, server and device certificates the fleet lacks; return meter ids."""
    from gtx_ray.ieee2030_5.pki import init_certs
    from gtx_ray.runtime import build_fleet

    _, meters, _ = build_fleet(settings)
    ids = [str(m) for m in meters.meter_id]
    if len(ids) > 5000:
        log.info("creating IEEE 2030.5 certificates for %d meters if missing ...", len(ids))
    report = init_certs(settings.certs_dir, ids)
    if report.created:
        log.info(
            "certificates: %d created, %d kept in %s",
            report.created,
            report.kept,
            settings.certs_dir,
        )
    return ids


def client_plan(settings: Settings, handles, n_meters: int):
    """The meters' 2030.5 client settings: the built-in server (handles) or an external one."""
    from gtx_ray.actors.meter import ClientPlan

    if settings.ieee2030_5_server is not None:
        url = settings.ieee2030_5_server
    else:
        host = (
            "127.0.0.1"
            if settings.ieee2030_5_host in ("0.0.0.0", "::")
            else settings.ieee2030_5_host
        )
        url = f"https://{host}:{handles.port}"
    mode = settings.ieee2030_5_post or ("sampled" if settings.speed is None else "every")
    log.info("%d meters are IEEE 2030.5 clients of %s (posting: %s)", n_meters, url, mode)
    return ClientPlan(
        certs_dir=str(Path(settings.certs_dir).resolve()),
        server_url=url,
        ca_file=str(settings.ieee2030_5_ca) if settings.ieee2030_5_ca else None,
        pin=settings.ieee2030_5_pin,
        post_mode=mode,
    )


def post_rate_s(settings: Settings) -> int:
    """The postRate the built-in server advertises, wall seconds: one simulated interval's worth
    of wall time (15 s for the real-time campus), at least 1 s."""
    if settings.speed is None:
        return 1
    return max(1, int(settings.interval_s / settings.speed))


SMALL_FLEET = 1_000
"""Up to this many meters the built-in server asks for a poll a minute, beyond it the standard's
default 900 s (each poll of the event function sets is a handful of requests per meter)."""


def poll_rate_s(settings: Settings, meters: int) -> int:
    """The pollRate the built-in server advertises, wall seconds: 60 s for small fleets (a
    demand-response event created a few minutes ahead reaches every meter in time), 900 s for
    large ones; never more than a simulated quarter hour of wall time, at least 5 s."""
    rate = 60 if meters <= SMALL_FLEET else 900
    if settings.speed is not None:
        rate = min(rate, max(5, int(900 / settings.speed)))
    return rate


def ieee2030_5_state_path(settings: Settings) -> Path:
    """The 2030.5 registry's SQLite file: in --ieee2030-5-state-dir, else DATA_DIR/ieee2030_5."""
    state_dir = settings.ieee2030_5_state_dir or Path(settings.data_dir) / "ieee2030_5"
    return Path(state_dir).resolve() / "state.sqlite"


def start_ieee2030_5_server(settings: Settings):
    """Start the 2030.5 registry and TLS front (certificates must exist)."""
    from gtx_ray.ieee2030_5.server.config import Ieee2030_5Config
    from gtx_ray.ieee2030_5.server.service import start_ieee2030_5
    from gtx_ray.runtime import build_fleet

    campus, meters, _ = build_fleet(settings)
    config = Ieee2030_5Config(
        host=settings.ieee2030_5_host,
        port=settings.ieee2030_5_port,
        certs_dir=settings.certs_dir,
        pin=settings.ieee2030_5_pin,
        poll_rate_s=poll_rate_s(settings, len(meters)),
        post_rate_s=post_rate_s(settings),
        state_path=ieee2030_5_state_path(settings),
        tariff=server_tariff(campus.model_tariff()),
        registry_shards=settings.ieee2030_5_registry_shards,
        node_id=settings.home_node,
    )
    if settings.ieee2030_5_replicas is not None:
        from gtx_ray.ieee2030_5.server.serve_front import start_ieee2030_5_serve

        handles = start_ieee2030_5_serve(config, settings.ieee2030_5_replicas)
    else:
        handles = start_ieee2030_5(config)
    publish_scenario(settings, handles, campus.model_tariff())
    log.info(
        "IEEE 2030.5 server on https://%s:%d/dcap (mutual TLS%s)",
        settings.ieee2030_5_host,
        handles.port,
        f", {settings.ieee2030_5_replicas} Ray Serve replicas"
        if settings.ieee2030_5_replicas
        else "",
    )
    return handles


def server_tariff(tariff):
    """The configured tariff as the 2030.5 server publishes it (in force from the epoch)."""
    from gtx_ray.ieee2030_5.events import TimeOfUseRates

    return TimeOfUseRates(
        effective_from=0,
        on_peak_start_hour=tariff.on_peak_start_hour,
        on_peak_end_hour=tariff.on_peak_end_hour,
        on_peak_thb_per_kwh=tariff.on_peak_thb_per_kwh,
        off_peak_thb_per_kwh=tariff.off_peak_thb_per_kwh,
        ft_thb_per_kwh=tariff.ft_thb_per_kwh,
        export_thb_per_kwh=tariff.export_thb_per_kwh,
        name="MEA TOU",
    )


def publish_scenario(settings: Settings, handles, campus_tariff) -> None:
    """Put the scenario's events, tariff changes and notices on the built-in server (stable
    mRIDs: publishing again after a restart changes nothing)."""
    if settings.scenario_file is None or handles.registry is None:
        return
    import ray

    from gtx_ray.ieee2030_5.pki import load_devices_index
    from gtx_ray.scenario import load_scenario, server_actions

    scenario = load_scenario(settings.scenario_file)
    index = load_devices_index(settings.certs_dir)
    lfdi_of = {meter_id: str(row["lfdi"]) for meter_id, row in index.items()}
    actions = server_actions(scenario, lfdi_of, campus_tariff)
    ray.get([handles.registry.admin.remote(a, **kw) for a, kw in actions], timeout=60)
    log.info(
        "scenario %s: %d DR events, %d tariff changes, %d notices, %d DER controls "
        "and %d DER defaults on the 2030.5 server",
        settings.scenario_file,
        len(scenario.events),
        len(scenario.tariffs),
        len(scenario.messages),
        len(scenario.der_controls),
        sum(a == "set_default_der_control" for a, _ in actions),
    )
    targeted = sum(d.targets is not None for d in scenario.der_defaults)
    if targeted:
        log.warning(
            "scenario %s: %d DER defaults name targets: the model follows them, but the "
            "built-in 2030.5 server has one DefaultDERControl for every DER and does not "
            "publish them",
            settings.scenario_file,
            targeted,
        )


def count_check(settings: Settings, simulation, stop: threading.Event | None = None) -> None:
    """After a bounded run: wait for the spool to drain (until ``stop`` is set: Ctrl-C or
    SIGTERM), then count the points InfluxDB 1.x holds for the run's time range and compare
    with what was generated."""
    from gtx_ray.runtime import influx_config
    from gtx_ray.storage.influx import InfluxError, influxql

    simulation.wait(timeout_s=None)
    waiting = wait_for_spool(settings, simulation, stop=stop)
    if waiting:
        log.warning(
            "count check skipped: %s readings still spooled in %s (InfluxDB did not take them); "
            "they are written on the next start or by `replay --data-dir %s`",
            f"{waiting:,}",
            Path(settings.data_dir).resolve() / "spool",
            settings.data_dir,
        )
        return
    plan = simulation.plan
    expected = simulation.n_meters * ((plan.end_s - plan.start_s) // plan.interval_s)
    config = influx_config(settings)
    query = (
        f"SELECT count(energy_consumed) FROM meter_readings WHERE time >= {plan.start_s}s "
        f"AND time < {plan.end_s}s"
    )
    try:
        rows = influxql(config, query)
    except InfluxError as exc:
        log.info("count check skipped: %s", exc)
        return
    stored = int(rows[0]["count"]) if rows else 0
    if stored == expected:
        log.info("count check: InfluxDB holds all %s readings of this run", f"{expected:,}")
    else:
        log.error(
            "count check: InfluxDB holds %s readings for this run, expected %s",
            f"{stored:,}",
            f"{expected:,}",
        )


def wait_for_spool(
    settings: Settings,
    simulation,
    progress_every_s: float = 10.0,
    stop: threading.Event | None = None,
) -> int:
    """Wait up to ``settings.drain_timeout_s`` (or until ``stop`` is set) for InfluxDB to take
    the spooled readings, saying what it waits for, until when, and how it goes; return the
    readings still spooled."""
    import ray

    waiting = ray.get(simulation.aggregator.drain.remote(0.0))  # after the queue is stored
    if not waiting:
        return 0
    timeout_s = settings.drain_timeout_s
    deadline = time.monotonic() + timeout_s
    until = datetime.now().astimezone() + timedelta(seconds=timeout_s)
    log.info(
        "waiting up to %.0f s for InfluxDB at %s to take %s spooled readings (until %s)",
        timeout_s,
        settings.influxdb_url,
        f"{waiting:,}",
        until.strftime("%H:%M:%S"),
    )
    next_progress = time.monotonic() + progress_every_s
    while waiting and time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            log.info("stop requested: no longer waiting for InfluxDB")
            break
        step = min(2.0, max(0.0, deadline - time.monotonic()))
        waiting = ray.get(simulation.aggregator.drain.remote(step))
        if waiting and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + progress_every_s
            status = simulation.status() or {}
            sinks = status.get("storage", {}).get("sinks", [])
            why = next((s["last_error"] for s in sinks if s.get("last_error")), None)
            log.info(
                "still %s readings spooled, %.0f s left: %s",
                f"{waiting:,}",
                max(0.0, deadline - time.monotonic()),
                why or "InfluxDB answers, replaying",
            )
    return waiting


def missing_span(
    plan, stored_until_s: int, issued_until_s: int, stopped: bool
) -> tuple[int, int] | None:
    """The simulated span [from, to) (UTC epoch s) a run should have stored and did not: up to
    its end for a bounded run that was not stopped, else up to what the clock issued."""
    target = issued_until_s if stopped or plan.end_s is None else plan.end_s
    return (stored_until_s, target) if stored_until_s < target else None


def _log_missing(plan, n_meters: int, span: tuple[int, int]) -> None:
    intervals = (span[1] - span[0]) // plan.interval_s
    log.error(
        "MISSING: intervals %s to %s are not stored (%s intervals x %d meters = %s readings); "
        "re-run that span with --start %s --duration %ds",
        _iso(span[0]),
        _iso(span[1]),
        f"{intervals:,}",
        n_meters,
        f"{intervals * n_meters:,}",
        _iso(span[0]),
        span[1] - span[0],
    )


def report_done(simulation, final: dict, stopped: bool) -> int:
    """The final line of a run that ended; 1 when storage failed or intervals are missing."""
    plan = simulation.plan
    clock, storage = final["clock"], final["storage"]
    spooled = storage.get("rows_spooled", 0)
    delivered = storage.get("rows_delivered", storage["rows_stored"])
    spool = Path(simulation.settings.data_dir).resolve() / "spool"
    log.info(
        "done: %s for %d meters, simulated %s to %s, in %s",
        f"{storage['rows_stored']:,} readings: {delivered:,} stored, {spooled:,} spooled in "
        f"{spool} (InfluxDB did not take them; written on the next start or by `replay`)"
        if spooled
        else f"{delivered:,} readings stored",
        simulation.n_meters,
        _iso(plan.start_s),
        _iso(storage["stored_until_s"]),
        duration_text(clock["wall_elapsed_s"]),
    )
    status = 0
    if storage.get("last_error"):
        log.error("storage reported: %s", storage["last_error"])
        status = 1
    span = missing_span(plan, storage["stored_until_s"], clock["next_start_s"], stopped)
    if span is not None:
        _log_missing(plan, simulation.n_meters, span)
        status = 1
    return status


def report_failure(simulation, exc: BaseException) -> int:
    """The run failed for good: say how far storage got and what is missing (exit 1)."""
    plan = simulation.plan
    log.error("the run failed: %s", exc)
    storage = getattr(exc, "storage", None)
    if storage is None:  # the aggregator is gone too: Parquet parts and the journal remain
        log.error(
            "storage state unknown: readings are in %s (a journal left there becomes Parquet "
            "on the next start or with `replay`)",
            Path(simulation.settings.data_dir).resolve(),
        )
        return 1
    stored_until_s = storage["stored_until_s"]
    log.error("stored up to %s (%s readings)", _iso(stored_until_s), f"{storage['rows_stored']:,}")
    span = missing_span(plan, stored_until_s, plan.end_s or stored_until_s, stopped=False)
    if span is not None:
        _log_missing(plan, simulation.n_meters, span)
    return 1


def serve_until_stopped(settings: Settings, services: Services, stop: threading.Event) -> None:
    """``--keep-serving``: the run is over; its results stay browsable until Ctrl-C or SIGTERM."""
    where = []
    if services.api is not None:
        where.append(f"REST API and dashboard on http://{settings.api_host}:{settings.api_port}/")
    if services.ieee2030_5 is not None:
        where.append(f"IEEE 2030.5 server on port {services.ieee2030_5.port}")
    if not where:
        log.info("--keep-serving: nothing to serve (the REST API and 2030.5 server are off)")
        return
    log.info("the run is over; serving its results (%s) until Ctrl-C", ", ".join(where))
    stop.wait()


def with_home_node(settings: Settings) -> Settings:
    """``settings`` with the home node resolved to a node id (ConfigError naming the cluster's
    nodes when ``--home-node`` names none); says where it is on a cluster of several nodes."""
    import ray

    from gtx_ray.placement import node_address, resolve_home_node

    home = resolve_home_node(settings.home_node)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) > 1 or settings.home_node is not None:
        log.info(
            "Ray cluster of %d nodes; clock, storage, REST API and 2030.5 server on node %s (%s)",
            len(nodes),
            home[:12],
            node_address(home),
        )
    return replace(settings, home_node=home)


def in_background(work: Callable[[], object], name: str) -> Callable[[], None]:
    """Run ``work`` on a thread now; the returned function waits for it and raises what it
    raised."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised by the waiter, on the main thread
            failure.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        if failure:
            raise failure[0]

    return wait


def _start_serve() -> None:
    from gtx_ray.serve.api import start_serve

    start_serve()


def run(settings: Settings) -> int:
    """Start the simulation, report status until it ends or a signal arrives, flush, exit."""
    import ray  # here, not at the top: keeps --help and usage errors fast

    from gtx_ray.runtime import connect_ray, plan_layout, start_clock, start_meters

    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop_requested.is_set():
            log.warning("second %s: still flushing, please wait", signal.Signals(signum).name)
            return
        log.info("%s received: stopping the clock and flushing", signal.Signals(signum).name)
        stop_requested.set()

    if settings.api_enabled:  # before Ray starts, not after
        from gtx_ray.serve.http_server import require_free_api_port

        require_free_api_port(settings.api_host, settings.api_port)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started_ray = False
    services = Services()
    try:
        started_ray = connect_ray(settings)
        services.api_ends_with_ray = started_ray
        settings = with_home_node(settings)
        for sig in previous:  # ray.init installs its own handlers; ours flush first
            signal.signal(sig, on_signal)
        layout = plan_layout(settings, now_s=COMMAND_TIME_S)
        # Serve's controller starts meanwhile: the REST API answers sooner.
        serve_started = in_background(_start_serve, "serve-start") if settings.api_enabled else None
        # The clock and storage first: in real time the clock stands in for the meters while
        # their actors start, so the first interval is stored as soon as it ends.
        simulation = start_clock(settings, layout)
        services.simulation = simulation
        clients = None
        if settings.ieee2030_5_enabled:
            meter_ids = ensure_certificates(settings)
            if settings.ieee2030_5_server is None:
                services.ieee2030_5 = start_ieee2030_5_server(settings)
            clients = client_plan(settings, services.ieee2030_5, len(meter_ids))
        if serve_started is not None:
            from gtx_ray.serve.api import start_rest_api

            serve_started()
            services.api = start_rest_api(
                settings,
                layout,
                settings.api_host,
                settings.api_port,
                settings.admin_token,
                services.ieee2030_5,
                clients is not None,
            )
        start_meters(simulation, clients)
        plan = simulation.plan
        log.info(
            "simulating %d meters from %s%s, %d s interval, speed %s; output %s",
            simulation.n_meters,
            _iso(plan.start_s),
            f" to {_iso(plan.end_s)}" if plan.end_s else " (until stopped)",
            plan.interval_s,
            "max" if plan.speed is None else f"{plan.speed:g}x",
            Path(settings.data_dir).resolve(),
        )
        line = StatusLine(simulation.n_meters)
        next_status = time.monotonic() + settings.status_every_s
        stop_sent_at: float | None = None
        while not simulation.wait(timeout_s=0.2):
            if stop_requested.is_set() and (
                stop_sent_at is None or time.monotonic() - stop_sent_at > 2.0
            ):  # again every 2 s: a clock that Ray restarted meanwhile never heard the first
                simulation.stop()
                stop_sent_at = time.monotonic()
            if time.monotonic() >= next_status:
                log.info("%s", line.render(simulation.status()))
                next_status = time.monotonic() + settings.status_every_s
        if settings.influxdb_enabled and plan.end_s is not None and not stop_requested.is_set():
            count_check(settings, simulation, stop_requested)
        keep = settings.keep_serving and not stop_requested.is_set()
        try:
            final = services.finish_keeping_actors() if keep else services.stop()
        except Exception as exc:  # the run failed for good: say what is stored and what is not
            return report_failure(simulation, exc)
        status = report_done(simulation, final, stopped=stop_requested.is_set())
        if keep:
            serve_until_stopped(settings, services, stop_requested)
        return status
    finally:
        services.stop()  # after an error: end what was started (no-op after a clean stop)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_ray:
            began = time.monotonic()
            ray.shutdown()
            log.debug("shut Ray down in %.1f s", time.monotonic() - began)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "run"
    if argv and argv[0] in SUBCOMMANDS:
        argv = argv[1:]
    prog = "python -m gtx_ray" if sys.argv and sys.argv[0].endswith("__main__.py") else "gtx-ray"
    try:
        if command == "certs":
            return _certs(argv)
        if command == "replay":
            return _replay(argv, prog)
        args = build_parser(f"{prog} {command}" if command != "run" else prog).parse_args(argv)
        _configure_logging(args.log_level)
        settings = settings_from(args, dict(os.environ), command)
        load_campus(settings.config_file)  # a broken config fails here, before Ray starts
        if settings.scenario_file is not None:
            from gtx_ray.scenario import load_scenario

            load_scenario(settings.scenario_file)  # so does a broken scenario
        require_writable_dir("--data-dir", Path(settings.data_dir))
        certs = Path(settings.certs_dir)
        if settings.ieee2030_5_enabled and (not certs.exists() or not certs.is_dir()):
            require_writable_dir("--certs-dir", certs)  # certificates are created there
    except (UsageError, ConfigError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    from gtx_ray.ray_connect import RayStartFailed

    try:
        return run(settings)
    except TokenAvailable as exc:
        if os.environ.get("GTX_RAY_TOKEN_RETRY"):  # the token was sent and refused
            log.error("%s", exc)
            return 2
        log.info(
            "the Ray cluster uses token authentication: starting again with the token in %s",
            exc.path,
        )
        env = {**os.environ, "RAY_AUTH_MODE": "token", "GTX_RAY_TOKEN_RETRY": "1"}
        os.execve(sys.executable, sys.orig_argv, env)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except RayStartFailed as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 0


def _certs(argv: list[str]) -> int:
    try:
        from gtx_ray.ieee2030_5.pki.cli import certs_main
    except ImportError:
        raise UsageError(
            "the certs command needs the IEEE 2030.5 package, which is not installed"
        ) from None
    return certs_main(argv)


def _replay(argv: list[str], prog: str) -> int:
    """``replay --data-dir DIR``: push a data dir's Parquet readings (and any spool a run left)
    into the InfluxDB of INFLUXDB_URL/TOKEN/ORG/BUCKET. Idempotent."""
    parser = _Parser(prog=f"{prog} replay", description=_replay.__doc__)
    parser.add_argument("--data-dir", default="data", help="the data dir (default ./data)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    from gtx_ray.runtime import influx_config
    from gtx_ray.storage.influx import InfluxError, InfluxSink, replay_data_dir

    fields = from_environment(dict(os.environ))
    settings = Settings(**{**fields, "influxdb_enabled": True})
    config = influx_config(settings)
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir}: no such directory")
    total = 0
    last_report = [0.0]

    def progress(done: int, rows: int) -> None:
        if time.monotonic() - last_report[0] >= 2 or done == rows:
            last_report[0] = time.monotonic()
            log.info(
                "replay: %s of %s readings (%.0f%%)",
                f"{done:,}",
                f"{rows:,}",
                100 * done / max(rows, 1),
            )

    try:
        if (data_dir / "readings").is_dir():
            total += replay_data_dir(data_dir, config, progress=progress)
        # spool, and spool-<k> of the k-th of several aggregators
        for spool in sorted(p for p in data_dir.glob("spool*") if p.is_dir()):
            sink = InfluxSink(replace(config, spool_dir=spool))
            try:
                waiting = sink.drain(timeout_s=600)
                total += sink.status()["rows_replayed"]
            finally:
                sink.close()
            if waiting:
                log.error(
                    "%s readings are still spooled in %s: InfluxDB did not take them (%s)",
                    f"{waiting:,}",
                    spool,
                    sink.status()["last_error"],
                )
                return 1
    except InfluxError as exc:
        log.error("replay failed: %s", exc)
        return 1
    log.info(
        "replay: %s readings written to %s (bucket %s)", f"{total:,}", config.url, config.bucket
    )
    return 0
