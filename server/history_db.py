"""What a run history backend is (SQLite or PostgreSQL): the calls History makes, and the rows both keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from server.events import Published
from syncbed.events import BATCH_EVENT_CLASSES, BatchReceived, BatchRejected, BatchStored, RunFinished, RunStarted
from syncbed.runs import RunTotals

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

RunRow = dict[str, object]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One transaction's worth: the events kept, each run's owner and span in them, the bus's last id."""

    events: list[Published]
    runs: dict[str, tuple[str, float, float]]  # run -> (owner, first event time, last event time)
    last_id: int | None  # remembered with the events, so a restart continues after it
    # A shared bus feeds every worker's history: the backend keeps only what no worker has written to
    # this database yet (`unwritten`), read under the transaction's write lock.
    shared: bool = False


def unwritten(chunk: Chunk, written: int) -> Chunk:
    """The chunk without the events another worker already wrote (ids up to `written`), spans redone.

    Each worker reads the stream in order from the database's last_id on, and each transaction moves
    last_id to the end of what it covers, so the first writer of an event writes it and the others skip it.
    """
    events = [e for e in chunk.events if e.id is not None and e.id > written]
    runs: dict[str, tuple[str, float, float]] = {}
    for event in events:
        assert event.run is not None
        owner, first, last = runs.get(event.run, (chunk.runs[event.run][0], event.event.ts, event.event.ts))
        runs[event.run] = (owner, min(first, event.event.ts), max(last, event.event.ts))
    return Chunk(events, runs, chunk.last_id, chunk.shared)


def event_row(published: Published) -> tuple[object, ...]:
    """An event's columns in the events table (id, run, type, ts, batch, attempt, records, stored, duplicates, data)."""
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


def run_updates(events: list[Published]) -> list[tuple[bool, tuple[object, ...]]]:
    """Each run.started's and run.finished's update of its run row, in event order: (started?, parameters).

    Started: (user, ts, total_records, total_batches, batch_size, mode, concurrency, run);
    finished: (status, ts, ok_batches, failed_batches, seconds, run).
    """
    out: list[tuple[bool, tuple[object, ...]]] = []
    for event in events:
        d = event.event
        if isinstance(d, RunStarted):
            announced = (d.user, d.ts, d.total_records, d.total_batches, d.batch_size, d.mode, d.concurrency, d.run)
            out.append((True, announced))
        elif isinstance(d, RunFinished):
            out.append((False, (d.status, d.ts, d.ok_batches, d.failed_batches, d.seconds, d.run)))
    return out


class HistoryDb(Protocol):
    """The SQL side of History; every method raises StorageUnavailable (or the driver's error) when it cannot."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def is_open(self) -> bool: ...

    async def last_id(self) -> int: ...

    async def save_last_id(self, last_id: int) -> None: ...

    async def owners(self, runs: list[str]) -> dict[str, str | None]: ...

    async def claim(self, run: str, user: str, now: float) -> str | None: ...

    async def write(self, chunk: Chunk) -> None: ...

    async def run_row(self, run: str) -> RunRow | None: ...

    async def run_rows(self, user: str | None, limit: int) -> list[RunRow]: ...

    async def totals(self, runs: list[str]) -> dict[str, RunTotals]: ...

    async def events(self, run: str, after_seq: int, limit: int) -> list[tuple[int, str]]: ...
