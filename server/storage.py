"""Record storage in SQLite: one writer connection behind a lock, a second one for reads.

`RecordStore` is what the routes call; server/storage_pg.py is the same in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import aiosqlite

from server import schema
from syncbed.contract import PageVisit
from syncbed.sqlite import SERVER_BUSY_TIMEOUT_MS, apply_pragmas_async

log = logging.getLogger("syncbed.storage")

_INSERT = (
    "INSERT INTO records(user_id, id, url, visited_at, title, duration_ms, tab_id, batch_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, id) DO NOTHING"
)


class StorageUnavailable(Exception):
    """The database cannot be written or read right now (disk full, locked too long, closed, damaged)."""


class StorageDamaged(StorageUnavailable):
    """The database file is corrupt or not a database: nothing serves until it is restored."""


# SQLite's primary result codes for a file that is damaged (as opposed to busy, full or read-only).
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def is_damage(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and isinstance(code, int) and code & 0xFF in _DAMAGE_CODES


def damaged_message(path: Path, detail: str, *, running: bool = False) -> str:
    """The one sentence an operator reads: which file, what is wrong, what to do."""
    detail = " ".join(detail.split())[:200]
    stop = "stop the server and " if running else ""
    return (
        f"the database {path} is damaged ({detail}); {stop}restore it from a backup, "
        f"or move it and its -wal and -shm files aside to start with an empty one"
    )


def _raise_if_damage(path: Path, exc: sqlite3.DatabaseError) -> None:
    """A damaged file raises StorageDamaged with the operator's sentence (the driver's traceback adds nothing)."""
    if is_damage(exc):
        raise StorageDamaged(damaged_message(path, str(exc))) from None


def check_database(path: Path) -> None:
    """Raise StorageDamaged unless `path` is missing, empty or passes SQLite's quick_check.

    quick_check reads every page and checks each b-tree's structure, which is what a bad disk, a
    truncated copy or garbage produces; integrity_check also compares every index with its table,
    which only an SQLite bug breaks, and costs more (figures in docs/security.md).
    """
    try:
        if path.stat().st_size == 0:
            return
    except FileNotFoundError:
        return
    conn = sqlite3.connect(path, timeout=SERVER_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        _raise_if_damage(path, exc)
        raise StorageUnavailable(f"the database {path} cannot be read ({exc})") from None
    finally:
        conn.close()
    if rows != [("ok",)]:
        lines = [line for r in rows for line in str(r[0]).splitlines()]
        found = [line for line in lines if not line.startswith("***")]  # "*** in database main ***"
        raise StorageDamaged(damaged_message(path, "quick_check: " + "; ".join(found[:2])))


@dataclass(frozen=True, slots=True)
class Trace:
    run: str | None = None
    batch: int | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    stored: int
    duplicates: int
    once: str | None = None  # the name its event goes out under, when it was noted unpublished (server/unpublished.py)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batches row whose batch.stored event may never have reached the cluster's stream."""

    once: str
    batch_id: int
    user: str
    run: str | None
    batch: int | None
    attempt: int | None
    records: int
    stored: int
    duplicates: int
    received: float
    ms: float


class RecordStore(Protocol):
    """Atomic, idempotent batch writes, per-user counts and token rows: what the routes and auth call."""

    note_unpublished: bool

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def note(self, exc: BaseException) -> StorageUnavailable: ...

    async def store_batch(self, user: str, visits: list[PageVisit], trace: Trace, ms_so_far: float) -> StoreResult: ...

    async def count(self, user: str) -> int: ...

    async def problem(self) -> str | None: ...

    async def token_row(self, lookup: str) -> TokenRow | None: ...

    async def unpublished(self, older_than: float, limit: int) -> list[StoredBatch]: ...

    async def published(self, names: list[str]) -> None: ...


