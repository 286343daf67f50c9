"""Run history in SQLite: every event that names a run, written off the request path in batches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import msgspec

from server.events import EventBus, Published
from server.storage import StorageUnavailable
from syncbed.events import (
    BATCH_EVENT_CLASSES,
    BATCH_EVENT_TYPES,
    EV_BATCH_REJECTED,
    EV_BATCH_STORED,
    EV_REQUEST_THROTTLED,
    RUN_EVENT_CLASSES,
    BatchReceived,
    BatchRejected,
    BatchStored,
    RunEvent,
    RunFinished,
    RunStarted,
    decode_event,
)
from syncbed.fold import RunFold
from syncbed.runs import RunDetail, RunSummary, RunTotals
from syncbed.sqlite import SERVER_BUSY_TIMEOUT_MS, apply_pragmas_async
from syncbed.wire import is_run_id

log = logging.getLogger("syncbed.history")

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
_MAX_OWNERS = 100_000
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
RUN_COLUMNS = (
    "run",
    "user",
    "status",
    "announced",
    "started",
    "finished",
    "last_ts",
    "total_records",
    "total_batches",
    "batch_size",
    "mode",
    "concurrency",
    "ok_batches",
    "failed_batches",
    "seconds",
)


def _row(published: Published) -> tuple[object, ...]:
    ev = published.event
    batch = attempt = records = stored = duplicates = None
    if isinstance(ev, BATCH_EVENT_CLASSES):
        batch, attempt = ev.batch, ev.attempt
    if isinstance(ev, BatchReceived | BatchStored | BatchRejected):
        records = ev.records
    if isinstance(ev, BatchStored):
        stored, duplicates = ev.stored, ev.duplicates
    return (
        published.id,
        published.run,
        published.type,
        ev.ts,
        batch,
        attempt,
        records,
        stored,
        duplicates,
        published.json.decode(),
    )


def _run_event(published: Published) -> RunEvent | None:
    """The event if it is one a run's history keeps: of a run, with a user."""
    ev = published.event
    if isinstance(ev, RUN_EVENT_CLASSES) and ev.run is not None and ev.user is not None:
        return ev
    return None


