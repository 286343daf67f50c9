"""EventBus: ids, resume from the ring buffer, bounded subscriber queues, filters, stats."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from server.events import EventBus, Filter, Stats, StatsMeter, TooManySubscribers
from syncbed.contract import EV_BATCH_STORED, EV_STATS, EV_STREAM_DROPPED, EV_STREAM_RESET, EVENT_FIELDS


def test_publish_adds_id_ts_type_and_keeps_fields() -> None:
    bus = EventBus()
    bus.publish(EV_BATCH_STORED, run="r1", batch=0, attempt=1, user="u", records=3, stored=3, duplicates=0, ms=1.5)
    bus.publish(EV_BATCH_STORED, run="r1", batch=1, attempt=1, user="u", records=3, stored=3, duplicates=0, ms=1.5)
    first, second = bus.buffer
    assert (first.id, second.id) == (1, 2)
    assert first.data["type"] == EV_BATCH_STORED and isinstance(first.data["ts"], float)
    assert set(EVENT_FIELDS[EV_BATCH_STORED]) <= set(first.data)
    assert first.run == "r1"
    frame = first.frame.decode()
    assert frame.startswith("id: 1\nevent: batch.stored\ndata: {") and frame.endswith("}\n\n")
    assert json.loads(frame.split("data: ", 1)[1])["batch"] == 0


def test_publish_never_raises_on_odd_values() -> None:
    bus = EventBus()
    bus.publish("x", thing=object(), id=99, ts="no", type_="t")
    event = bus.buffer[0]
    assert event.data["id"] == 1 and isinstance(event.data["ts"], float)
    assert event.frame  # unknown objects are encoded as strings


def test_resume_gets_exactly_the_missed_events() -> None:
    bus = EventBus(buffer_size=100)
    for i in range(10):
        bus.publish("t", n=i)
    sub = bus.subscribe(last_event_id=6)
    assert [e.id for e in sub.drain()] == [7, 8, 9, 10]
    bus.publish("t", n=10)
    assert [e.id for e in sub.drain()] == [11]


def test_resume_older_than_buffer_says_reset_then_sends_everything_held() -> None:
    bus = EventBus(buffer_size=5)
    for i in range(12):
        bus.publish("t", n=i)
    sub = bus.subscribe(last_event_id=2)
    events = sub.drain()
    assert events[0].type == EV_STREAM_RESET and events[0].id is None
    assert events[0].data["last_event_id"] == 2 and events[0].data["oldest_id"] == 8
    assert [e.id for e in events[1:]] == [8, 9, 10, 11, 12]


def test_resume_with_an_id_from_the_future_resets() -> None:
    bus = EventBus()
    bus.publish("t")
    events = bus.subscribe(last_event_id=500).drain()
    assert [e.type for e in events] == [EV_STREAM_RESET, "t"]


def test_resume_at_the_newest_id_replays_nothing() -> None:
    bus = EventBus()
    bus.publish("t")
    assert bus.subscribe(last_event_id=1).drain() == []


def test_full_queue_counts_missed_and_marks_the_gap_in_order() -> None:
    bus = EventBus(subscriber_queue=3)
    sub = bus.subscribe()
    for i in range(10):
        bus.publish("t", n=i)
    got = sub.drain(limit=2)
    assert [e.id for e in got] == [1, 2]
    bus.publish("t", n=10)  # id 11, queued after the gap marker
    rest = sub.drain()
    assert [e.type for e in rest] == ["t", EV_STREAM_DROPPED, "t"]
    assert rest[1].data["missed"] == 7 and rest[1].data["first_id"] == 4 and rest[1].data["last_id"] == 10
    assert rest[2].id == 11


def test_missed_events_are_reported_even_when_nothing_new_comes() -> None:
    bus = EventBus(subscriber_queue=2)
    sub = bus.subscribe()
    for _ in range(5):
        bus.publish("t")
    assert [e.id for e in sub.drain()] == [1, 2]
    dropped = sub.drain()
    assert [e.type for e in dropped] == [EV_STREAM_DROPPED] and dropped[0].data["missed"] == 3
    assert sub.drain() == []


def test_filters_by_run_and_type() -> None:
    bus = EventBus()
    sub = bus.subscribe(Filter(run="a", types=frozenset({"batch.stored"})))
    bus.publish("batch.stored", run="a")
    bus.publish("batch.stored", run="b")
    bus.publish("batch.received", run="a")
    bus.publish(EV_STATS)
    assert [(e.type, e.run) for e in sub.drain()] == [("batch.stored", "a")]


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
        bus.publish("t")
        assert [e.id for e in await asyncio.wait_for(waiter, 5)] == [1]
    finally:
        await bus.close()


async def test_publish_from_another_thread_lands_on_the_loop() -> None:
    bus = EventBus(stats_interval=0)
    await bus.start()
    sub = bus.subscribe()
    thread = threading.Thread(target=bus.publish, args=("t",), kwargs={"n": 1})
    thread.start()
    thread.join()
    events = await asyncio.wait_for(sub.get_many(), 5)
    assert [e.data["n"] for e in events] == [1]
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
    stats.add_source("faults", lambda: {"latency_ms": 3})
    tick = meter.tick(now=102.0)
    assert set(EVENT_FIELDS[EV_STATS]) <= set(tick)
    assert tick["records_per_s"] == 750.0 and tick["requests_per_s"] == 1.5 and tick["throttled_per_s"] == 0.5
    assert tick["in_flight"] == 1
    assert tick["limiter"] == {"sync/user": [{"key": "alice", "count": 7}]}
    assert tick["faults"] == {"latency_ms": 3}
    assert meter.tick(now=103.0)["records_per_s"] == 0.0


def test_stats_can_read_counters_kept_elsewhere() -> None:
    stats = Stats()
    totals = [0, 0, 0, 0]
    stats.read_from(lambda: (totals[0], totals[1], totals[2], totals[3]))
    meter = StatsMeter(stats, now=0.0)
    totals[:] = [2000, 4, 1, 3]
    tick = meter.tick(now=2.0)
    assert (tick["records_per_s"], tick["requests_per_s"], tick["throttled_per_s"], tick["in_flight"]) == (
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
        assert events[0].type == EV_STATS
    finally:
        await bus.close()
