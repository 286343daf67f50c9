"""EventBus: ids, resume from the ring buffer, bounded subscriber queues, filters, stats."""

from __future__ import annotations

import asyncio
import threading

import msgspec
import pytest

from server.events import EventBus, Filter, Stats, StatsMeter, TooManySubscribers
from syncbed.events import (
    EV_BATCH_RECEIVED,
    EV_BATCH_STORED,
    EV_STATS,
    EV_STREAM_DROPPED,
    EV_STREAM_RESET,
    BatchReceived,
    BatchStored,
    ServerStats,
    StreamDropped,
    StreamReset,
    decode_event,
)


def received(n: int = 0, run: str | None = "r") -> BatchReceived:
    return BatchReceived(run=run, batch=n, attempt=1, user="u", records=1)


def stored(batch: int, run: str = "r1") -> BatchStored:
    return BatchStored(run=run, batch=batch, attempt=1, user="u", records=3, stored=3, duplicates=0, ms=1.5)


def test_publish_numbers_the_event_and_frames_it_once() -> None:
    bus = EventBus()
    bus.publish(stored(0))
    bus.publish(stored(1))
    first, second = bus.buffer
    assert (first.id, second.id) == (1, 2) and first.event.id == 1
    assert first.type == EV_BATCH_STORED and first.run == "r1" and isinstance(first.event.ts, float)
    frame = first.frame.decode()
    assert frame.startswith("id: 1\nevent: batch.stored\ndata: {") and frame.endswith("}\n\n")
    assert first.frame is first.frame  # encoded once, however many subscribers send it
    assert decode_event(frame.split("data: ", 1)[1]) == first.event


def test_an_event_that_cannot_be_encoded_is_refused_and_publish_goes_on() -> None:
    bus = EventBus()
    bus.publish(BatchReceived(run="r", batch=0, attempt=1, user="u", records=object()))  # type: ignore[arg-type]
    bus.publish(received(1))
    assert [(e.id, e.event.batch) for e in bus.buffer] == [(1, 1)]  # the bad one took no id either


def test_resume_gets_exactly_the_missed_events() -> None:
    bus = EventBus(buffer_size=100)
    for i in range(10):
        bus.publish(received(i))
    sub = bus.subscribe(last_event_id=6)
    assert [e.id for e in sub.drain()] == [7, 8, 9, 10]
    bus.publish(received(10))
    assert [e.id for e in sub.drain()] == [11]


def test_resume_older_than_buffer_says_reset_then_sends_everything_held() -> None:
    bus = EventBus(buffer_size=5)
    for i in range(12):
        bus.publish(received(i))
    sub = bus.subscribe(last_event_id=2)
    events = sub.drain()
    assert events[0].event == StreamReset(ts=events[0].event.ts, last_event_id=2, oldest_id=8)
    assert events[0].id is None and "id: " not in events[0].frame.decode()
    assert [e.id for e in events[1:]] == [8, 9, 10, 11, 12]


def test_resume_with_an_id_from_the_future_resets() -> None:
    bus = EventBus()
    bus.publish(received())
    events = bus.subscribe(last_event_id=500).drain()
    assert [e.type for e in events] == [EV_STREAM_RESET, EV_BATCH_RECEIVED]


def test_resume_at_the_newest_id_replays_nothing() -> None:
    bus = EventBus()
    bus.publish(received())
    assert bus.subscribe(last_event_id=1).drain() == []


def test_full_queue_counts_missed_and_marks_the_gap_in_order() -> None:
    bus = EventBus(subscriber_queue=3)
    sub = bus.subscribe()
    for i in range(10):
        bus.publish(received(i))
    got = sub.drain(limit=2)
    assert [e.id for e in got] == [1, 2]
    bus.publish(received(10))  # id 11, queued after the gap marker
    rest = sub.drain()
    assert [e.type for e in rest] == [EV_BATCH_RECEIVED, EV_STREAM_DROPPED, EV_BATCH_RECEIVED]
    gap = rest[1].event
    assert isinstance(gap, StreamDropped) and (gap.missed, gap.first_id, gap.last_id, gap.id) == (7, 4, 10, None)
    assert rest[2].id == 11


def test_missed_events_are_reported_even_when_nothing_new_comes() -> None:
    bus = EventBus(subscriber_queue=2)
    sub = bus.subscribe()
    for _ in range(5):
        bus.publish(received())
    assert [e.id for e in sub.drain()] == [1, 2]
    dropped = sub.drain()
    assert [e.type for e in dropped] == [EV_STREAM_DROPPED] and dropped[0].event == StreamDropped(
        ts=dropped[0].event.ts, missed=3, first_id=3, last_id=5
    )
    assert sub.drain() == []


