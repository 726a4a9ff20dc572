"""InfluxDB sink: readings → line protocol → InfluxDB 1.x (``/write``) or 2.x/3.x (influxdb-client),
losing nothing when the database is slow, down, restarted or misconfigured.

Which API: ``GET /ping``'s ``X-Influxdb-Version`` header — ``1.x`` means the v1 ``/write`` endpoint
(database = bucket, optional username/password), anything else the v2 write API through
influxdb-client's synchronous writer (its batching writer reports success for points it lost).
``InfluxConfig.api`` forces one. The database or bucket is created when allowed.

Writing: a batch is cut into requests of ``batch_points`` lines, ``max_in_flight`` at a time.
5xx, 408, 429, timeouts and connection errors are retried with exponential backoff; other 4xx are
not: 401/403/404 (bad token, no permission, no database) are logged as one clear line, put in
``status()["last_error"]``, and the data is spooled; 400/413/422 (the server refuses the data
itself) moves those readings to ``SPOOL/rejected`` as Parquet so they are never silently dropped.

Spooling: when a request still fails, the batch's unacknowledged readings go to Parquet under
``SPOOL/pending/<segment>/`` (a ``ParquetSink`` per outage: fsynced Arrow journal, then Parquet
parts), and so does every later batch, in order, until a background thread finds the database
writable again (it re-sends the oldest spooled readings every ``recheck_interval_s``) and has
replayed the spool oldest first. A new sink on the same spool directory replays what an earlier
run left. Re-sending is safe: InfluxDB keeps one point per series and timestamp.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import math
import random
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import urllib3

from gtx_ray.errors import ConfigError
from gtx_ray.storage.line_protocol import Chunk, LineProtocolError, check_batch, iter_chunks
from gtx_ray.storage.parquet import (
    JOURNAL_NAME,
    ParquetSink,
    journals_in,
    read_journal,
    readings_dir,
)

log = logging.getLogger(__name__)

ApiChoice = Literal["auto", "v1", "v2"]
TRANSIENT, REFUSED, REJECTED = "transient", "refused", "rejected"
_RETRY_STATUS = {408, 429}
_REJECT_STATUS = {400, 413, 422}


class InfluxError(RuntimeError):
    """InfluxDB cannot take the data and it could not be kept; ``str()`` is one clear line."""


@dataclass(frozen=True)
class InfluxConfig:
    """Where and how to write. Durations in seconds.

    url: ``http(s)://host:port`` of the server. token/org/bucket: v2 credentials and target (for
    v1 the bucket is the database name; a token ``user:password`` also works as v1 credentials).
    username/password: v1 credentials (InfluxDB 1.x with ``auth-enabled``). api: ``auto`` detects
    from /ping. create_bucket: create the database/bucket when it is missing (needs admin rights).
    batch_points: lines per request. max_in_flight: concurrent requests. timeout_s: per request.
    max_retries: retries of a request after its first attempt (5xx, timeouts, connection errors),
    waiting backoff_initial_s, doubling up to backoff_max_s. spool_dir: where unwritable readings
    wait (None: raise InfluxError instead). recheck_interval_s: how often a spooling sink checks
    whether the database is back. spool_rows_per_file: rows per spooled Parquet part.
    spool_max_rows: write() blocks (backpressure) while the spool holds this many rows (None: only
    the disk limits it).
    """

    url: str = "http://localhost:8086"
    token: str = ""
    org: str = "gridtokenx"
    bucket: str = "meter_readings_2y"
    username: str = ""
    password: str = ""
    api: ApiChoice = "auto"
    create_bucket: bool = True
    batch_points: int = 5000
    max_in_flight: int = 2
    timeout_s: float = 30.0
    max_retries: int = 4
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    spool_dir: Path | None = None
    recheck_interval_s: float = 5.0
    spool_rows_per_file: int = 200_000
    spool_max_rows: int | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"InfluxDB url {self.url!r} must look like http://host:8086")
        if self.api not in ("auto", "v1", "v2"):
            raise ConfigError(f"InfluxDB api {self.api!r} must be auto, v1 or v2")
        if not self.bucket or any(c in self.bucket for c in "\n\r"):
            raise ConfigError(f"InfluxDB bucket {self.bucket!r} must be a non-empty name")
        checks = {
            "batch_points": (self.batch_points, 1, 1_000_000),
            "max_in_flight": (self.max_in_flight, 1, 64),
            "timeout_s": (self.timeout_s, 0.1, 3600),
            "max_retries": (self.max_retries, 0, 100),
            "backoff_initial_s": (self.backoff_initial_s, 0.0, 3600),
            "backoff_max_s": (self.backoff_max_s, 0.0, 3600),
            "recheck_interval_s": (self.recheck_interval_s, 0.01, 86400),
            "spool_rows_per_file": (self.spool_rows_per_file, 1, 100_000_000),
        }
        for name, (value, low, high) in checks.items():
            if not isinstance(value, int | float) or not low <= value <= high:
                raise ConfigError(f"InfluxDB {name}={value!r} must be between {low} and {high}")
        if self.spool_max_rows is not None and self.spool_max_rows < 1:
            raise ConfigError(f"InfluxDB spool_max_rows={self.spool_max_rows} must be at least 1")
        if self.spool_dir is not None:
            object.__setattr__(self, "spool_dir", Path(self.spool_dir))
        object.__setattr__(self, "url", self.url.rstrip("/"))


class _Failure(Exception):
    """A failed request, classified: TRANSIENT (retry), REFUSED (fix the config; spool), REJECTED
    (the server refuses the data itself)."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


