"""Run history: every event that names a run, written off the request path in batches (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import msgspec

from server.events import EventBus, Published
from server.history_db import RUN_COLUMNS, Chunk, HistoryDb, RunRow
from server.history_sqlite import SqliteHistoryDb
from server.storage import StorageUnavailable
from syncbed.events import RUN_EVENT_CLASSES, RunEvent, decode_event
from syncbed.fold import RunFold
from syncbed.runs import RunDetail, RunSummary, RunTotals
from syncbed.wire import is_run_id

__all__ = ["RUN_COLUMNS", "History"]

log = logging.getLogger("syncbed.history")

_MAX_OWNERS = 100_000
# What a backend raises when it cannot write: SQLite's errors (ValueError once its connection closed), or ours.
_WRITE_ERRORS = (aiosqlite.Error, ValueError, StorageUnavailable)


def _run_event(published: Published) -> RunEvent | None:
    """The event if it is one a run's history keeps: of a run, with a user."""
    ev = published.event
    if isinstance(ev, RUN_EVENT_CLASSES) and ev.run is not None and ev.user is not None:
        return ev
    return None


class History:
    """Taps the bus; a background task drains a bounded queue into the database; close() flushes the rest.

    `path` is the SQLite file (the embedded default); `db` another backend (server/history_pg.py).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        db: HistoryDb | None = None,
        queue_size: int = 200_000,
        interval: float = 0.2,
        chunk: int = 5000,
    ):
        if db is None:
            if path is None:
                raise ValueError("History needs an SQLite path or a backend")
            db = SqliteHistoryDb(path)
        self.path = path
        self.db = db
        self.queue_size = queue_size
        self.interval = interval
        self.chunk = chunk
        self.lost = 0
        self._owners: dict[str, str] = {}  # run -> its user; an owner never changes, so this never goes stale
        self._queue: deque[Published] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._bus: EventBus | None = None

    async def open(self, bus: EventBus | None = None) -> None:
        """Create the tables, continue the bus's ids after the last one stored, and start writing."""
        await self.db.open()
        if bus is not None:
            self._bus = bus
            bus.continue_after(await self.last_id())
            bus.add_tap(self.tap)
        self._task = asyncio.create_task(self._run(), name="syncbed-history")

    async def last_id(self) -> int:
        return await self.db.last_id()

    @property
    def reader(self) -> aiosqlite.Connection:
        """The SQLite backend's read connection (RuntimeError once closed, or on another backend)."""
        if not isinstance(self.db, SqliteHistoryDb):
            raise RuntimeError("this history is not in SQLite")
        return self.db.reader

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
        while self._queue and self.db.is_open:
            # The lock is taken per chunk, so a claim waits for one transaction, not a whole backlog.
            async with self._lock:
                if not self._queue or not self.db.is_open:
                    return
                # Copy, commit, then drop: a failed write leaves the events queued for the next try.
                chunk = [self._queue[i] for i in range(min(self.chunk, len(self._queue)))]
                try:
                    await self._write(chunk)
                except _WRITE_ERRORS as exc:
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
                if not self.db.is_open:
                    raise StorageUnavailable("the run history is closed")
                try:
                    found = await self.db.claim(run, user, time.time())
                except (aiosqlite.Error, StorageUnavailable) as exc:
                    raise StorageUnavailable(f"cannot record run {run!r}: {exc}") from exc
                owner = found if found is not None else user
                self._remember(run, owner)
        return owner

    async def _owned(self, chunk: list[Published]) -> tuple[list[Published], dict[str, str]]:
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
            owners.update(await self.db.owners(unknown))
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

    async def _write(self, chunk: list[Published]) -> None:
        kept, owners = await self._owned(chunk)
        runs: dict[str, tuple[str, float, float]] = {}  # run -> its owner, first and last event time here
        for event in kept:
            assert event.run is not None
            ts = event.event.ts
            _, first, last = runs.get(event.run, (None, ts, ts))
            runs[event.run] = (owners[event.run], min(first, ts), max(last, ts))
        bus = self._bus
        mark = None if bus is None else bus.history_mark(chunk)
        await self.db.write(Chunk(kept, runs, mark, shared=bus is not None and bus.shared))
        for run in runs:
            self._remember(run, owners[run])

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
        mark = None if self._bus is None else self._bus.history_mark([])
        if self.db.is_open and mark is not None:
            with contextlib.suppress(*_WRITE_ERRORS):
                await self.db.save_last_id(mark)
        await self.db.close()
        if self._queue:
            log.error("history closed with %d run events unwritten", len(self._queue))

    # --- queries -------------------------------------------------------------

    async def run_row(self, run: str) -> RunRow | None:
        return await self.db.run_row(run)

    async def list_runs(self, user: str | None = None, limit: int = 50) -> list[RunSummary]:
        """Recent runs (newest first) with their totals; `user` limits it to that user's runs."""
        rows = await self.db.run_rows(user, limit)
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
        return await self.db.totals(runs)

    async def events(self, run: str, after_seq: int = 0, limit: int = 2000) -> list[tuple[int, str]]:
        """One page of a run's stored events (seq, JSON text), oldest first."""
        return await self.db.events(run, after_seq, limit)

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
