"""Configuration of the IEEE 2030.5 server, validated when built (ConfigError names the field)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.events import TimeOfUseRates
from gtx_ray.ieee2030_5.identity import is_valid_pin, normalise_lfdi
from gtx_ray.ieee2030_5.server.budget import total_budget_bytes
from gtx_ray.ieee2030_5.server.registry import Registry, RegistryLimits, RegistryPolicy
from gtx_ray.ieee2030_5.server.shards import shard_of

if TYPE_CHECKING:
    from gtx_ray.ieee2030_5.server.store import RegistryStore

REGISTRATION_POLICIES = ("open", "allowlist")


@dataclass(frozen=True)
class Ieee2030_5Config:
    """Everything the 2030.5 server needs.

    enabled: run it at all. host/port: where the TLS front listens (port 0 picks a free port;
    the chosen one is reported in status). certs_dir: the directory ``certs init`` fills
    (serca.pem is the trust anchor, server.pem/server.key the server's chain and key).
    server_names: extra SubjectAltNames for the server certificate when it is created.
    allow_gcm: also offer ECDHE-ECDSA-AES128-GCM-SHA256 beside the mandatory CCM8 suite.
    registration_policy: "open" (any certificate of the chain may register itself) or
    "allowlist" (only ``allowlist`` LFDIs, pre-registered at start). pin: the Registration PIN
    (6 digits at most, last one the sum-of-digits check digit). readers: LFDIs that may read every
    UsagePoint (a head-end). poll_rate_s/post_rate_s: advertised pollRate and postRate, seconds.
    tz_offset_s: Time.tzOffset, seconds east of UTC (Bangkok 25200). history_per_mirror: reading
    sets kept per mirrored meter reading. max_body_bytes: request body bound, bytes.
    max_xml_depth: element nesting bound. max_page: largest ``l`` honoured on a list.
    max_end_devices / max_mirrors_per_device / max_readings_per_mirror: registry bounds.
    max_bytes_per_device / max_readings_per_device / retention_s: each device's memory budget
    (estimated bytes, readings kept, seconds of history; see ``budget``). The defaults bound
    100,000 devices to about 3.2 GiB of registry state (``memory_budget_bytes``).
    batch_max: most operations the front sends to the registry actor in one call.
    max_connections: open TLS connections at most (handshakes included; each idle one holds
    about ``connections.READ_BUFFER_BYTES`` plus OpenSSL's and aiohttp's state).
    keepalive_s: an idle connection is closed after this many seconds, sooner when more than
    half of ``max_connections`` are open.
    state_path: the registry's SQLite file (``store``): registrations, mirrors and their
    readings survive a crash of the registry and a restart of the server; None keeps state in
    memory only. state_synchronous: SQLite's ``synchronous`` for it, "NORMAL" (an acknowledged
    request survives a crash of any process) or "FULL" (also a power cut; slower).
    reuse_port: bind with SO_REUSEPORT, so several fronts (Serve replicas) share one port.
    tariff: the time-of-use tariff the server publishes (TariffProfile) until an operator
    changes it; None publishes none.
    registry_shards: registry actors the devices are spread over by LFDI (``shards``); each
    holds ``max_end_devices`` / shards of them and, with ``state_path``, a file of its own
    (``shard_state_path``). A state directory keeps the count it was written with.
    node_id: the Ray node the front (or its Serve replicas) and the registry run on, where
    ``certs_dir`` and ``state_path`` are; None: the node of the process that starts them.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8443
    certs_dir: Path = Path("certs")
    server_names: tuple[str, ...] = ()
    allow_gcm: bool = False
    registration_policy: str = "open"
    allowlist: tuple[str, ...] = ()
    readers: tuple[str, ...] = ()
    pin: int = 111115
    poll_rate_s: int = 900
    post_rate_s: int = 900
    tz_offset_s: int = 25200
    history_per_mirror: int = 1_000
    max_body_bytes: int = 256 * 1024
    max_xml_depth: int = 16
    max_page: int = 1_000
    max_end_devices: int = 100_000
    max_mirrors_per_device: int = 16
    max_readings_per_mirror: int = 64
    max_bytes_per_device: int = 32 * 1024
    max_readings_per_device: int = 192
    retention_s: int = 7 * 86_400
    batch_max: int = 256
    max_connections: int = 4096
    keepalive_s: float = 20.0
    state_path: Path | None = None
    state_synchronous: str = "NORMAL"
    reuse_port: bool = False
    tariff: TimeOfUseRates | None = None
    registry_shards: int = 1
    node_id: str | None = None

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"ieee2030_5 {name}: {why}")

        object.__setattr__(self, "certs_dir", Path(self.certs_dir))
        object.__setattr__(self, "server_names", tuple(self.server_names))
        if self.state_path is not None:
            object.__setattr__(self, "state_path", Path(self.state_path))
        if self.state_synchronous not in ("NORMAL", "FULL"):
            raise bad(
                "state_synchronous", f"must be NORMAL or FULL, got {self.state_synchronous!r}"
            )
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise bad("port", f"must be 0..65535, got {self.port!r}")
        if not self.host:
            raise bad("host", "must not be empty")
        if self.registration_policy not in REGISTRATION_POLICIES:
            raise bad(
                "registration_policy",
                f"must be one of {', '.join(REGISTRATION_POLICIES)}, "
                f"got {self.registration_policy!r}",
            )
        if not isinstance(self.pin, int) or not is_valid_pin(self.pin):
            raise bad("pin", f"{self.pin!r} is not a PIN with a valid sum-of-digits check digit")
        for name in ("allowlist", "readers"):
            try:
                values = tuple(normalise_lfdi(v) for v in getattr(self, name))
            except (ValueError, AttributeError) as exc:
                raise bad(name, str(exc)) from None
            object.__setattr__(self, name, values)
        for name, lo, hi in (
            ("poll_rate_s", 1, 2**32 - 1),
            ("post_rate_s", 1, 2**32 - 1),
            ("tz_offset_s", -14 * 3600, 14 * 3600),
            ("history_per_mirror", 1, 10_000_000),
            ("max_body_bytes", 1024, 64 * 1024 * 1024),
            ("max_xml_depth", 4, 200),
            ("max_page", 1, 100_000),
            ("max_end_devices", 1, 10_000_000),
            ("max_mirrors_per_device", 1, 10_000),
            ("max_readings_per_mirror", 1, 10_000),
            ("max_bytes_per_device", 4096, 1 << 30),
            ("max_readings_per_device", 1, 10_000_000),
            ("retention_s", 1, 100 * 366 * 86_400),
            ("batch_max", 1, 100_000),
            ("max_connections", 2, 1_000_000),
            ("registry_shards", 1, 64),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise bad(name, f"must be an integer in {lo}..{hi}, got {value!r}")
        keepalive = self.keepalive_s
        if isinstance(keepalive, bool) or not isinstance(keepalive, (int, float)):
            raise bad("keepalive_s", f"must be a number of seconds, got {keepalive!r}")
        if not 1 <= keepalive <= 3600:
            raise bad("keepalive_s", f"must be 1..3600 s, got {keepalive!r}")

    def policy(self) -> RegistryPolicy:
        """The registry's rules from this configuration."""
        return RegistryPolicy(
            registration=self.registration_policy,
            pin=self.pin,
            poll_rate=self.poll_rate_s,
            post_rate=self.post_rate_s,
            tz_offset=self.tz_offset_s,
            readers=frozenset(self.readers),
        )

    def limits(self) -> RegistryLimits:
        """The registry's bounds from this configuration."""
        return RegistryLimits(
            max_end_devices=self.max_end_devices,
            max_mirrors_per_device=self.max_mirrors_per_device,
            max_readings_per_mirror=self.max_readings_per_mirror,
            history_per_mirror=self.history_per_mirror,
            max_bytes_per_device=self.max_bytes_per_device,
            max_readings_per_device=self.max_readings_per_device,
            retention_s=self.retention_s,
        )

    @property
    def memory_budget_bytes(self) -> int:
        """The most the registry's devices can hold (estimated), bytes."""
        return total_budget_bytes(self.max_end_devices, self.max_bytes_per_device)


def shard_state_path(config: Ieee2030_5Config, shard: int) -> Path | None:
    """The state file of registry shard ``shard``: ``state_path`` itself for shard 0 (a
    single registry's file), ``<stem>.shard<k><suffix>`` beside it for the others."""
    path = config.state_path
    if path is None or shard == 0:
        return path
    return path.with_name(f"{path.stem}.shard{shard}{path.suffix}")


def build_registry(
    config: Ieee2030_5Config, now: int, store: RegistryStore | None = None, shard: int = 0
) -> Registry:
    """A Registry for ``config`` (its shard ``shard`` of ``config.registry_shards``): loaded
    from ``store`` when given (its state wins over the configured rates only where an operator
    changed them), then the allow-list pre-registered (at ``now``, epoch s) where missing
    (each LFDI in its shard), and written through to ``store``."""
    n = config.registry_shards
    limits = config.limits()
    if n > 1:
        limits = replace(limits, max_end_devices=-(-limits.max_end_devices // n))
    registry = Registry(config.policy(), limits, shard=(shard, n))
    if store is not None:
        store.load(registry)
    for lfdi in config.allowlist:
        if shard_of(lfdi, n) == shard and registry.device_by_lfdi(lfdi) is None:
            registry.add_device(lfdi, now)
    if config.tariff is not None and not registry.pricing.rates:
        registry.pricing.add(config.tariff)
    if store is not None:
        store.flush(registry)
    return registry
