"""A stored batch whose worker died before publishing its event: another worker publishes it, once."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from server.storage import RecordStore, Trace
from server.stream_redis import STREAM_KEY, entry_of
from server.unpublished import Unpublished, stored_event
from syncbed.events import BatchStored
from tests.conftest import RedisServer
from tests.server.test_bus_redis import buses, until
from tests.server.test_storage_pg import backend, store, visits

pytestmark = pytest.mark.redis
__all__ = ["backend", "store"]  # fixtures, parametrized over SQLite and PostgreSQL


async def stream(url: str) -> list[BatchStored]:
    raw = aioredis.Redis.from_url(url)
    try:
        entries = [entry_of(i, f) for i, f in await raw.xrange(STREAM_KEY)]
    finally:
        await raw.aclose()
    return [e.published.event for e in entries if e.published and isinstance(e.published.event, BatchStored)]


async def test_a_batch_its_worker_never_published_is_published_by_another_once(
    store: RecordStore, redis_server: RedisServer
) -> None:
    async with buses(redis_server.url, 2) as (dead, alive):
        on_dead = Unpublished(store, dead, age_s=0)
        on_alive = Unpublished(store, alive, age_s=0)
        assert store.note_unpublished
        # Worker "dead" commits two batches; the first's event it pushes, the second's it never does.
        first = await store.store_batch("alice", visits(3), Trace("run-1", 0, 1), 1.5)
        lost = await store.store_batch("alice", visits(4, 2), Trace("run-1", 1, 2), 2.5)
        assert first.once and lost.once and first.once != lost.once
        dead.publish(BatchStored(run="run-1", batch=0, attempt=1, user="alice", records=3, stored=3,
                                 duplicates=0, ms=9.0), first.once)  # fmt: skip
        await until(lambda: dead.last_id >= 1, "the first event on the stream")
        # The alive worker sweeps before the dead one's note of the first is deleted: that one is dropped
        # by its name, the lost one is published, from its batches row.
        assert await on_alive.sweep() == 2
        await until(lambda: alive.last_id >= 2, "the swept events on the stream")
        events = await stream(redis_server.url)
        assert [(e.batch, e.attempt, e.records, e.stored, e.duplicates) for e in events] == [
            (0, 1, 3, 3, 0),
            (1, 2, 4, 3, 1),  # v-2 was in the first
        ]
        assert events[0].ms == 9.0 and events[1].ms == 2.5 and events[1].user == "alice"
        # Both notes go once the stream has the names; nothing is left to sweep.
        await until(lambda: len(on_alive._done) == 2, "the pushes confirmed")
        await on_alive.forget()
        await on_dead.forget()
        assert await store.unpublished(1e12, 10) == []
        assert await on_alive.sweep() == 0
        assert len(await stream(redis_server.url)) == 2


async def test_a_fresh_note_is_left_to_its_own_worker(store: RecordStore, redis_server: RedisServer) -> None:
    async with buses(redis_server.url, 1) as (bus,):
        sweeper = Unpublished(store, bus)  # notes younger than 5 s belong to a worker that may still push
        await store.store_batch("alice", visits(2), Trace(None, None, None), 1.0)
        assert await sweeper.sweep() == 0
        (row,) = await store.unpublished(1e12, 10)
        event = stored_event(row)
        assert (event.run, event.batch, event.records, event.stored, event.user) == (None, None, 2, 2, "alice")
