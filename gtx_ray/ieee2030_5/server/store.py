"""The registry's durable state: one SQLite file (WAL) that the registry writes through.

``RegistryStore(path)`` opens (or creates) the file; ``load(registry)`` fills an empty Registry
from it (same device, mirror, meter-reading and reading-set ids, so every href stays valid);
``flush(registry)`` writes what the registry marked as changed (``Registry.changes``) in one
transaction and commits it. The registry actor flushes after every batch of operations and
before it answers, so a 2xx the front sends is already on disk (WAL, ``synchronous``: NORMAL
survives a crash of the process, FULL also a power cut). Retired or replaced reading sets,
removed mirrors and devices are deleted from the file in the same transaction, so the file is
bounded by the same per-device budget as the registry's memory.

Rows hold pickled values of the registry's own models (``models``), written and read only by
this module on the local disk; a file of another ``SCHEMA_VERSION`` is refused with a clear
error (``StoreError``), never half-read.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections import OrderedDict, deque
from dataclasses import fields
from pathlib import Path
from typing import Any

from gtx_ray.ieee2030_5.server.budget import (
    METER_READING_BYTES,
    MIRROR_BYTES,
    DeviceBudget,
    set_bytes,
)
from gtx_ray.ieee2030_5.server.registry import Registry, _Device, _MeterReading, _Mirror

SCHEMA_VERSION = 1
BOOK_STATE = {
    "drlc": ("programs", "events", "next_id"),
    "pricing": ("rates",),
    "messaging": ("programs", "messages", "next_id"),
    "der": ("programs", "controls", "defaults", "next_id"),
}
"""The attributes of each event book the store keeps (responses have their own table, and so
have the DER records devices PUT: ``der_devices``, one row per device, written when it
changes)."""
SYNCHRONOUS = ("NORMAL", "FULL")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS mirrors (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meter_readings (
    mirror_id INTEGER NOT NULL, mrid BLOB NOT NULL, rid INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (mirror_id, mrid));
CREATE TABLE IF NOT EXISTS books (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS responses (
    set_id INTEGER NOT NULL, id INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (set_id, id));
CREATE TABLE IF NOT EXISTS der_devices (lfdi TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS reading_sets (
    mirror_id INTEGER NOT NULL, mrid BLOB NOT NULL, set_mrid BLOB NOT NULL,
    set_id INTEGER NOT NULL, token INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (mirror_id, mrid, set_mrid));
"""


class StoreError(Exception):
    """The state file cannot be used (another schema version, not a database, unwritable)."""


