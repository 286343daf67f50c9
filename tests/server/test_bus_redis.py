"""RedisBus against a real redis-server, several buses in one process as several workers: one id sequence,
resume from any of them, MAXLEN, the outage (local events, bus.down, bus.up, nothing twice), a retried push."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from server.bus_redis import RedisBus
from server.events import Filter, Published, Subscriber
from server.stream_redis import COUNTER_KEY, STREAM_KEY
from syncbed.events import (
    EV_BUS_DOWN,
    EV_BUS_UP,
    EV_STREAM_DROPPED,
    EV_STREAM_RESET,
    BatchReceived,
    BusUp,
    StreamReset,
)
from tests.conftest import RedisServer

pytestmark = pytest.mark.redis
WORKERS = itertools.count()  # a worker id is never reused: the stream dedups each worker's pushes by it


def received(n: int, run: str = "r") -> BatchReceived:
    return BatchReceived(run=run, batch=n, attempt=1, user="u", records=1)


@contextlib.asynccontextmanager
async def buses(url: str, n: int, **options: object) -> AsyncIterator[list[RedisBus]]:
    """`n` started buses on one Redis, as `n` workers would have (stats off: only what a test publishes)."""
    made = [RedisBus(url, worker=f"w{next(WORKERS)}", stats_interval=0, **options) for _ in range(n)]  # type: ignore[arg-type]
    try:
        for bus in made:
            await bus.start()
        yield made
    finally:
        for bus in made:
            await bus.close()


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def ids(events: list[Published]) -> list[int | None]:
    return [e.id for e in events]


class Collect:
    """Everything a subscriber is handed, drained as it comes."""

    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub
        self.events: list[Published] = []

    def pull(self) -> list[Published]:
        self.events += self.sub.drain()
        return self.events

    def of(self, type: str) -> list[Published]:
        return [e for e in self.pull() if e.type == type]


async def test_every_worker_sees_every_worker_s_events_in_one_order_with_ids_rising_by_one(
    redis_server: RedisServer,
) -> None:
    async with buses(redis_server.url, 3) as (a, b, c):
        subs = [Collect(bus.subscribe()) for bus in (a, b, c)]
        for i in range(60):
            (a, b, c)[i % 3].publish(received(i))
        await until(lambda: all(len(s.pull()) == 60 for s in subs), "60 events on every worker")
    orders = [[(e.id, e.event.batch) for e in s.events] for s in subs]  # type: ignore[union-attr]
    assert orders[0] == orders[1] == orders[2]
    assert [i for i, _ in orders[0]] == list(range(1, 61))
    assert sorted(batch for _, batch in orders[0]) == list(range(60))
    assert b'"id":1,' in subs[0].events[0].frame and subs[0].events[0].frame.startswith(b"id: 1\n")


async def test_a_resume_on_another_worker_is_exactly_what_came_after(redis_server: RedisServer) -> None:
    async with buses(redis_server.url, 2, maxlen=1000) as (a, b):
        watch = Collect(a.subscribe())
        for i in range(50):
            a.publish(received(i))
        await until(lambda: len(watch.pull()) == 50, "a's own events")
        # A worker that started later holds none of them: the resume comes from the stream.
        async with buses(redis_server.url, 1, maxlen=1000) as (late,):
            late_sub = Collect(await late.open_subscription(last_event_id=20))
            for i in range(50, 55):
                a.publish(received(i))
            await until(lambda: len(late_sub.pull()) == 35, "the resume and the live events after it")
            assert ids(late_sub.events) == list(range(21, 56))
            # An id given out but not read here yet is no reset: the rest comes live.
            filtered = Collect(await b.open_subscription(Filter(run="r"), last_event_id=55))
            a.publish(received(55))
            await until(lambda: len(filtered.pull()) == 1, "the next event")
            assert ids(filtered.events) == [56]


async def test_beyond_maxlen_a_resume_starts_with_stream_reset(redis_server: RedisServer) -> None:
    async with buses(redis_server.url, 2, maxlen=100) as (a, b):
        for i in range(600):
            a.publish(received(i))
        await until(lambda: b.last_id == 600, "b to read all 600")
        raw = aioredis.Redis.from_url(redis_server.url)
        held = await raw.xlen(STREAM_KEY)
        await raw.aclose()
        assert 100 <= held < 600  # MAXLEN ~: whole nodes go, so a little more than 100 stays
        sub = Collect(await b.open_subscription(last_event_id=3))
        events = sub.pull()
        reset = events[0].event
        assert isinstance(reset, StreamReset) and reset.last_event_id == 3 and reset.id is None
        assert reset.oldest_id == events[1].id and reset.oldest_id > 4
        assert ids(events[1:]) == list(range(reset.oldest_id, 601))
        # From another life (ids the cluster never gave out): a reset too, then everything held.
        other = Collect(await a.open_subscription(last_event_id=10**9))
        assert other.pull()[0].type == EV_STREAM_RESET and other.events[-1].id == 600


async def test_redis_away_local_events_then_bus_up_and_the_others_get_them_late(redis_server: RedisServer) -> None:
    async with buses(redis_server.url, 2) as (a, b):
        on_a, on_b = Collect(a.subscribe()), Collect(b.subscribe())
        a.publish(received(0))
        await until(lambda: len(on_b.pull()) == 1, "the first event")
        redis_server.kill()
        a.publish(received(1))  # the push fails: a goes local
        await until(lambda: bool(on_a.of(EV_BUS_DOWN)), "bus.down on a")
        a.publish(received(2))
        assert [(e.type, e.id) for e in on_a.pull()[1:]][-2:] == [("batch.received", None), ("batch.received", None)]
        await asyncio.to_thread(redis_server.start)  # empty: the counter comes back from the workers' floors
        await until(lambda: bool(on_a.of(EV_BUS_UP)) and bool(on_b.of(EV_BUS_UP)), "bus.up on both")
        b.publish(received(3))
        await until(lambda: len([e for e in on_b.pull() if e.id]) == 4, "b to get a's two late events and its own")
        await until(lambda: any(e.id and e.event.batch == 3 for e in on_a.pull()), "b's event on a")  # type: ignore[union-attr]
    late_on_b = [(e.id, e.event.batch) for e in on_b.events if e.id is not None]  # type: ignore[union-attr]
    assert late_on_b[0] == (1, 0) and [n for _, n in late_on_b[1:]] == [1, 2, 3]
    assert [i for i, _ in late_on_b] == [1, 2, 3, 4]  # the counter went on from 1, the last id seen
    # a had its own two at once, without ids; they are not sent to it again.
    batches_on_a = [e.event.batch for e in on_a.events if e.type == "batch.received"]  # type: ignore[union-attr]
    assert batches_on_a == [0, 1, 2, 3]
    up = on_a.of(EV_BUS_UP)[0].event
    assert isinstance(up, BusUp) and up.local == 2 and up.worker == a.worker and up.id is None
    assert [e.id for e in a.buffer] == [1, 2, 3, 4]  # but a's buffer has them with ids, for a resume


async def test_a_push_retried_after_a_lost_answer_adds_nothing_twice(redis_server: RedisServer) -> None:
    async with buses(redis_server.url, 1) as (a,):
        data = Published(received(0)).json
        first = await a.stream.push(0, [(1, None, data)])
        again = await a.stream.push(0, [(1, None, data), (2, None, data)])  # as after a timeout: the first went through
        raw = aioredis.Redis.from_url(redis_server.url)
        try:
            entries = await raw.xrange(STREAM_KEY)
            counter = await raw.get(COUNTER_KEY)
        finally:
            await raw.aclose()
    assert (first, again, int(counter)) == (1, 2, 2)
    assert [(i, f[b"s"]) for i, f in entries] == [(b"1-1", b"1"), (b"2-1", b"2")]


async def test_a_reader_that_missed_trimmed_entries_tells_its_subscribers(redis_server: RedisServer) -> None:
    async with buses(redis_server.url, 1, maxlen=100) as (a,):
        sub = Collect(a.subscribe())
        a.publish(received(0))
        await until(lambda: len(sub.pull()) == 1, "the first event")
        raw = aioredis.Redis.from_url(redis_server.url)
        try:  # entries numbered past what a read, as if trimmed before it could
            await raw.set(COUNTER_KEY, 40)
        finally:
            await raw.aclose()
        a.publish(received(1))
        await until(lambda: any(e.id == 41 for e in sub.pull()), "the event after the gap")
    first, dropped, event = sub.events
    assert (first.id, event.id) == (1, 41)
    assert dropped.type == EV_STREAM_DROPPED and dropped.id is None
    assert (dropped.event.missed, dropped.event.first_id, dropped.event.last_id) == (39, 2, 40)  # type: ignore[union-attr]