def _detail(body: bytes | str | None) -> str:
    """The server's own words from an error body (v1 ``error``, v2 ``message``), one line."""
    if not body:
        return "no details"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    with contextlib.suppress(ValueError, AttributeError):
        data = json.loads(text)
        text = data.get("error") or data.get("message") or text
    return " ".join(str(text).split())[:300]


def _http_failure(
    config: InfluxConfig, api: str, status: int, body: bytes | str | None
) -> _Failure:
    where = f"InfluxDB at {config.url}"
    detail = _detail(body)
    if status >= 500 or status in _RETRY_STATUS:
        return _Failure(TRANSIENT, f"{where} answered {status}: {detail}", status)
    if status in _REJECT_STATUS:
        return _Failure(REJECTED, f"{where} refused the data ({status}): {detail}", status)
    credentials = "INFLUXDB_TOKEN" if api == "v2" else "the username/password (or user:pw token)"
    if status == 401:
        message = f"{where} rejected the credentials ({status}): {detail}; check {credentials}"
    elif status == 403:
        message = (
            f"{where} refused access ({status}): {detail}; the token or user needs write "
            f"permission on {config.bucket!r}"
        )
    elif status == 404:
        target = "database" if api == "v1" else "bucket or org"
        message = (
            f"{where} has no {target} {config.bucket!r} ({status}): {detail}; create it, or let "
            "gtx_ray create it with an admin token/user"
        )
    else:
        message = f"{where} refused the request ({status}): {detail}"
    return _Failure(REFUSED, message, status)


def _reason(exc: BaseException) -> str:
    """A connection error in a few words (urllib3's texts repeat the pool and the address)."""
    text = str(getattr(exc, "reason", None) or exc)
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError) or "Read timed out" in text:
        return "no answer within the timeout"
    if "Failed to establish a new connection: " in text:
        return text.split("Failed to establish a new connection: ", 1)[1].rstrip(")'\"")
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection dropped mid-request"
    return text


def _connection_failure(config: InfluxConfig, exc: BaseException) -> _Failure:
    return _Failure(TRANSIENT, f"InfluxDB at {config.url} is unreachable ({_reason(exc)})")


def _timeout(config: InfluxConfig) -> urllib3.Timeout:
    return urllib3.Timeout(connect=min(config.timeout_s, 10.0), read=config.timeout_s)


def _v1_headers(config: InfluxConfig) -> dict[str, str]:
    """Basic auth from username/password, or from a ``user:password`` token (the 1.x convention)."""
    user, password = config.username, config.password
    if not user and ":" in config.token:
        user, password = config.token.split(":", 1)
    if user:
        raw = f"{user}:{password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    if config.token:
        return {"Authorization": f"Token {config.token}"}
    return {}


def detect_api(config: InfluxConfig) -> tuple[str, str]:
    """(``v1`` | ``v2``, server version) from ``GET /ping``'s ``X-Influxdb-Version`` header (or
    the configured api); InfluxError if nothing answers."""
    try:
        return _detect_api(config)
    except _Failure as failure:
        raise InfluxError(failure.message) from None


def _detect_api(config: InfluxConfig) -> tuple[str, str]:
    pool = urllib3.PoolManager(retries=False)
    try:
        response = pool.request("GET", f"{config.url}/ping", timeout=_timeout(config))
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _connection_failure(config, exc) from None
    version = response.headers.get("X-Influxdb-Version", "")
    if response.status >= 400 and not version and response.status not in (401, 403):
        raise _http_failure(config, "v2", response.status, response.data)  # 1.x pings need no auth
    if config.api != "auto":
        return config.api, version or "unknown"
    return ("v1" if version.lstrip("v").startswith("1.") else "v2"), version or "unknown"