# With a shared event stream, a batch's row is noted in `unpublished` in the batch's own transaction and
# the note deleted once its batch.stored is on the stream: a worker killed between the two leaves the note,
# and another worker publishes the event for it (server/unpublished.py).
UNPUBLISHED_SELECT = (
    "SELECT p.name, b.id, u.name, b.run, b.batch, b.attempt, b.records, b.stored, b.duplicates, b.received, b.ms "
    "FROM unpublished p JOIN batches b ON b.id = p.batch_id JOIN users u ON u.id = b.user_id "
)


_DELETE_PUBLISHED = "DELETE FROM unpublished WHERE name IN (SELECT value FROM json_each(?))"


def once_name() -> str:
    """A stored batch's event name, unique across databases (two workers' SQLite files both have a batch 1)."""
    return "batch:" + secrets.token_hex(8)


def stored_batch(row: Sequence[Any]) -> StoredBatch:
    once, batch_id, user, run, batch, attempt, records, stored, duplicates, received, ms = row
    return StoredBatch(once, batch_id, user, run, batch, attempt, records, stored, duplicates, received, ms)


TOKEN_ROW_SQL = (
    "SELECT t.hash, u.name, ut.tier FROM tokens t JOIN users u ON u.id = t.user_id "
    "LEFT JOIN user_tiers ut ON ut.user_id = u.id WHERE t.lookup = ? AND t.revoked IS NULL"
)
# The hash, user and tier (None: the default) of an active token, found by its lookup id.
TokenRow: TypeAlias = tuple[str, str, str | None]


def token_row(rows: Sequence[Sequence[Any]]) -> TokenRow | None:
    if not rows:
        return None
    tier = rows[0][2]
    return str(rows[0][0]), str(rows[0][1]), None if tier is None else str(tier)


async def sqlite_token_row(conn: aiosqlite.Connection, lookup: str) -> TokenRow | None:
    """The active token with this lookup id, in one hop to the connection's thread."""
    return token_row(list(await conn.execute_fetchall(TOKEN_ROW_SQL, (lookup,))))