def test_filters_by_run_and_type() -> None:
    bus = EventBus()
    sub = bus.subscribe(Filter(run="a", types=frozenset({EV_BATCH_STORED})))
    everything = bus.subscribe(Filter(run="a"))
    bus.publish(stored(0, run="a"))
    bus.publish(stored(1, run="b"))
    bus.publish(received(2, run="a"))
    bus.publish(received(3, run=None))
    bus.publish(ServerStats(records_per_s=0, requests_per_s=0, throttled_per_s=0, in_flight=0, limiter={}))
    assert [(e.type, e.run) for e in sub.drain()] == [(EV_BATCH_STORED, "a")]
    assert [e.id for e in everything.drain()] == [1, 3]  # events of no run (stats among them) are left out


def test_subscriber_cap_and_close_frees_a_slot() -> None:
    bus = EventBus(max_subscribers=2)
    one = bus.subscribe()
    bus.subscribe()
    with pytest.raises(TooManySubscribers):
        bus.subscribe()
    one.close()
    bus.subscribe()
    assert bus.subscriber_count == 2


async def test_get_many_waits_for_publish_and_times_out() -> None:
    bus = EventBus()
    await bus.start()
    try:
        sub = bus.subscribe()
        assert await sub.get_many(timeout=0.01) == []
        waiter = asyncio.create_task(sub.get_many())
        await asyncio.sleep(0)
        bus.publish(received())
        assert [e.id for e in await asyncio.wait_for(waiter, 5)] == [1]
    finally:
        await bus.close()


async def test_publish_from_another_thread_lands_on_the_loop() -> None:
    bus = EventBus(stats_interval=0)
    await bus.start()
    sub = bus.subscribe()
    thread = threading.Thread(target=bus.publish, args=(received(7),))
    thread.start()
    thread.join()
    events = await asyncio.wait_for(sub.get_many(), 5)
    assert [(e.id, e.event.batch) for e in events] == [(1, 7)]
    await bus.close()


def test_stats_meter_turns_counters_into_rates() -> None:
    stats = Stats()
    meter = StatsMeter(stats, now=100.0)
    stats.request_started()
    stats.count_request(records=1000)
    stats.count_request(records=500)
    stats.count_request(throttled=True)
    stats.request_started()
    stats.request_finished()
    stats.add_source("limiter", lambda: {"sync/user": [{"key": "alice", "count": 7}]})
    stats.add_source("faults", lambda: {"latency_ms": 3, "jitter_ms": 0, "error_rate": 0.5, "reset_rate": 0})
    tick = meter.tick(now=102.0)
    assert (tick.records_per_s, tick.requests_per_s, tick.throttled_per_s, tick.in_flight) == (750.0, 1.5, 0.5, 1)
    assert msgspec.to_builtins(tick.limiter) == {"sync/user": [{"key": "alice", "count": 7}]}
    assert tick.faults is not None and (tick.faults.latency_ms, tick.faults.error_rate) == (3, 0.5)
    assert tick.rules is None  # a field no source gives stays off the wire
    assert meter.tick(now=103.0).records_per_s == 0.0


def test_a_source_of_the_wrong_shape_fails_the_tick_not_the_ticker() -> None:
    stats = Stats()
    stats.add_source("faults", lambda: {"latency_ms": "slow"})
    with pytest.raises(msgspec.ValidationError, match=r"\$\.faults\.latency_ms"):
        StatsMeter(stats, now=0.0).tick(now=1.0)


def test_stats_can_read_counters_kept_elsewhere() -> None:
    stats = Stats()
    totals = [0, 0, 0, 0]
    stats.read_from(lambda: (totals[0], totals[1], totals[2], totals[3]))
    meter = StatsMeter(stats, now=0.0)
    totals[:] = [2000, 4, 1, 3]
    tick = meter.tick(now=2.0)
    assert (tick.records_per_s, tick.requests_per_s, tick.throttled_per_s, tick.in_flight) == (
        1000.0,
        2.0,
        0.5,
        3,
    )


def test_stats_without_sources_or_with_a_broken_one_still_has_limiter() -> None:
    stats = Stats()
    assert stats.extras() == {"limiter": {}}

    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    stats.add_source("limiter", broken)
    assert stats.extras() == {"limiter": {}}


async def test_stats_ticker_publishes() -> None:
    bus = EventBus(stats_interval=0.02)
    sub = bus.subscribe(Filter(types=frozenset({EV_STATS})))
    await bus.start()
    try:
        events = await asyncio.wait_for(sub.get_many(), 5)
        assert events[0].type == EV_STATS and isinstance(events[0].event, ServerStats)
    finally:
        await bus.close()
