"""Run history in real PostgreSQL: what it keeps, who owns a run, its totals, and two servers on one database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from server.events import EventBus
from server.history import History
from server.history_pg import PgHistoryDb
from server.pg import Pool
from syncbed.events import BatchStored, RunFinished, decode_event
from syncbed.fold import fold
from syncbed.runs import RunTotals
from tests.server.test_runs import run_events

pytestmark = pytest.mark.postgres


def on(url: str) -> History:
    """A history in the database at `url`, as one server keeps it (a pool of its own)."""
    return History(db=PgHistoryDb(Pool(url, min_size=1, max_size=3)), interval=0.01)


def stored(run: str, user: str, batch: int, ts: float | None = None) -> BatchStored:
    event = BatchStored(run=run, batch=batch, attempt=1, user=user, records=10, stored=9, duplicates=1, ms=1.0)
    if ts is not None:
        event.ts = ts
    return event


@pytest.fixture
def bus() -> EventBus:
    return EventBus(stats_interval=0)


@pytest.fixture
async def history(pg_url: str, bus: EventBus) -> AsyncIterator[History]:
    h = on(pg_url)
    await h.open(bus)
    yield h
    await h.close()


async def test_the_sql_totals_of_the_list_are_the_fold_of_the_stored_events(history: History, bus: EventBus) -> None:
    finish = RunFinished(run="b", user="u", status="partial", ok_batches=2, failed_batches=1, seconds=1.5)
    for event in [*run_events("a"), *run_events("b"), finish]:
        bus.publish(event)
    await history.flush()
    listed = {r.run: r for r in await history.list_runs()}
    for run in ("a", "b"):
        kept = [decode_event(line) async for line in history.iter_events(run)]
        assert listed[run].totals == fold(run, kept).totals == (await history.detail(run)).totals
    assert listed["a"].totals == RunTotals(
        batches_seen=3, batches_stored=2, attempts=9, records_stored=29, records_acked=40, duplicates=11,
        throttled=1, rejected=2, events=12,
    )  # fmt: skip
    assert (listed["b"].status, listed["b"].seconds, listed["b"].totals.events) == ("partial", 1.5, 13)
    assert listed["a"].announced is True and listed["a"].total_batches == 3


async def test_a_runs_span_and_owner_are_kept_as_in_sqlite(history: History, bus: EventBus) -> None:
    for ts in (20.0, 10.0, 30.0):
        bus.publish(stored("r1", "alice", 0, ts))
    await history.flush()
    bus.publish(stored("r1", "alice", 1, 25.0))  # a later chunk with an older event moves neither end
    bus.publish(stored("r1", "bob", 2))  # another user's event: never stored under alice's run
    await history.flush()
    row = await history.run_row("r1")
    assert row is not None
    assert (row["user"], row["status"], row["announced"], row["started"], row["last_ts"]) == (
        "alice", "running", 0, 10.0, 30.0,
    )  # fmt: skip
    assert await history.claim("r1", "bob") == "alice"
    assert [r.run for r in await history.list_runs("alice")] == ["r1"]
    assert await history.list_runs("bob") == []


async def test_events_are_read_back_a_page_at_a_time(history: History, bus: EventBus) -> None:
    for i in range(2100):
        bus.publish(stored("r2" if i % 500 == 7 else "r1", "alice", i))
    await history.flush()
    page = await history.events("r1", limit=3)
    assert [decode_event(d).batch for _, d in page] == [0, 1, 2]
    every = [decode_event(d).batch async for d in history.iter_events("r1")]
    assert every == [i for i in range(2100) if i % 500 != 7]


async def test_two_servers_share_runs_owners_and_the_last_id(pg_url: str) -> None:
    bus_a, bus_b = EventBus(stats_interval=0), EventBus(stats_interval=0)
    a, b = on(pg_url), on(pg_url)
    await a.open(bus_a)
    await b.open(bus_b)
    try:
        assert await a.claim("shared", "alice") == "alice"
        assert await b.claim("shared", "bob") == "alice"  # b has no cache: the database says who
        bus_a.publish(stored("shared", "alice", 0))
        bus_b.publish(stored("shared", "alice", 1))
        bus_b.publish(stored("shared", "bob", 2))  # not stored: bob does not own it
        await a.flush()
        await b.flush()
        for h in (a, b):
            detail = await h.detail("shared")
            assert [x.batch for x in detail.batches] == [0, 1]
            assert detail.user == "alice"
    finally:
        await a.close()
        await b.close()
    with psycopg.connect(pg_url) as conn:
        (last,) = conn.execute("SELECT value FROM history_meta WHERE key = 'last_id'").fetchone() or (None,)
    assert last == "2"  # the larger of the two buses' last ids (a's 1, b's 2): it never goes back


async def test_a_failed_write_keeps_the_events_for_the_next_try(pg_url: str, bus: EventBus) -> None:
    h = on(pg_url)
    await h.open(bus)
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE events RENAME TO events_away")
            bus.publish(stored("r1", "alice", 0))
            await h.flush()
            assert h.pending == 1
            conn.execute("ALTER TABLE events_away RENAME TO events")
        await h.flush()
        assert h.pending == 0
        assert len(await h.events("r1")) == 1
    finally:
        await h.close()
