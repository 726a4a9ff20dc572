"""A meter client's configuration: network behaviour, the server's URL, the meter's credentials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from yarl import URL

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5.client.documents import ROLE_IS_MIRROR, ROLE_IS_SUBMETER
from gtx_ray.ieee2030_5.pki import DeviceCredentials, device_credentials


@dataclass(frozen=True)
class ClientSettings:
    """How a client behaves on the network; seconds unless named otherwise.

    connect_timeout_s / request_timeout_s: TCP+TLS connect, and a whole request.
    backoff_base_s / backoff_cap_s: after the n-th consecutive failure wait
    ``d/2 + uniform(0, d/2)`` with ``d = min(cap, base × 2^(n-1))``.
    refused_retry_s: after a refusal (PIN mismatch, registration 403, mRID owned by another
    device, unusable credentials) try again only after max(this, pollRate).
    max_readings_per_post: intervals per POST (≤ 255, the schema's maxNumberOfIntervals).
    max_response_bytes: bound on a response body read. keepalive_s: idle kept-alive connection.
    default_post_rate_s / default_poll_rate_s: when the server advertises none.
    role_flags: MirrorUsagePoint roleFlags. pen: IANA PEN in the low 32 bits of every mRID.
    check_hostname: verify the server certificate's name against the URL's host.
    drain_backlog: post again at once while more than one post's worth is queued.
    max_list_pages / list_page_size: bound on reading a list (EndDeviceList,
    MirrorUsagePointList, FunctionSetAssignmentsList).
    poller_timeout_s: bound on one poll of a function-set poller (all its requests).
    observe: called as ``observe(method, url, body)`` before every request with a body (tests
    capture what the client posts); must be quick and must not raise.
    """

    connect_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    refused_retry_s: float = 900.0
    max_readings_per_post: int = 96
    max_response_bytes: int = 1 << 20
    keepalive_s: float = 60.0
    default_post_rate_s: int = 900
    default_poll_rate_s: int = 900
    role_flags: int = ROLE_IS_MIRROR | ROLE_IS_SUBMETER
    pen: int = 0
    check_hostname: bool = True
    drain_backlog: bool = True
    max_list_pages: int = 10
    list_page_size: int = 100
    poller_timeout_s: float = 120.0
    observe: Callable[[str, str, bytes], None] | None = None

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout_s",
            "request_timeout_s",
            "backoff_base_s",
            "backoff_cap_s",
            "refused_retry_s",
            "keepalive_s",
            "poller_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"ieee2030_5 client {name} must be > 0 s")
        if not 1 <= self.max_readings_per_post <= 255:
            raise ConfigError("ieee2030_5 client max_readings_per_post must be 1..255")
        if not 0 <= self.role_flags <= 0xFFFF or not 0 <= self.pen <= 0xFFFFFFFF:
            raise ConfigError("ieee2030_5 client role_flags is 16 bits and pen 32 bits")


def dcap_url(server_url: str | URL) -> URL:
    """The DeviceCapability URL of a server base URL (``https://host:port[/prefix]``); a URL that
    already ends in ``/dcap`` is kept. Raises ConfigError for anything but https with a host."""
    url = URL(str(server_url))
    if url.scheme != "https" or not url.host:
        raise ConfigError(
            f"IEEE 2030.5 server URL {server_url!r} must be https://HOST[:PORT][/PREFIX]"
        )
    if url.path.rstrip("/").endswith("/dcap"):
        return url.with_query(None).with_fragment(None)
    return url.with_path(url.path.rstrip("/") + "/dcap").with_query(None).with_fragment(None)


def meter_credentials(
    certs_dir: str | Path, meter_id: str, ca_file: str | Path | None = None
) -> DeviceCredentials:
    """A meter's certificate and key from a certificates directory (``pki`` layout); ``ca_file``
    replaces the directory's SERCA as the trust anchor for the server (an external server's
    chain)."""
    creds = device_credentials(certs_dir, meter_id)
    if ca_file is not None:
        if not Path(ca_file).is_file():
            raise ConfigError(f"{ca_file}: IEEE 2030.5 server CA file not found")
        creds = replace(creds, ca=Path(ca_file))
    return creds