class _Transport(Protocol):
    api: str
    server_version: str

    def write(self, body: bytes) -> None: ...

    def ensure_target(self) -> None: ...

    def close(self) -> None: ...


class _V1Transport:
    """InfluxDB 1.x: ``POST /write?db=BUCKET&precision=s``; database via InfluxQL ``/query``."""

    api = "v1"

    def __init__(self, config: InfluxConfig, server_version: str):
        self.config = config
        self.server_version = server_version
        self._pool = urllib3.PoolManager(maxsize=config.max_in_flight + 2, retries=False)
        self._headers = {**_v1_headers(config), "Content-Type": "text/plain; charset=utf-8"}
        self._write_url = f"{config.url}/write?" + urlencode(
            {"db": config.bucket, "precision": "s"}
        )

    def write(self, body: bytes) -> None:
        try:
            response = self._pool.request(
                "POST",
                self._write_url,
                body=body,
                headers=self._headers,
                timeout=_timeout(self.config),
                redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _connection_failure(self.config, exc) from None
        if not 200 <= response.status < 300:
            raise _http_failure(self.config, self.api, response.status, response.data)

    def ensure_target(self) -> None:
        """An empty write proves credentials, database and write permission without writing; a
        missing database is created (CREATE DATABASE) when allowed."""
        try:
            self.write(b"")
            return
        except _Failure as failure:
            if failure.status != 404:
                raise
            if not self.config.create_bucket:
                raise _Failure(
                    REFUSED,
                    f"{failure.message} (creating it is switched off)",
                    404,
                ) from None
        try:
            _query(self.config, f"CREATE DATABASE {quote_identifier(self.config.bucket)}", None)
        except _Failure as failure:
            if failure.kind == TRANSIENT:
                raise
            raise _Failure(
                REFUSED,
                f"InfluxDB at {self.config.url} has no database {self.config.bucket!r} and "
                f"gtx_ray may not create it ({failure}); create it and GRANT WRITE as an admin",
                404,
            ) from None
        log.info("created InfluxDB database %r at %s", self.config.bucket, self.config.url)
        self.write(b"")

    def close(self) -> None:
        self._pool.clear()


class _V2Transport:
    """InfluxDB 2.x/3.x (and anything speaking ``/api/v2/write``) via influxdb-client's
    synchronous write API with pre-built line protocol; its errors are classified here."""

    api = "v2"

    def __init__(self, config: InfluxConfig, server_version: str):
        from influxdb_client import InfluxDBClient, WritePrecision
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.config = config
        self.server_version = server_version
        extra: dict[str, Any] = {}
        if config.username:
            extra.update(username=config.username, password=config.password)
        self._client = InfluxDBClient(
            url=config.url,
            token=config.token or None,
            org=config.org,
            timeout=(int(min(config.timeout_s, 10.0) * 1000), int(config.timeout_s * 1000)),
            retries=False,
            connection_pool_maxsize=config.max_in_flight + 2,
            **extra,
        )
        self._writer = self._client.write_api(write_options=SYNCHRONOUS)
        self._precision = WritePrecision.S

    def _call(self, action: Callable[[], Any]) -> Any:
        from influxdb_client.rest import ApiException

        try:
            return action()
        except ApiException as exc:
            if not exc.status:  # no HTTP answer (e.g. TLS failure)
                raise _connection_failure(self.config, RuntimeError(exc.reason)) from None
            raise _http_failure(self.config, self.api, exc.status, exc.body) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _connection_failure(self.config, exc) from None

    def write(self, body: bytes) -> None:
        if not body:
            return
        self._call(
            lambda: self._writer.write(
                bucket=self.config.bucket,
                org=self.config.org,
                record=body,
                write_precision=self._precision,
            )
        )

    def ensure_target(self) -> None:
        """Find the bucket; create it when missing and allowed. Servers without a buckets API
        (VictoriaMetrics, InfluxDB 1.8's v2 compatibility) and write-only tokens skip the check."""
        buckets = self._client.buckets_api()
        try:
            found = self._call(lambda: buckets.find_bucket_by_name(self.config.bucket))
        except _Failure as failure:
            if failure.kind == TRANSIENT:
                raise
            log.info(
                "cannot list buckets at %s (%s: no buckets API, or a write-only token); "
                "assuming bucket %r exists",
                self.config.url,
                failure.status,
                self.config.bucket,
            )
            return
        if found is not None:
            return
        if not self.config.create_bucket:
            raise _Failure(
                REFUSED,
                f"InfluxDB at {self.config.url} has no bucket {self.config.bucket!r} in org "
                f"{self.config.org!r} (creating it is switched off)",
                404,
            )
        try:
            self._call(
                lambda: buckets.create_bucket(bucket_name=self.config.bucket, org=self.config.org)
            )
        except _Failure as failure:
            raise _Failure(
                failure.kind,
                f"InfluxDB at {self.config.url} has no bucket {self.config.bucket!r} and the "
                f"token may not create it: {failure.message}",
                failure.status,
            ) from None
        log.info("created InfluxDB bucket %r at %s", self.config.bucket, self.config.url)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
            self._client.close()


def quote_identifier(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _connect(config: InfluxConfig) -> _Transport:
    """Detect the API, open a transport and make sure the database/bucket exists; _Failure if
    any step fails."""
    api, version = _detect_api(config)
    transport: _Transport = (
        _V1Transport(config, version) if api == "v1" else _V2Transport(config, version)
    )
    try:
        transport.ensure_target()
    except BaseException:
        transport.close()
        raise
    log.info(
        "InfluxDB %s at %s (API %s), bucket %r", version, config.url, transport.api, config.bucket
    )
    return transport


@dataclass
class _Outcome:
    """What happened to a sequence of chunks: points acknowledged, readings refused as data,
    and — when a request failed for good — the failure and every reading not acknowledged."""

    acked: int = 0
    failure: _Failure | None = None
    unsent: list[pa.RecordBatch] = field(default_factory=list)
    rejected: list[tuple[pa.RecordBatch, _Failure]] = field(default_factory=list)


class _Pipeline:
    """Sends chunks in order with at most ``max_in_flight`` requests in flight, retrying
    transient failures with exponential backoff (interrupted by ``stop``)."""

    def __init__(self, config: InfluxConfig, stop: threading.Event):
        self.config = config
        self.stop = stop
        self.transport: _Transport | None = None
        self._executor = ThreadPoolExecutor(config.max_in_flight, thread_name_prefix="influx-write")

    def _write(self, body: bytes) -> None:
        assert self.transport is not None
        try:
            self.transport.write(body)
        except _Failure:
            raise
        except Exception as exc:  # a client library surprise must not lose the data
            raise _Failure(
                TRANSIENT, f"unexpected error writing to InfluxDB at {self.config.url}: {exc!r}"
            ) from exc

    def _send_one(self, body: bytes) -> None:
        attempt = 0
        while True:
            try:
                self._write(body)
                return
            except _Failure as failure:
                if failure.kind != TRANSIENT or attempt >= self.config.max_retries:
                    raise
                delay = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2**attempt)
                delay *= random.uniform(0.5, 1.0)
                attempt += 1
                log.debug("%s; retry %d in %.1f s", failure.message, attempt, delay)
                if self.stop.wait(delay):
                    raise

    def _chunk_rows(self, rows: int) -> int:
        """Rows per request: at most batch_points, and — when a batch needs several requests —
        a multiple of max_in_flight requests of equal size, so they finish together instead of
        leaving the last one alone on the wire."""
        requests = math.ceil(rows / self.config.batch_points)
        if requests > 1:
            lanes = self.config.max_in_flight
            requests = math.ceil(requests / lanes) * lanes
        return max(1, math.ceil(rows / max(requests, 1)))

    def send(
        self,
        data: pa.RecordBatch | pa.Table,
        on_ack: Callable[[Chunk], None] | None = None,
    ) -> _Outcome:
        outcome = _Outcome()
        in_flight: deque[tuple[Chunk, Future]] = deque()

        def settle(chunk: Chunk, future: Future) -> None:
            try:
                future.result()
            except _Failure as failure:
                if failure.kind == REJECTED:
                    outcome.rejected.append((chunk.rows, failure))
                else:
                    outcome.failure = outcome.failure or failure
                    outcome.unsent.append(chunk.rows)
                return
            outcome.acked += chunk.points
            if on_ack is not None:
                on_ack(chunk)

        done_rows = 0
        chunks: Iterator[Chunk] = iter_chunks(data, self._chunk_rows(data.num_rows))
        for chunk in chunks:
            if outcome.failure is not None:
                break
            while len(in_flight) >= self.config.max_in_flight:
                settle(*in_flight.popleft())
            if outcome.failure is not None:
                break
            done_rows += chunk.rows.num_rows
            in_flight.append((chunk, self._executor.submit(self._send_one, chunk.body)))
        while in_flight:
            settle(*in_flight.popleft())
        if outcome.failure is not None and done_rows < data.num_rows:
            rest = data.slice(done_rows)
            outcome.unsent.extend(rest.to_batches() if isinstance(rest, pa.Table) else [rest])
        return outcome

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self.transport is not None:
            self.transport.close()


class _Spool:
    """Readings waiting for InfluxDB, oldest first: ``DIR/pending/<segment>/readings/*.parquet``,
    one ParquetSink (fsynced journal → Parquet parts) per segment, segments numbered in order;
    ``DIR/rejected/`` keeps readings the server refused as data. One process per directory."""

    def __init__(self, directory: Path, rows_per_file: int):
        self.directory = directory
        self.pending_dir = directory / "pending"
        self.rows_per_file = rows_per_file
        try:
            self.pending_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(directory / ".lock", "a+")  # noqa: SIM115 (held while open)
        except OSError as exc:
            raise ConfigError(f"cannot use spool directory {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise ConfigError(
                f"spool directory {directory} is in use by another gtx_ray process"
            ) from None
        self._open: ParquetSink | None = None
        self._open_dir: Path | None = None
        for segment in self.segments():  # roll journals a crashed run left into Parquet parts
            if (readings_dir(segment) / JOURNAL_NAME).exists():
                ParquetSink(segment).close()
        self.pending_rows = sum(
            pq.ParquetFile(part).metadata.num_rows
            for segment in self.segments()
            for part in self.parts(segment)
        )

    def segments(self) -> list[Path]:
        """Segment directories, oldest first."""
        found = [p for p in self.pending_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        return sorted(found, key=lambda p: int(p.name))

    @staticmethod
    def parts(segment: Path) -> list[Path]:
        return sorted(readings_dir(segment).glob("part-*.parquet"))

    def append(self, batch: pa.RecordBatch) -> None:
        """Add readings after everything spooled so far; durable (fsynced) on return."""
        if self._open is None:
            segments = self.segments()
            number = int(segments[-1].name) + 1 if segments else 1
            self._open_dir = self.pending_dir / f"{number:010d}"
            self._open = ParquetSink(
                self._open_dir, rows_per_file=self.rows_per_file, max_age_s=float("inf")
            )
        self._open.write(batch)
        self._open.flush()
        self.pending_rows += batch.num_rows

    def seal(self) -> None:
        """Close the segment being appended to, so it can be replayed."""
        if self._open is not None:
            self._open.close()
            self._open = None
            self._open_dir = None

    @property
    def appending(self) -> bool:
        return self._open is not None

    def sealed_segments(self) -> list[Path]:
        return [s for s in self.segments() if s != self._open_dir]

    def remove_part(self, part: Path, rows: int) -> None:
        part.unlink()
        self.pending_rows -= rows

    def remove_segment(self, segment: Path) -> None:
        if not any(readings_dir(segment).glob("*.parquet")):
            shutil.rmtree(segment, ignore_errors=True)

    def reject(self, batch: pa.RecordBatch) -> Path:
        sink = ParquetSink(self.directory / "rejected")
        sink.write(batch)
        sink.close()
        return sink.directory

    def close(self) -> None:
        self.seal()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        self._lock_file.close()


class InfluxSink:
    """ReadingSink writing to InfluxDB; see the module docstring for the guarantees.

    ``write`` blocks until every reading of the batch is acknowledged by InfluxDB, spooled to disk
    (fsynced), or — for data the server refuses — kept under ``SPOOL/rejected``; without a spool
    directory it raises InfluxError when it cannot deliver. A batch that is not valid readings
    raises LineProtocolError (a ValueError) before anything is sent.
    """

    name = "influxdb"

    def __init__(self, config: InfluxConfig):
        self.config = config
        self._lock = threading.RLock()  # one write at a time; guards the spool and the mode
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._direct = threading.Event()  # set: writes go straight to the database
        self._spool_changed = threading.Condition(self._lock)
        self._pipeline = _Pipeline(config, self._stop)
        self._spool = (
            _Spool(config.spool_dir, config.spool_rows_per_file) if config.spool_dir else None
        )
        self._recovery: threading.Thread | None = None
        self._closed = False
        self.rows_written = 0
        self.rows_spooled = 0
        self.rows_replayed = 0
        self.rows_rejected = 0
        self.last_error: str | None = None
        self._logged_error: str | None = None
        self._outage_error: str | None = None  # last_error while the database does not answer
        self._last_attempt_ok = True  # the last request (or connect) was acknowledged
        try:
            self._pipeline.transport = _connect(config)
        except _Failure as failure:
            if self._spool is None:
                self._pipeline.close()
                raise InfluxError(failure.message) from None
            self._note_error(failure, "spooling readings until it is fixed")
        if self._pipeline.transport is not None and not self._spooled_rows():
            self._direct.set()
        else:
            if self._spooled_rows():
                log.info(
                    "%d readings wait in spool %s; replaying them before new ones",
                    self._spooled_rows(),
                    self._spool.directory if self._spool else None,
                )
            self._start_recovery(immediately=self._pipeline.transport is not None)

    # ---- ReadingSink -------------------------------------------------------------------------

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Store readings (READING_SCHEMA); return once each is acknowledged or safely on disk."""
        if not isinstance(batch, pa.RecordBatch | pa.Table):
            raise TypeError(f"InfluxSink.write takes an Arrow RecordBatch, not {type(batch)}")
        if batch.num_rows == 0:
            return
        check_batch(batch)
        with self._lock:
            if self._closed:
                raise InfluxError("the InfluxDB sink is closed")
            if not self._direct.is_set():
                self._wait_for_spool_room()  # may let the replay thread finish meanwhile
            if not self._direct.is_set():
                self._spool_all([batch])
                return
            outcome = self._pipeline.send(batch)
            self._count(written=outcome.acked)
            if outcome.acked:
                self._last_attempt_ok = True
            for rows, failure in outcome.rejected:
                self._reject(rows, failure)
            if outcome.failure is not None:
                if self._spool is None:
                    self.last_error = outcome.failure.message
                    raise InfluxError(
                        f"{outcome.failure.message}; "
                        f"{sum(b.num_rows for b in outcome.unsent)} readings not written"
                    )
                self._note_error(outcome.failure, f"spooling readings to {self._spool.directory}")
                self._direct.clear()
                self._spool_all(outcome.unsent)
                self._start_recovery(immediately=False)

    def flush(self) -> None:
        """Everything written so far is acknowledged or fsynced already; nothing to do."""

    def close(self) -> None:
        """Stop the replay thread and seal the spool (a later sink on it replays the rest)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._spool_changed.notify_all()
        recovery = self._recovery
        if recovery is not None:
            recovery.join(timeout=self.config.timeout_s + 5)
        with self._lock:
            if self._spool is not None:
                self._spool.close()
        self._pipeline.close()
        left = self._spooled_rows()
        if left:
            log.warning(
                "%d readings stay in spool %s for the next run", left, self.config.spool_dir
            )

    def status(self) -> dict[str, Any]:
        """Counts in readings. ``rows_stored``: acknowledged by the database (written directly or
        replayed from the spool); ``rows_pending``: waiting in the spool, not yet stored;
        ``healthy``: writes go straight to the database; ``last_attempt_ok``: the last request
        was acknowledged (True while a spool replays); ``last_error``: why it was not, cleared
        as soon as the database takes a replayed part."""
        transport = self._pipeline.transport
        with self._stats_lock:
            return {
                "sink": self.name,
                "url": self.config.url,
                "bucket": self.config.bucket,
                "api": transport.api if transport else None,
                "server_version": transport.server_version if transport else None,
                "healthy": self._direct.is_set() and not self._closed,
                "last_attempt_ok": self._last_attempt_ok,
                "rows_stored": self.rows_written + self.rows_replayed,
                "rows_written": self.rows_written,
                "rows_spooled": self.rows_spooled,
                "rows_replayed": self.rows_replayed,
                "rows_rejected": self.rows_rejected,
                "rows_pending": self._spooled_rows(),
                "last_error": self.last_error,
                "spool_dir": str(self.config.spool_dir) if self.config.spool_dir else None,
            }

    # ---- extra API ---------------------------------------------------------------------------

    def drain(self, timeout_s: float | None = None) -> int:
        """Wait until the spool is replayed (or ``timeout_s`` seconds pass); return the number of
        readings still waiting. Use before a final count check."""
        self._direct.wait(timeout_s)
        return self._spooled_rows()

    def __enter__(self) -> InfluxSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ---------------------------------------------------------------------------

    def _spooled_rows(self) -> int:
        return self._spool.pending_rows if self._spool is not None else 0

    def _count(self, written: int = 0, spooled: int = 0, replayed: int = 0, rejected: int = 0):
        with self._stats_lock:
            self.rows_written += written
            self.rows_spooled += spooled
            self.rows_replayed += replayed
            self.rows_rejected += rejected

    def _note_error(self, failure: _Failure, consequence: str) -> None:
        """Log a failure once per distinct message (repeats go to debug) and keep it in status."""
        with self._stats_lock:
            self.last_error = self._outage_error = failure.message
            self._last_attempt_ok = False
        if failure.message != self._logged_error:
            log.error("%s; %s", failure.message, consequence)
            self._logged_error = failure.message
        else:
            log.debug("still failing: %s", failure.message)

    def _spool_all(self, batches: Iterable[pa.RecordBatch]) -> None:
        assert self._spool is not None
        for batch in batches:
            if not batch.num_rows:
                continue
            try:
                self._spool.append(batch)
            except OSError as exc:
                raise InfluxError(
                    f"cannot spool {batch.num_rows} readings to {self._spool.directory}: "
                    f"{exc.strerror or exc}"
                ) from None
            self._count(spooled=batch.num_rows)

    def _wait_for_spool_room(self) -> None:
        limit = self.config.spool_max_rows
        while (
            limit is not None
            and self._spooled_rows() >= limit
            and not self._direct.is_set()
            and not self._stop.is_set()
        ):
            log.debug("spool holds %d readings (limit %d); waiting", self._spooled_rows(), limit)
            self._spool_changed.wait(timeout=1.0)

    def _reject(self, rows: pa.RecordBatch, failure: _Failure) -> None:
        if self._spool is None:
            raise InfluxError(f"{failure.message}; {rows.num_rows} readings not written")
        where = self._spool.reject(rows)
        self._count(rejected=rows.num_rows)
        with self._stats_lock:
            self.last_error = failure.message
        log.error("%s; %d readings kept in %s", failure.message, rows.num_rows, where)

    def _start_recovery(self, immediately: bool) -> None:
        """Start the replay thread unless one is running (called with the write lock held)."""
        if self._recovery is not None and self._recovery.is_alive():
            return
        self._recovery = threading.Thread(
            target=self._recover, args=(immediately,), name="influx-replay", daemon=True
        )
        self._recovery.start()

    def _recover(self, immediately: bool) -> None:
        """Until the spool is empty and writes go direct: reconnect, replay oldest first."""
        delay = 0.0 if immediately else self.config.recheck_interval_s
        while not self._stop.wait(delay):
            delay = self.config.recheck_interval_s
            try:
                if self._pipeline.transport is None:
                    self._pipeline.transport = _connect(self.config)
                if self._replay_spool():
                    return
            except _Failure as failure:
                self._note_error(failure, f"retrying every {delay:g} s")
            except Exception:  # a bug must not silently end recovery
                log.exception("unexpected error while replaying the InfluxDB spool; will retry")

    def _replay_spool(self) -> bool:
        """Send every spooled reading, oldest first; True once the spool is empty and writes go
        direct again. Raises _Failure when the database still does not take them."""
        assert self._spool is not None
        replayed = 0
        while not self._stop.is_set():
            segments = self._spool.sealed_segments()
            if not segments:
                with self._lock:
                    if self._spool.appending:
                        self._spool.seal()
                        continue
                    if not self._spool.sealed_segments():
                        self._direct.set()
                        self._recovery = None  # a failure from now on starts a new thread
                        self._spool_changed.notify_all()
                        with self._stats_lock:
                            self.last_error = None
                        self._logged_error = None
                        log.info(
                            "InfluxDB at %s takes writes again; replayed %d spooled readings",
                            self.config.url,
                            replayed,
                        )
                        return True
                continue
            segment = segments[0]
            for part in self._spool.parts(segment):
                rows = self._replay_part(part)
                with self._lock, self._stats_lock:  # status sees stored + pending add up
                    self._spool.remove_part(part, rows)
                    self._spool_changed.notify_all()
                    self.rows_replayed += rows
                    self._last_attempt_ok = True
                    answered_again = self.last_error is not None and (
                        self.last_error == self._outage_error
                    )
                    if answered_again:  # the outage is over; the status says so from now on
                        self.last_error = self._outage_error = None
                if answered_again:
                    log.info(
                        "InfluxDB at %s answers again; replaying %d spooled readings",
                        self.config.url,
                        self._spooled_rows() + rows,
                    )
                replayed += rows
                if self._stop.is_set():
                    return False
            self._spool.remove_segment(segment)
        return False

    def _replay_part(self, part: Path) -> int:
        """Send one spooled Parquet part; its row count once all are acknowledged or rejected."""
        rows = 0
        for batch in pq.ParquetFile(part).iter_batches(batch_size=self.config.batch_points * 8):
            outcome = self._pipeline.send(batch)
            for rejected, failure in outcome.rejected:
                self._reject(rejected, failure)
            if outcome.failure is not None:
                raise outcome.failure
            rows += batch.num_rows
        return rows


def _data_dir_sources(data_dir: Path) -> list[Path]:
    directory = readings_dir(data_dir)
    if not directory.is_dir():
        raise ConfigError(f"{data_dir}: no readings directory ({directory} does not exist)")
    return sorted(directory.glob("part-*.parquet")) + journals_in(directory)


def _batches_of(source: Path, rows_per_batch: int) -> Iterator[pa.RecordBatch]:
    if source.suffix == ".arrows":  # a journal
        yield from read_journal(source)
    else:
        yield from pq.ParquetFile(source).iter_batches(batch_size=rows_per_batch)


def _rows_in(source: Path) -> int:
    if source.suffix == ".arrows":  # a journal
        return sum(b.num_rows for b in read_journal(source))
    return pq.ParquetFile(source).metadata.num_rows


def replay_data_dir(
    data_dir: str | Path,
    config: InfluxConfig,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Push every reading a ParquetSink stored under ``data_dir`` into InfluxDB, file by file
    (memory stays flat); return the number of points written. Idempotent: the same readings give
    the same points. ``progress(done, total)`` is called with reading counts after each request.
    Raises ConfigError for a missing data dir and InfluxError when InfluxDB does not take them
    (nothing is spooled: the readings are already on disk).
    """
    data_dir = Path(data_dir)
    sources = _data_dir_sources(data_dir)
    total = sum(_rows_in(s) for s in sources)
    stop = threading.Event()
    pipeline = _Pipeline(config, stop)
    done = 0
    written = 0

    def acked(chunk: Chunk) -> None:
        nonlocal done
        done += chunk.rows.num_rows
        if progress is not None:
            progress(done, total)

    try:
        try:
            pipeline.transport = _connect(config)
        except _Failure as failure:
            raise InfluxError(failure.message) from None
        log.info("replaying %d readings from %s into %s", total, data_dir, config.url)
        started = time.monotonic()
        for source in sources:
            for batch in _batches_of(source, config.batch_points * 8):
                try:
                    outcome = pipeline.send(batch, on_ack=acked)
                except LineProtocolError as exc:
                    raise InfluxError(f"{source}: {exc}") from None
                written += outcome.acked
                failure = outcome.failure or (outcome.rejected[0][1] if outcome.rejected else None)
                if failure is not None:
                    raise InfluxError(
                        f"{failure.message}; stopped after {written} of {total} readings from "
                        f"{source} (running replay again is safe)"
                    )
        elapsed = time.monotonic() - started
        log.info(
            "replayed %d readings into %s in %.1f s (%.0f points/s)",
            written,
            config.url,
            elapsed,
            written / elapsed if elapsed > 0 else 0.0,
        )
        return written
    finally:
        pipeline.close()


def _query(
    config: InfluxConfig, query: str, database: str | None, epoch: str = "s"
) -> list[dict[str, Any]]:
    """InfluxQL through ``/query``; _Failure (kind from the status, message = the server's
    words) on any error."""
    params = {"q": query, "epoch": epoch}
    if database:
        params["db"] = database
    pool = urllib3.PoolManager(retries=False)
    try:
        response = pool.request(
            "POST",
            f"{config.url}/query",
            fields=params,
            encode_multipart=False,
            headers=_v1_headers(config),
            timeout=_timeout(config),
        )
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _connection_failure(config, exc) from None
    if response.status != 200:
        failure = _http_failure(config, "v1", response.status, response.data)
        raise _Failure(failure.kind, f"{response.status}: {_detail(response.data)}", failure.status)
    rows: list[dict[str, Any]] = []
    for result in json.loads(response.data).get("results", []):
        if "error" in result:
            raise _Failure(REJECTED, result["error"], response.status)
        for series in result.get("series", []):
            tags = series.get("tags") or {}
            for values in series.get("values", []):
                rows.append({**tags, **dict(zip(series["columns"], values, strict=True))})
    return rows


def influxql(
    config: InfluxConfig, query: str, database: str | None = "", epoch: str = "s"
) -> list[dict[str, Any]]:
    """Run an InfluxQL query on an InfluxDB 1.x (``/query``); return the rows of every series as
    dicts (column → value, plus the series' tags; ``time`` in epoch ``epoch`` units). ``database``
    defaults to the config's bucket (None: no database). Raises InfluxError with the server's
    message."""
    try:
        return _query(config, query, config.bucket if database == "" else database, epoch)
    except _Failure as failure:
        if failure.kind == TRANSIENT and failure.status is None:
            raise InfluxError(failure.message) from None
        raise InfluxError(f"InfluxDB at {config.url}: {query!r} failed ({failure})") from None


__all__ = [
    "InfluxConfig",
    "InfluxError",
    "InfluxSink",
    "detect_api",
    "influxql",
    "quote_identifier",
    "replay_data_dir",
]
