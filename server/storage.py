"""Record storage: one writer connection behind a lock (see NOTES), a second one for reads."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from server import schema
from syncbed.contract import PageVisit

_INSERT = (
    "INSERT INTO records(user_id, id, url, visited_at, title, duration_ms, tab_id, batch_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, id) DO NOTHING"
)


class StorageUnavailable(Exception):
    """The database cannot be written or read right now (disk full, locked too long, closed)."""


@dataclass(frozen=True, slots=True)
class Trace:
    run: str | None = None
    batch: int | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    stored: int
    duplicates: int


class Storage:
    """Atomic, idempotent batch writes and per-user counts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._user_ids: dict[str, int] = {}

    async def open(self) -> None:
        schema.connect(self.path).close()
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        for conn in (self._writer, self._reader):
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=30000")

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
        if self._writer is None:
            raise StorageUnavailable("storage is closed")
        uid = await self.user_id(user)
        async with self._lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                cur = await self._writer.execute(
                    "INSERT INTO batches(user_id, run, batch, attempt, records, stored, duplicates, received, ms) "
                    "VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)",
                    (uid, trace.run, trace.batch, trace.attempt, len(visits), time.time(), ms_so_far),
                )
                batch_id = cur.lastrowid
                # A generator, consumed on the connection's thread between row inserts (which run without
                # the GIL), not 1,000 tuples built up front on the event loop.
                rows = ((uid, v.id, v.url, v.visited_at, v.title, v.duration_ms, v.tab_id, batch_id) for v in visits)
                cur = await self._writer.executemany(_INSERT, rows)
                stored = max(cur.rowcount, 0)
                await self._writer.execute(
                    "UPDATE batches SET stored = ?, duplicates = ? WHERE id = ?",
                    (stored, len(visits) - stored, batch_id),
                )
                await self._writer.execute("COMMIT")
            except BaseException as exc:
                await self._rollback()
                if isinstance(exc, aiosqlite.Error):
                    raise StorageUnavailable(str(exc)) from exc
                raise
        return StoreResult(stored=stored, duplicates=len(visits) - stored)

    async def _rollback(self) -> None:
        assert self._writer is not None
        try:
            await asyncio.shield(self._writer.execute("ROLLBACK"))
        except aiosqlite.Error:
            pass  # no transaction was open

    async def count(self, user: str) -> int:
        try:
            uid = await self.user_id(user)
            async with self.reader.execute("SELECT count(*) FROM records WHERE user_id = ?", (uid,)) as cur:
                row = await cur.fetchone()
        except aiosqlite.Error as exc:
            raise StorageUnavailable(str(exc)) from exc
        return int(row[0]) if row else 0

    async def healthy(self) -> bool:
        try:
            async with self.reader.execute("SELECT 1") as cur:
                await cur.fetchone()
        except (aiosqlite.Error, StorageUnavailable, ValueError):
            return False
        return True
