"""Run history's SQL in SQLite: a writer and a reader connection on the server's database file."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiosqlite

from server.history_db import RUN_COLUMNS, Chunk, RunRow, event_row, run_updates, unwritten
from syncbed.events import (
    BATCH_EVENT_TYPES,
    EV_BATCH_REJECTED,
    EV_BATCH_STORED,
    EV_REQUEST_THROTTLED,
)
from syncbed.runs import RunTotals
from syncbed.sqlite import SERVER_BUSY_TIMEOUT_MS, apply_pragmas_async

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id INTEGER NOT NULL,
    run TEXT NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    batch INTEGER,
    attempt INTEGER,
    records INTEGER,
    stored INTEGER,
    duplicates INTEGER,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events(run, seq);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,
    user TEXT,
    status TEXT NOT NULL DEFAULT 'running',
    announced INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,
    finished REAL,
    last_ts REAL NOT NULL,
    total_records INTEGER,
    total_batches INTEGER,
    batch_size INTEGER,
    mode TEXT,
    concurrency INTEGER,
    ok_batches INTEGER,
    failed_batches INTEGER,
    seconds REAL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
CREATE TABLE IF NOT EXISTS history_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERT_EVENT = (
    "INSERT INTO events(id, run, type, ts, batch, attempt, records, stored, duplicates, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SEEN_RUN = (
    "INSERT INTO runs(run, user, started, last_ts) VALUES (?, ?, ?, ?) ON CONFLICT(run) DO UPDATE SET "
    "last_ts = max(runs.last_ts, excluded.last_ts), user = coalesce(runs.user, excluded.user)"
)
# A run's first user owns it for good: later claims only read who that is.
_CLAIM = (
    "INSERT INTO runs(run, user, started, last_ts) VALUES (?, ?, ?, ?) ON CONFLICT(run) DO UPDATE SET "
    "user = coalesce(runs.user, excluded.user) RETURNING user"
)
_OWNERS = "SELECT run, user FROM runs WHERE run IN (SELECT value FROM json_each(?))"
_STARTED = (
    "UPDATE runs SET user = ?, announced = 1, status = 'running', started = min(started, ?), finished = NULL, "
    "total_records = ?, total_batches = ?, batch_size = ?, mode = ?, concurrency = ? WHERE run = ?"
)
_FINISHED = "UPDATE runs SET status = ?, finished = ?, ok_batches = ?, failed_batches = ?, seconds = ? WHERE run = ?"
_TYPES = ",".join(f"'{t}'" for t in BATCH_EVENT_TYPES)
# The same totals the fold (syncbed/fold.py) counts, in SQL, for many runs at once; in RunTotals' order.
_TOTALS = f"""
SELECT run,
    count(DISTINCT CASE WHEN type IN ({_TYPES}) THEN batch END),
    count(DISTINCT CASE WHEN type = '{EV_BATCH_STORED}' THEN batch END),
    count(DISTINCT CASE WHEN type IN ({_TYPES}) THEN coalesce(batch, '') || ':' || coalesce(attempt, '') END),
    total(CASE WHEN type = '{EV_BATCH_STORED}' THEN stored END),
    total(CASE WHEN type = '{EV_BATCH_STORED}' THEN records END),
    total(CASE WHEN type = '{EV_BATCH_STORED}' THEN duplicates END),
    total(type = '{EV_REQUEST_THROTTLED}'),
    total(type = '{EV_BATCH_REJECTED}'),
    count(*)
FROM events WHERE run IN (SELECT value FROM json_each(?)) GROUP BY run
"""


_WRITTEN = "SELECT CAST(value AS INTEGER) FROM history_meta WHERE key = 'last_id'"


class SqliteHistoryDb:
    """The history tables beside the server's own, in WAL: writes on one connection, reads on another."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        for conn in (self._writer, self._reader):
            await apply_pragmas_async(conn, SERVER_BUSY_TIMEOUT_MS)
        await self._writer.executescript(SCHEMA)

    async def close(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("history is closed")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("history is closed")
        return self._reader

    async def last_id(self) -> int:
        async with self.reader.execute(
            "SELECT max(coalesce((SELECT max(id) FROM events), 0), "
            "coalesce((SELECT CAST(value AS INTEGER) FROM history_meta WHERE key = 'last_id'), 0))"
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def save_last_id(self, last_id: int) -> None:
        await self.writer.execute(
            "INSERT INTO history_meta(key, value) VALUES ('last_id', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            (str(last_id),),
        )

    async def owners(self, runs: list[str]) -> dict[str, str | None]:
        async with self.writer.execute(_OWNERS, (json.dumps(runs),)) as cur:
            return {str(run): user for run, user in await cur.fetchall()}

    async def claim(self, run: str, user: str, now: float) -> str | None:
        async with self.writer.execute(_CLAIM, (run, user, now, now)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row and row[0] is not None else None

    async def write(self, chunk: Chunk) -> None:
        conn = self.writer
        await conn.execute("BEGIN IMMEDIATE")
        try:
            if chunk.shared:  # under the write lock: what another worker wrote is skipped
                async with conn.execute(_WRITTEN) as cur:
                    row = await cur.fetchone()
                chunk = unwritten(chunk, int(row[0]) if row and row[0] is not None else 0)
            await conn.executemany(_INSERT_EVENT, [event_row(e) for e in chunk.events])
            await conn.executemany(_SEEN_RUN, [(run, *span) for run, span in chunk.runs.items()])
            for started, params in run_updates(chunk.events):  # in event order
                await conn.execute(_STARTED if started else _FINISHED, params)
            if chunk.last_id is not None:
                await self.save_last_id(chunk.last_id)
            await conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(aiosqlite.Error):
                await asyncio.shield(conn.execute("ROLLBACK"))
            raise

    async def run_row(self, run: str) -> RunRow | None:
        async with self.reader.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run = ?", (run,)) as cur:
            row = await cur.fetchone()
        return dict(zip(RUN_COLUMNS, row, strict=True)) if row else None

    async def run_rows(self, user: str | None, limit: int) -> list[RunRow]:
        where = "WHERE user = ?" if user is not None else ""
        params: tuple[object, ...] = (user, limit) if user is not None else (limit,)
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs {where} ORDER BY started DESC, run LIMIT ?"
        async with self.reader.execute(sql, params) as cur:
            return [dict(zip(RUN_COLUMNS, r, strict=True)) for r in await cur.fetchall()]

    async def totals(self, runs: list[str]) -> dict[str, RunTotals]:
        async with self.reader.execute(_TOTALS, (json.dumps(runs),)) as cur:
            rows = await cur.fetchall()
        return {str(r[0]): RunTotals(*(int(v) for v in r[1:])) for r in rows}

    async def events(self, run: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        async with self.reader.execute(
            "SELECT seq, data FROM events WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?", (run, after_seq, limit)
        ) as cur:
            return [(int(seq), str(data)) for seq, data in await cur.fetchall()]