class History:
    """Taps the bus; a background task drains a bounded queue into SQLite; close() flushes the rest."""

    def __init__(self, path: Path, *, queue_size: int = 200_000, interval: float = 0.2, chunk: int = 5000):
        self.path = path
        self.queue_size = queue_size
        self.interval = interval
        self.chunk = chunk
        self.lost = 0
        self._owners: dict[str, str] = {}  # run -> its user; an owner never changes, so this never goes stale
        self._queue: deque[Published] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock = asyncio.Lock()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._bus: EventBus | None = None

    async def open(self, bus: EventBus | None = None) -> None:
        """Create the tables, continue the bus's ids after the last one stored, and start writing."""
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        for conn in (self._writer, self._reader):
            await apply_pragmas_async(conn, SERVER_BUSY_TIMEOUT_MS)
        await self._writer.executescript(SCHEMA)
        if bus is not None:
            self._bus = bus
            bus.continue_after(await self.last_id())
            bus.add_tap(self.tap)
        self._task = asyncio.create_task(self._run(), name="syncbed-history")

    async def last_id(self) -> int:
        async with self.reader.execute(
            "SELECT max(coalesce((SELECT max(id) FROM events), 0), "
            "coalesce((SELECT CAST(value AS INTEGER) FROM history_meta WHERE key = 'last_id'), 0))"
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("history is closed")
        return self._reader

    @property
    def pending(self) -> int:
        return len(self._queue)

    def tap(self, event: Published) -> None:
        """Called by the bus for every event: queue the ones that name a run and a user (O(1), never blocks).

        An event without a user (a 401, a throttled request without a valid token) is never stored: a
        run's history is written only by the user it belongs to, and refused floods cost no disk.
        """
        if _run_event(event) is None or not is_run_id(event.run):
            return
        if len(self._queue) >= self.queue_size:
            self.lost += 1
            if self.lost % 1000 == 1:
                log.warning("history queue full: %d run events not recorded so far", self.lost)
            return
        self._queue.append(event)
        if not self._wake.is_set():
            self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            if self._stopping:
                break
            await asyncio.sleep(self.interval)  # let a burst gather into one transaction
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far (readers call this first, so they see their own writes)."""
        if self._bus is not None:
            await self._bus.settled()  # a shared bus hands this worker's events back after a round trip
        while self._queue and self._writer is not None:
            # The lock is taken per chunk, so a claim waits for one transaction, not a whole backlog.
            async with self._lock:
                if not self._queue or self._writer is None:
                    return
                # Copy, commit, then drop: a failed write leaves the events queued for the next try.
                chunk = [self._queue[i] for i in range(min(self.chunk, len(self._queue)))]
                try:
                    await self._write(self._writer, chunk)
                except (aiosqlite.Error, ValueError) as exc:
                    log.warning("writing %d run events failed (will retry): %s", len(chunk), exc)
                    return
                for _ in chunk:
                    self._queue.popleft()

    def _remember(self, run: str, owner: str) -> None:
        if len(self._owners) >= _MAX_OWNERS:
            self._owners.clear()
        self._owners[run] = owner

    async def claim(self, run: str, user: str) -> str:
        """The run's owner: `user` when the run is new or already theirs, else the user who has it."""
        owner = self._owners.get(run)
        if owner is not None:
            return owner
        async with self._lock:
            owner = self._owners.get(run)
            if owner is None:
                if self._writer is None:
                    raise StorageUnavailable("the run history is closed")
                now = time.time()
                try:
                    async with self._writer.execute(_CLAIM, (run, user, now, now)) as cur:
                        row = await cur.fetchone()
                except aiosqlite.Error as exc:
                    raise StorageUnavailable(f"cannot record run {run!r}: {exc}") from exc
                owner = str(row[0]) if row and row[0] is not None else user
                self._remember(run, owner)
        return owner

    async def _owned(
        self, conn: aiosqlite.Connection, chunk: list[Published]
    ) -> tuple[list[Published], dict[str, str]]:
        """The events whose user owns their run, and those runs' owners.

        A run nobody owns yet goes to its first event's user; an event naming another user's run is
        published live but never stored under it."""
        owners: dict[str, str | None] = {}
        unknown = []
        for event in chunk:
            assert event.run is not None
            if event.run not in owners:
                owners[event.run] = self._owners.get(event.run)
                if owners[event.run] is None:
                    unknown.append(event.run)
        if unknown:
            async with conn.execute(_OWNERS, (json.dumps(unknown),)) as cur:
                for run, user in await cur.fetchall():
                    owners[str(run)] = user
        kept: list[Published] = []
        settled: dict[str, str] = {}
        for event in chunk:
            assert event.run is not None
            ev = _run_event(event)
            if ev is None or ev.user is None:
                continue  # tap() queues none of these
            user = ev.user
            owner = owners.get(event.run)
            if owner is None:
                owner = owners[event.run] = user
            if user == owner:
                kept.append(event)
                settled[event.run] = owner
        return kept, settled

    async def _write(self, conn: aiosqlite.Connection, chunk: list[Published]) -> None:
        mark = None if self._bus is None else self._bus.history_mark(chunk)
        shared = self._bus is not None and self._bus.shared
        if shared:  # what another worker wrote is skipped inside the transaction that writes the rest
            await conn.execute("BEGIN IMMEDIATE")
        try:
            if shared:
                chunk = await self._unwritten(conn, chunk)
            chunk, owners = await self._owned(conn, chunk)
            spans: dict[str, tuple[float, float]] = {}  # run -> its first and last event time in this chunk
            for event in chunk:
                assert event.run is not None
                ts = event.event.ts
                first, last = spans.get(event.run, (ts, ts))
                spans[event.run] = (min(first, ts), max(last, ts))
            if not shared:
                await conn.execute("BEGIN IMMEDIATE")
            await conn.executemany(_INSERT_EVENT, [_row(e) for e in chunk])
            await conn.executemany(_SEEN_RUN, [(run, owners[run], f, la) for run, (f, la) in spans.items()])
            for event in chunk:
                d = event.event
                if isinstance(d, RunStarted):
                    await conn.execute(
                        _STARTED,
                        (d.user, d.ts, d.total_records, d.total_batches, d.batch_size, d.mode, d.concurrency, d.run),
                    )
                elif isinstance(d, RunFinished):
                    await conn.execute(_FINISHED, (d.status, d.ts, d.ok_batches, d.failed_batches, d.seconds, d.run))
            if mark is not None:
                await self._save_last_id(conn, mark)
            await conn.execute("COMMIT")
            for run in spans:
                self._remember(run, owners[run])
        except BaseException:
            with contextlib.suppress(aiosqlite.Error):
                await asyncio.shield(conn.execute("ROLLBACK"))
            raise

    @staticmethod
    async def _save_last_id(conn: aiosqlite.Connection, last_id: int) -> None:
        await conn.execute(
            "INSERT INTO history_meta(key, value) VALUES ('last_id', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            (str(last_id),),
        )

    @staticmethod
    async def _unwritten(conn: aiosqlite.Connection, chunk: list[Published]) -> list[Published]:
        """A shared bus feeds every worker's history: keep what no worker has written to this database yet.

        Each worker reads the stream in order from the database's last_id on, and each transaction moves
        last_id to the end of what it covers, so the first writer of an event writes it and the others skip
        it. Called inside the writing transaction, after its write lock is taken."""
        async with conn.execute("SELECT CAST(value AS INTEGER) FROM history_meta WHERE key = 'last_id'") as cur:
            row = await cur.fetchone()
        written = int(row[0]) if row and row[0] is not None else 0
        return [e for e in chunk if e.id is not None and e.id > written]

    async def close(self) -> None:
        """Stop the writer after its current transaction, write what is left, close."""
        if self._bus is not None:
            self._bus.remove_tap(self.tap)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        if self._writer is not None:
            mark = None if self._bus is None else self._bus.history_mark([])
            if mark is not None:
                with contextlib.suppress(aiosqlite.Error):
                    await self._save_last_id(self._writer, mark)
            await self._writer.close()
        if self._reader is not None:
            await self._reader.close()
        self._writer = self._reader = None
        if self._queue:
            log.error("history closed with %d run events unwritten", len(self._queue))

    # --- queries -------------------------------------------------------------

    async def run_row(self, run: str) -> dict[str, object] | None:
        async with self.reader.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run = ?", (run,)) as cur:
            row = await cur.fetchone()
        return dict(zip(RUN_COLUMNS, row, strict=True)) if row else None

    async def list_runs(self, user: str | None = None, limit: int = 50) -> list[RunSummary]:
        """Recent runs (newest first) with their totals; `user` limits it to that user's runs."""
        where = "WHERE user = ?" if user is not None else ""
        params: tuple[object, ...] = (user, limit) if user is not None else (limit,)
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs {where} ORDER BY started DESC, run LIMIT ?"
        async with self.reader.execute(sql, params) as cur:
            rows = [dict(zip(RUN_COLUMNS, r, strict=True)) for r in await cur.fetchall()]
        totals = await self.totals([str(r["run"]) for r in rows])
        out = []
        for r in rows:
            r["announced"] = bool(r["announced"])
            r["totals"] = totals.get(str(r["run"]), RunTotals())
            out.append(msgspec.convert(r, RunSummary))
        return out

    async def totals(self, runs: list[str]) -> dict[str, RunTotals]:
        """Each run's totals, by SQL over its stored events (the list's fast path; the fold counts the same)."""
        if not runs:
            return {}
        async with self.reader.execute(_TOTALS, (json.dumps(runs),)) as cur:
            rows = await cur.fetchall()
        return {str(r[0]): RunTotals(*(int(v) for v in r[1:])) for r in rows}

    async def events(self, run: str, after_seq: int = 0, limit: int = 2000) -> list[tuple[int, str]]:
        """One page of a run's stored events (seq, JSON text), oldest first."""
        async with self.reader.execute(
            "SELECT seq, data FROM events WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?", (run, after_seq, limit)
        ) as cur:
            return [(int(seq), str(data)) for seq, data in await cur.fetchall()]

    async def iter_events(self, run: str) -> AsyncIterator[str]:
        after = 0
        while True:
            page = await self.events(run, after)
            if not page:
                return
            for _seq, data in page:
                yield data
            after = page[-1][0]

    async def detail(self, run: str) -> RunDetail:
        """The run folded from its stored events; a stored line no type here reads is skipped, and logged."""
        folded = RunFold(run)
        skipped = 0
        async for data in self.iter_events(run):
            try:
                folded.add(decode_event(data))
            except msgspec.DecodeError:
                skipped += 1
        if skipped:
            log.warning("run %s: %d stored events could not be read and were left out", run, skipped)
        view = folded.view()
        if view.user is None:  # the run's owner, for a run whose events never named one
            row = await self.run_row(run)
            owner = None if row is None else row.get("user")
            view.user = owner if isinstance(owner, str) else None
        return view