def _blob(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _key(mrid: int) -> bytes:
    """mRIDs are 128-bit: kept as 16 big-endian bytes (SQLite integers are 64-bit)."""
    return mrid.to_bytes(16, "big")


def _record(obj: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.name not in skip}


class RegistryStore:
    """The SQLite file at ``path`` (parent directories are created). ``synchronous``: "NORMAL"
    or "FULL" (SQLite's PRAGMA; see the module docstring)."""

    def __init__(self, path: Path | str, synchronous: str = "NORMAL", shards: int = 1) -> None:
        if synchronous not in SYNCHRONOUS:
            raise StoreError(f"synchronous must be one of {SYNCHRONOUS}, got {synchronous!r}")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (_blob(SCHEMA_VERSION),))
            elif pickle.loads(row[0]) != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: state of schema version {pickle.loads(row[0])}, this server "
                    f"reads version {SCHEMA_VERSION}; move the file away to start empty"
                )
            self._check_shards(shards)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot use the state file: {exc}") from None
        self.flushes = 0

    def _check_shards(self, shards: int) -> None:
        """The file keeps the number of registry shards it was written with (devices are in
        the shard their LFDI names, so another count would lose them): refuse another one."""
        row = self._db.execute("SELECT value FROM meta WHERE key='shards'").fetchone()
        if row is not None:
            written = pickle.loads(row[0])
        else:  # a file from before sharding holds a single registry, if anything
            held = self._db.execute("SELECT 1 FROM meta WHERE key='counters'").fetchone()
            written = 1 if held is not None else shards
            self._db.execute("INSERT INTO meta VALUES ('shards', ?)", (_blob(written),))
        if written != shards:
            raise StoreError(
                f"{self.path}: this state was written with {written} registry shard(s), not "
                f"{shards}; run with --ieee2030-5-registry-shards {written} (or move the state "
                f"files away to start empty)"
            )

    def close(self) -> None:
        self._db.close()

    # --- reading -----------------------------------------------------------------------
    def load(self, registry: Registry) -> bool:
        """Fill ``registry`` (fresh, empty) from the file; False when the file holds nothing
        yet. Budgets are recomputed from what is kept; the retirement order is the posting
        order (tokens)."""
        db = self._db
        registry.track_changes()
        meta = {k: pickle.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        self._load_books(registry)
        if "counters" not in meta:
            return False
        r = registry
        for name, value in meta["counters"].items():
            setattr(r, name, value)
        if meta.get("rates"):
            r.set_rates(**meta["rates"])
        for (data,) in db.execute("SELECT data FROM devices ORDER BY id"):
            d = pickle.loads(data)
            newest_end = d.pop("newest_end")
            device = _Device(**d, budget=DeviceBudget(newest_end=newest_end))
            r._devices[device.id] = device
            r._device_by_lfdi[device.lfdi] = device.id
        for (data,) in db.execute("SELECT data FROM mirrors ORDER BY id"):
            m = _Mirror(**pickle.loads(data))
            r._mirrors[m.id] = m
            r._mirror_by_mrid[m.header.mrid] = m.id
            r._mirrors_by_owner.setdefault(m.owner, []).append(m.id)
            r._change(r._budget(m.owner), meta=MIRROR_BYTES)
        for mirror_id, data in db.execute(
            "SELECT mirror_id, data FROM meter_readings ORDER BY mirror_id, rid"
        ):
            record = _MeterReading(**pickle.loads(data), sets=OrderedDict())
            mirror = r._mirrors[mirror_id]
            mirror.readings[record.mrid] = record
            r._change(r._budget(mirror.owner), meta=METER_READING_BYTES)
        orders: dict[str, list[tuple[int, int, int, int]]] = {}
        for mirror_id, mrid, set_mrid, set_id, token, data in db.execute(
            "SELECT mirror_id, mrid, set_mrid, set_id, token, data FROM reading_sets "
            "ORDER BY mirror_id, mrid, set_id"
        ):
            mirror = r._mirrors[mirror_id]
            record = mirror.readings[int.from_bytes(mrid, "big")]
            reading_set = pickle.loads(data)
            record.sets[int.from_bytes(set_mrid, "big")] = (set_id, reading_set, token)
            n = len(reading_set.readings)
            r._change(r._budget(mirror.owner), reading_bytes=set_bytes(n), readings=n)
            orders.setdefault(mirror.owner, []).append(
                (token, mirror_id, record.mrid, reading_set.mrid)
            )
        for owner, entries in orders.items():
            entries.sort()
            r._budget(owner).order = deque(entries)
        r.changes.clear()
        return True

    def _load_books(self, registry: Registry) -> None:
        """The event function sets' state (demand response, pricing, messaging, responses)."""
        for name, data in self._db.execute("SELECT name, data FROM books"):
            book = getattr(registry, name)
            for attr, value in pickle.loads(data).items():
                setattr(book, attr, value)
        for (data,) in self._db.execute("SELECT data FROM responses ORDER BY set_id, id"):
            registry.responses.put(pickle.loads(data))
        for lfdi, data in self._db.execute("SELECT lfdi, data FROM der_devices"):
            registry.der.devices[lfdi] = pickle.loads(data)

    def _flush_books(self, registry: Registry) -> bool:
        """Write the changed event books and new or dropped responses (inside a transaction)."""
        db = self._db
        wrote = False
        for name, attrs in BOOK_STATE.items():
            book = getattr(registry, name)
            if book.changed:
                state = {a: getattr(book, a) for a in attrs}
                db.execute("INSERT OR REPLACE INTO books VALUES (?, ?)", (name, _blob(state)))
                wrote = True
        responses = registry.responses
        for r in responses.new:
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (r.set_id, r.id, _blob(r))
            )
        for key in responses.dropped:
            db.execute("DELETE FROM responses WHERE set_id=? AND id=?", key)
        der = registry.der
        for lfdi in der.dirty:
            record = der.devices.get(lfdi)
            if record is None:
                db.execute("DELETE FROM der_devices WHERE lfdi=?", (lfdi,))
            else:
                row = (lfdi, _blob(record))
                db.execute("INSERT OR REPLACE INTO der_devices VALUES (?, ?)", row)
        return wrote or bool(responses.new or responses.dropped or der.dirty)

    @staticmethod
    def _books_written(registry: Registry) -> None:
        for name in BOOK_STATE:
            getattr(registry, name).changed = False
        registry.responses.new.clear()
        registry.responses.dropped.clear()
        registry.der.dirty.clear()

    # --- writing -----------------------------------------------------------------------
    def flush(self, registry: Registry) -> bool:
        """Write everything ``registry.changes`` names, in one committed transaction; False
        when there was nothing to write. On an error nothing of it is committed (the caller
        must not acknowledge the operations: the registry's memory is then ahead of the file)."""
        ch = registry.changes
        books = registry.responses.new or registry.responses.dropped or registry.der.dirty
        books = books or any(getattr(registry, name).changed for name in BOOK_STATE)
        if not ch and not books:
            return False
        r = registry
        db = self._db
        db.execute("BEGIN")
        try:
            self._flush_books(registry)
            for device_id in ch.devices:
                device = r._devices.get(device_id)
                if device is None:
                    db.execute("DELETE FROM devices WHERE id=?", (device_id,))
                    continue
                row = _record(device, ("budget",))
                row["newest_end"] = device.budget.newest_end
                db.execute("INSERT OR REPLACE INTO devices VALUES (?, ?)", (device_id, _blob(row)))
            for mirror_id in ch.mirrors:
                mirror = r._mirrors.get(mirror_id)
                if mirror is None:
                    for table in ("mirrors WHERE id", "meter_readings WHERE mirror_id"):
                        db.execute(f"DELETE FROM {table}=?", (mirror_id,))
                    db.execute("DELETE FROM reading_sets WHERE mirror_id=?", (mirror_id,))
                    continue
                row = _record(mirror, ("readings",))
                db.execute("INSERT OR REPLACE INTO mirrors VALUES (?, ?)", (mirror_id, _blob(row)))
            for mirror_id, mrid in ch.meter_readings:
                mirror = r._mirrors.get(mirror_id)
                record = mirror.readings.get(mrid) if mirror is not None else None
                if record is None:
                    continue  # its mirror went: deleted with it
                db.execute(
                    "INSERT OR REPLACE INTO meter_readings VALUES (?, ?, ?, ?)",
                    (mirror_id, _key(mrid), record.id, _blob(_record(record, ("sets",)))),
                )
            for mirror_id, mrid, set_mrid in ch.sets:
                mirror = r._mirrors.get(mirror_id)
                record = mirror.readings.get(mrid) if mirror is not None else None
                kept = record.sets.get(set_mrid) if record is not None else None
                key = (mirror_id, _key(mrid), _key(set_mrid))
                if kept is None:
                    db.execute(
                        "DELETE FROM reading_sets WHERE mirror_id=? AND mrid=? AND set_mrid=?",
                        key,
                    )
                    continue
                set_id, reading_set, token = kept
                db.execute(
                    "INSERT OR REPLACE INTO reading_sets VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, set_id, token, _blob(reading_set)),
                )
            counters = {
                name: getattr(r, name)
                for name in (
                    "_next_device_id",
                    "_next_mirror_id",
                    "_next_token",
                    "readings_mirrored",
                    "readings_dropped",
                )
            }
            db.execute("INSERT OR REPLACE INTO meta VALUES ('counters', ?)", (_blob(counters),))
            rates = {"poll_rate": r.policy.poll_rate, "post_rate": r.policy.post_rate}
            if ch.rates:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('rates', ?)", (_blob(rates),))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        ch.clear()
        self._books_written(registry)
        self.flushes += 1
        return True

    def counts(self) -> dict[str, int]:
        """Rows kept: devices, mirrors, reading sets (for status and tests)."""
        db = self._db
        return {
            "stored_devices": db.execute("SELECT count(*) FROM devices").fetchone()[0],
            "stored_mirrors": db.execute("SELECT count(*) FROM mirrors").fetchone()[0],
            "stored_reading_sets": db.execute("SELECT count(*) FROM reading_sets").fetchone()[0],
        }
