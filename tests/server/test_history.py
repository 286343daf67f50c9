"""Run history on a real SQLite file: its schema, what it keeps, who owns a run, reading it back.

The totals SQL and the run view are left to the fold's tests; this module covers the writer.
Queue bound and flush-on-close: tests/server/test_runs.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from server.events import EventBus, Published
from server.history import RUN_COLUMNS, History
from server.storage import StorageUnavailable
from syncbed.events import (
    EV_BATCH_RECEIVED,
    EV_BATCH_STORED,
    EV_RUN_FINISHED,
    EV_RUN_STARTED,
    EV_STATS,
    BatchStored,
    Event,
)
from syncbed.sqlite import SERVER_BUSY_TIMEOUT_MS
from tests.server.helpers import rows

_STATS: dict[str, object] = {"requests_per_s": 0.0, "throttled_per_s": 0.0, "in_flight": 0, "limiter": {}}


def emit(bus: EventBus, type: str, **fields: object) -> None:
    """Publish as the server does, built from wire fields (the one place this module names the bus's call)."""
    defaults = _STATS if type == EV_STATS else {"batch": None, "attempt": None}
    bus.publish(msgspec.convert({**defaults, "type": type, **fields}, Event))


def event(run: str, user: str, ts: float) -> Published:
    """A batch.stored event at a chosen time, as the bus would hand it to its taps."""
    stored = BatchStored(
        id=0, ts=ts, run=run, batch=None, attempt=None, user=user, records=0, stored=0, duplicates=0, ms=0.0
    )
    return Published(stored)


def stored(bus: EventBus, run: str, user: str | None, batch: int, **more: object) -> None:
    fields = {"records": 10, "stored": 9, "duplicates": 1, "ms": 1.0, **more}
    emit(bus, EV_BATCH_STORED, run=run, batch=batch, attempt=1, user=user, **fields)


@pytest.fixture
def bus() -> EventBus:
    return EventBus(stats_interval=0)


@pytest.fixture
async def history(tmp_path: Path, bus: EventBus) -> AsyncIterator[History]:
    # Tests flush to see their writes; close() waits out the writer's pause, so keep it short.
    h = History(tmp_path / "server.sqlite3", interval=0.01)
    await h.open(bus)
    yield h
    await h.close()


async def test_open_creates_its_tables_in_wal_beside_the_servers(history: History) -> None:
    names = {str(r[0]) for r in rows(history.path, "SELECT name FROM sqlite_schema")}
    assert {"events", "runs", "history_meta", "events_run", "runs_started"} <= names
    assert rows(history.path, "PRAGMA journal_mode") == [("wal",)]
    async with history.reader.execute("PRAGMA busy_timeout") as cur:
        assert await cur.fetchone() == (SERVER_BUSY_TIMEOUT_MS,)


async def test_opening_again_keeps_what_is_there(tmp_path: Path, bus: EventBus, history: History) -> None:
    stored(bus, "r1", "alice", 0)
    await history.flush()
    again = History(history.path)
    await again.open()  # a second open runs the schema again: IF NOT EXISTS, nothing dropped
    try:
        assert len(await again.events("r1")) == 1
    finally:
        await again.close()


async def test_only_events_naming_a_valid_run_and_a_user_are_kept(bus: EventBus, history: History) -> None:
    emit(bus, EV_STATS, records_per_s=1.0)  # no run
    stored(bus, "r1", None, 0)  # nobody authenticated
    stored(bus, "bad run id", "alice", 2)  # not a run id
    stored(bus, "x" * 65, "alice", 3)
    assert history.pending == 0
    stored(bus, "r1", "alice", 4)
    assert history.pending == 1
    await history.flush()
    assert history.pending == 0
    assert rows(history.path, "SELECT run, batch FROM events") == [("r1", 4)]


async def test_an_event_is_stored_with_its_columns_and_its_json(bus: EventBus, history: History) -> None:
    stored(bus, "r1", "alice", 3, ms=1.5)
    emit(bus, EV_BATCH_RECEIVED, run="r1", user="alice", records=2)
    await history.flush()
    got = rows(history.path, "SELECT id, run, type, ts, batch, attempt, records, stored, duplicates, data FROM events")
    first, second = got
    assert first[:3] == (1, "r1", EV_BATCH_STORED)
    assert first[4:9] == (3, 1, 10, 9, 1)
    data = json.loads(str(first[9]))
    assert data == {
        "id": 1,
        "ts": first[3],
        "type": EV_BATCH_STORED,
        "run": "r1",
        "batch": 3,
        "attempt": 1,
        "user": "alice",
        "records": 10,
        "stored": 9,
        "duplicates": 1,
        "ms": 1.5,
    }
    assert second[4:9] == (None, None, 2, None, None)  # a batch without trace headers has no batch column
    assert json.loads(str(second[9]))["records"] == 2


async def test_a_run_is_created_by_its_first_event_and_spans_its_events(bus: EventBus, history: History) -> None:
    stored(bus, "r1", "alice", 0)
    stored(bus, "r1", "alice", 1)
    await history.flush()
    (e0, e1) = rows(history.path, "SELECT ts FROM events ORDER BY seq")
    row = await history.run_row("r1")
    assert row is not None
    assert set(row) == set(RUN_COLUMNS)
    assert (row["run"], row["user"], row["status"], row["announced"]) == ("r1", "alice", "running", 0)
    assert (row["started"], row["last_ts"], row["finished"]) == (e0[0], e1[0], None)
    assert await history.run_row("nope") is None


async def test_a_runs_span_is_its_earliest_and_latest_event_in_any_order(history: History) -> None:
    for ts in (20.0, 10.0, 30.0):  # one chunk, out of order (published from several threads)
        history.tap(event("r1", "alice", ts))
    await history.flush()
    history.tap(event("r1", "alice", 25.0))  # a later chunk with an older event moves neither end
    await history.flush()
    row = await history.run_row("r1")
    assert row is not None and (row["started"], row["last_ts"]) == (10.0, 30.0)


async def test_run_started_and_finished_fill_the_run_row(bus: EventBus, history: History) -> None:
    stored(bus, "r1", "alice", 0)  # seen before it was announced (a client retrying its announcement)
    emit(
        bus,
        EV_RUN_STARTED,
        run="r1",
        user="alice",
        total_records=3000,
        total_batches=3,
        batch_size=1000,
        mode="conservative",
        concurrency=4,
    )
    await history.flush()
    row = await history.run_row("r1")
    assert row is not None
    assert row["announced"] == 1 and row["status"] == "running"
    assert (row["total_records"], row["total_batches"], row["batch_size"]) == (3000, 3, 1000)
    assert (row["mode"], row["concurrency"]) == ("conservative", 4)
    (first_ts,) = rows(history.path, "SELECT min(ts) FROM events")[0]
    assert row["started"] == first_ts  # the earliest event, not the announcement
    emit(bus, EV_RUN_FINISHED, run="r1", user="alice", status="partial", ok_batches=2, failed_batches=1, seconds=1.5)
    await history.flush()
    done = await history.run_row("r1")
    assert done is not None
    (finished_ts,) = rows(history.path, "SELECT ts FROM events WHERE type = ?", (EV_RUN_FINISHED,))[0]
    assert (done["status"], done["finished"], done["last_ts"]) == ("partial", finished_ts, finished_ts)
    assert (done["ok_batches"], done["failed_batches"], done["seconds"]) == (2, 1, 1.5)


async def test_a_run_belongs_to_its_first_user_for_good(tmp_path: Path, history: History) -> None:
    assert await history.claim("r1", "alice") == "alice"
    assert await history.claim("r1", "alice") == "alice"  # a retry
    assert await history.claim("r1", "bob") == "alice"
    assert rows(history.path, "SELECT user FROM runs WHERE run = 'r1'") == [("alice",)]
    later = EventBus(stats_interval=0)
    again = History(history.path)  # a fresh process knows nothing cached: the file says who
    await again.open(later)
    try:
        stored(later, "r1", "bob", 0)  # not claimed first: the writer asks the file
        stored(later, "r1", "alice", 1)
        await again.flush()
        assert rows(history.path, "SELECT batch, json_extract(data, '$.user') FROM events") == [(1, "alice")]
        assert await again.claim("r1", "bob") == "alice"
    finally:
        await again.close()


async def test_another_users_events_never_land_in_a_run(bus: EventBus, history: History) -> None:
    assert await history.claim("r1", "alice") == "alice"
    stored(bus, "r1", "bob", 0)
    stored(bus, "r1", "alice", 1)
    emit(bus, EV_RUN_FINISHED, run="r1", user="bob", status="failed", ok_batches=0, failed_batches=9, seconds=1.0)
    await history.flush()
    assert rows(history.path, "SELECT batch FROM events WHERE run = 'r1'") == [(1,)]
    row = await history.run_row("r1")
    assert row is not None and row["user"] == "alice" and row["status"] == "running"


async def test_an_unclaimed_run_goes_to_its_first_events_user(bus: EventBus, history: History) -> None:
    stored(bus, "r2", "carol", 0)  # one chunk: carol first, then dave
    stored(bus, "r2", "dave", 1)
    stored(bus, "r2", "carol", 2)
    await history.flush()
    assert rows(history.path, "SELECT batch FROM events ORDER BY seq") == [(0,), (2,)]
    assert await history.claim("r2", "dave") == "carol"
    stored(bus, "r2", "dave", 3)  # a later chunk asks the file (or the cache), with the same answer
    await history.flush()
    assert rows(history.path, "SELECT user FROM runs") == [("carol",)]
    assert [str(r[0]) for r in rows(history.path, "SELECT batch FROM events ORDER BY seq")] == ["0", "2"]


async def test_claiming_on_a_closed_history_is_unavailable(tmp_path: Path) -> None:
    h = History(tmp_path / "server.sqlite3")
    with pytest.raises(StorageUnavailable, match="closed"):
        await h.claim("r1", "alice")


async def test_a_failed_write_keeps_the_events_for_the_next_try(
    bus: EventBus, history: History, caplog: pytest.LogCaptureFixture
) -> None:
    stored(bus, "r1", "alice", 0)
    conn = sqlite3.connect(history.path)
    conn.execute("ALTER TABLE events RENAME TO events_away")  # the insert fails as a full disk would
    caplog.set_level(logging.WARNING, logger="syncbed.history")
    await history.flush()
    assert history.pending == 1
    assert "will retry" in caplog.text
    conn.execute("ALTER TABLE events_away RENAME TO events")
    conn.close()
    await history.flush()
    assert history.pending == 0
    assert len(await history.events("r1")) == 1
    assert rows(history.path, "SELECT count(*) FROM runs") == [(1,)]  # the failed transaction left no run row


async def test_a_backlog_is_written_in_chunks(tmp_path: Path, bus: EventBus) -> None:
    h = History(tmp_path / "server.sqlite3", interval=0.01, chunk=3)
    await h.open(bus)
    try:
        for i in range(10):
            stored(bus, f"r{i % 2}", "alice", i)
        await h.flush()
        assert h.pending == 0
        assert [int(str(r[0])) for r in rows(h.path, "SELECT batch FROM events ORDER BY seq")] == list(range(10))
    finally:
        await h.close()


async def test_the_writer_task_drains_the_queue_by_itself(tmp_path: Path, bus: EventBus) -> None:
    h = History(tmp_path / "server.sqlite3", interval=0.01)
    await h.open(bus)
    try:
        stored(bus, "r1", "alice", 0)
        for _ in range(500):  # bounded: 5 s at most
            if not h.pending:
                break
            await asyncio.sleep(0.01)
        assert h.pending == 0
        assert len(await h.events("r1")) == 1
    finally:
        await h.close()


async def test_events_are_read_back_in_order_a_page_at_a_time(bus: EventBus, history: History) -> None:
    for i in range(2100):  # more than iter_events' 2,000-event page
        stored(bus, "r2" if i % 500 == 7 else "r1", "alice", i)
    await history.flush()
    page = await history.events("r1", limit=3)
    assert [json.loads(d)["batch"] for _, d in page] == [0, 1, 2]
    after = await history.events("r1", after_seq=page[-1][0], limit=6)
    assert [json.loads(d)["batch"] for _, d in after] == [3, 4, 5, 6, 8, 9]
    every = [json.loads(d)["batch"] async for d in history.iter_events("r1")]
    assert every == [i for i in range(2100) if i % 500 != 7]
    assert [d async for d in history.iter_events("nope")] == []


async def test_list_runs_is_newest_first_limited_and_per_user(bus: EventBus, history: History) -> None:
    for run, user in (("a", "alice"), ("b", "bob"), ("c", "alice"), ("d", "alice")):
        stored(bus, run, user, 0)
    await history.flush()
    assert [r.run for r in await history.list_runs()] == ["d", "c", "b", "a"]
    assert [r.run for r in await history.list_runs(limit=2)] == ["d", "c"]
    mine = await history.list_runs("alice")
    assert [r.run for r in mine] == ["d", "c", "a"]
    assert all(r.announced is False for r in mine)
    assert await history.list_runs("nobody") == []


async def test_ids_continue_after_the_last_one_stored_or_published(tmp_path: Path, bus: EventBus) -> None:
    h = History(tmp_path / "server.sqlite3")
    await h.open(bus)
    try:
        stored(bus, "r1", "alice", 0)  # id 1, kept
        for _ in range(4):
            emit(bus, EV_STATS, records_per_s=0.0)  # ids 2-5: never stored as events
        await h.flush()  # a write records the bus's last id too, so a crash after it loses none
        assert rows(h.path, "SELECT value FROM history_meta WHERE key = 'last_id'") == [("5",)]
        emit(bus, EV_STATS, records_per_s=0.0)  # id 6
    finally:
        await h.close()  # remembers the bus's last id, 6
    assert rows(h.path, "SELECT max(id) FROM events") == [(1,)]
    later = EventBus(stats_interval=0)
    again = History(h.path)
    await again.open(later)
    try:
        assert await again.last_id() == 6
        emit(later, EV_STATS, records_per_s=0.0)
        assert later.last_id == 7  # a client resuming from 6 is not sent a repeated id
    finally:
        await again.close()


async def test_a_closed_history_stops_tapping_the_bus(tmp_path: Path, bus: EventBus) -> None:
    h = History(tmp_path / "server.sqlite3")
    await h.open(bus)
    await h.close()
    stored(bus, "r1", "alice", 0)
    assert h.pending == 0
    with pytest.raises(RuntimeError, match="history is closed"):
        _ = h.reader