class Storage:
    """Atomic, idempotent batch writes and per-user counts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._user_ids: dict[str, int] = {}
        self.damage: str | None = None  # set for good once SQLite reports the file corrupt
        self.note_unpublished = False  # set when events go to a shared stream (server/unpublished.py)

    async def open(self) -> None:
        try:
            schema.connect(self.path).close()
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            for conn in (self._writer, self._reader):
                await apply_pragmas_async(conn, SERVER_BUSY_TIMEOUT_MS)
        except sqlite3.DatabaseError as exc:
            await self.close()
            _raise_if_damage(self.path, exc)
            raise

    def note(self, exc: BaseException) -> StorageUnavailable:
        """Remember damage (said once, at ERROR) and turn any storage error into StorageUnavailable."""
        if is_damage(exc) and self.damage is None:
            self.damage = str(exc)
            log.error("%s; until then storage answers 503", damaged_message(self.path, self.damage, running=True))
        if isinstance(exc, StorageUnavailable):
            return exc
        return StorageDamaged(str(exc)) if is_damage(exc) else StorageUnavailable(str(exc))

    def _damaged(self) -> str:
        return f"the database is damaged ({self.damage})"

    def _usable(self) -> aiosqlite.Connection:
        """The writer, unless the file is damaged: writing into a corrupt b-tree can spread the damage."""
        if self.damage is not None:
            raise StorageDamaged(self._damaged())
        if self._writer is None:
            raise StorageUnavailable("storage is closed")
        return self._writer

    async def close(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StorageUnavailable("storage is closed")
        return self._reader

    async def user_id(self, name: str) -> int:
        cached = self._user_ids.get(name)
        if cached is not None:
            return cached
        async with self.reader.execute("SELECT id FROM users WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise StorageUnavailable(f"user {name!r} vanished")
        self._user_ids[name] = int(row[0])
        return int(row[0])

    async def store_batch(self, user: str, visits: list[PageVisit], trace: Trace, ms_so_far: float) -> StoreResult:
        """Store a whole batch in one transaction; records already there count as duplicates."""
        writer = self._usable()
        try:
            uid = await self.user_id(user)
        except sqlite3.Error as exc:
            raise self.note(exc) from exc
        # One write transaction at a time: concurrent executemany + commit on one aiosqlite connection
        # fails under load (sqlite3.InterfaceError: bad parameter or other API misuse).
        async with self._lock:
            try:
                await writer.execute("BEGIN IMMEDIATE")
                cur = await writer.execute(
                    "INSERT INTO batches(user_id, run, batch, attempt, records, stored, duplicates, received, ms) "
                    "VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)",
                    (uid, trace.run, trace.batch, trace.attempt, len(visits), time.time(), ms_so_far),
                )
                batch_id = cur.lastrowid
                # A generator, consumed on the connection's thread between row inserts (which run without
                # the GIL), not 1,000 tuples built up front on the event loop.
                rows = ((uid, v.id, v.url, v.visited_at, v.title, v.duration_ms, v.tab_id, batch_id) for v in visits)
                cur = await writer.executemany(_INSERT, rows)
                stored = max(cur.rowcount, 0)
                await writer.execute(
                    "UPDATE batches SET stored = ?, duplicates = ? WHERE id = ?",
                    (stored, len(visits) - stored, batch_id),
                )
                once = once_name() if self.note_unpublished else None
                if once is not None:
                    await writer.execute(
                        "INSERT INTO unpublished(name, batch_id, at) VALUES (?, ?, ?)", (once, batch_id, time.time())
                    )
                await writer.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise self.note(exc) from exc
                raise
        return StoreResult(stored=stored, duplicates=len(visits) - stored, once=once)

    async def unpublished(self, older_than: float, limit: int) -> list[StoredBatch]:
        """Noted batches older than `older_than` (epoch seconds), oldest first."""
        rows = await self.reader.execute_fetchall(
            UNPUBLISHED_SELECT + "WHERE p.at < ? ORDER BY p.at LIMIT ?", (older_than, limit)
        )
        return [stored_batch(r) for r in rows]

    async def published(self, names: list[str]) -> None:
        """Their events are on the stream: the notes go."""
        writer = self._usable()
        async with self._lock:
            try:
                await writer.execute(_DELETE_PUBLISHED, (json.dumps(names),))
            except sqlite3.Error as exc:
                raise self.note(exc) from exc

    async def _rollback(self) -> None:
        assert self._writer is not None
        try:
            await asyncio.shield(self._writer.execute("ROLLBACK"))
        except aiosqlite.Error:
            pass  # no transaction was open

    async def token_row(self, lookup: str) -> TokenRow | None:
        return await sqlite_token_row(self.reader, lookup)

    async def count(self, user: str) -> int:
        if self.damage is not None:
            raise StorageDamaged(self._damaged())
        try:
            uid = await self.user_id(user)
            async with self.reader.execute("SELECT count(*) FROM records WHERE user_id = ?", (uid,)) as cur:
                row = await cur.fetchone()
        except sqlite3.Error as exc:
            raise self.note(exc) from exc
        return int(row[0]) if row else 0

    async def problem(self) -> str | None:
        """Why storage cannot serve, or None: a real read of every table's first page, not `SELECT 1`."""
        if self.damage is not None:
            return self._damaged()
        try:
            async with self.reader.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ) as cur:
                tables = [str(row[0]) for row in await cur.fetchall()]
            # One statement: each table's root and first leaf are read (a hop to the connection's thread, not 8).
            probe = ", ".join('(SELECT 1 FROM "{}" LIMIT 1)'.format(t.replace('"', '""')) for t in tables)
            async with self.reader.execute(f"SELECT {probe or 1}") as cur:
                await cur.fetchone()
        except sqlite3.Error as exc:
            self.note(exc)
            return str(exc)
        except (StorageUnavailable, ValueError) as exc:  # closed: ValueError from aiosqlite
            return str(exc) or "storage is closed"
        return None
