"""The stream follower against real SSE servers on 127.0.0.1: resume, reconnect, refusal."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from monitor.stream import (
    CONNECTED,
    RECONNECTING,
    UNAUTHORIZED,
    Backoff,
    StreamFailed,
    StreamFollower,
    Undecodable,
    decode,
    parse_id,
)
from syncbed.events import BatchReceived, Event, RunFinished
from tests.monitor.servers import EventSource, free_port, serve, url_of


async def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[int | None, Event | Undecodable]] = []
        self.states: list[tuple[str, str]] = []

    def event(self, data: Event | Undecodable, event_id: int | None) -> None:
        self.events.append((event_id, data))

    def state(self, state: str, detail: str) -> None:
        self.states.append((state, detail))


async def test_follower_survives_a_restart_and_loses_nothing() -> None:
    source = EventSource("tok")
    port = free_port()
    sink = Sink()
    follower = StreamFollower(
        f"http://127.0.0.1:{port}", "tok", sink.event, sink.state, backoff=Backoff(base=0.05, cap=0.3)
    )
    for i in range(5):
        source.publish("batch.received", run="r", batch=i + 1, attempt=1, user="u", records=1)
    async with serve(source.app, port):
        task = asyncio.create_task(follower.run())
        await wait_for(lambda: len(sink.events) == 5)
    # The server is down now: the follower keeps trying, and the server keeps what happens meanwhile.
    await wait_for(lambda: sink.states[-1][0] == RECONNECTING and "retry in" in sink.states[-1][1])
    for i in range(5, 10):
        source.publish("batch.stored", run="r", batch=i + 1, attempt=1, user="u", records=1, stored=1,
                       duplicates=0, ms=1)  # fmt: skip
    async with serve(source.app, port):
        await wait_for(lambda: len(sink.events) == 10)
        source.publish("run.finished", run="r", user="u", status="complete", ok_batches=10, failed_batches=0,
                       seconds=1.0)  # fmt: skip
        await wait_for(lambda: len(sink.events) == 11)
        task.cancel()
    assert [event_id for event_id, _ in sink.events] == list(range(1, 12))
    assert isinstance(sink.events[-1][1], RunFinished)
    assert all(isinstance(e, BatchReceived) for _, e in sink.events[:5])
    assert source.resume_headers == [None, "5"]
    assert [s for s, _ in sink.states].count(CONNECTED) == 2 and follower.last_id == 11


async def test_a_wrong_token_at_first_contact_fails_at_once() -> None:
    source = EventSource("right")
    sink = Sink()
    async with serve(source.app) as server:
        follower = StreamFollower(url_of(server), "wrong", sink.event, sink.state)
        with pytest.raises(StreamFailed) as failed:
            await asyncio.wait_for(follower.run(), 10)
    assert failed.value.refused and failed.value.status == 401 and failed.value.detail.startswith("401")
    assert not sink.events


async def test_a_token_refused_after_connecting_is_reported_and_retried() -> None:
    source = EventSource("tok")
    port = free_port()
    sink = Sink()
    follower = StreamFollower(f"http://127.0.0.1:{port}", "tok", sink.event, sink.state)
    async with serve(source.app, port):
        task = asyncio.create_task(follower.run())
        await wait_for(lambda: any(s == CONNECTED for s, _ in sink.states))
    source.token = "rotated"  # the server came back with another admin token
    async with serve(source.app, port):
        await wait_for(lambda: any(s == UNAUTHORIZED for s, _ in sink.states))
        assert not task.done()
        task.cancel()
    detail = next(d for s, d in sink.states if s == UNAUTHORIZED)
    assert detail.startswith("401") and "retry in" in detail


async def test_a_dead_port_at_first_contact_fails_after_the_bound() -> None:
    follower = StreamFollower(
        f"http://127.0.0.1:{free_port()}", "t", lambda d, i: None, lambda s, d: None, first_contact=1.0
    )
    started = asyncio.get_running_loop().time()
    with pytest.raises(StreamFailed) as failed:
        await asyncio.wait_for(follower.run(), 10)
    assert not failed.value.refused and "ConnectError" in failed.value.detail
    assert 0.5 < asyncio.get_running_loop().time() - started < 3


def test_read_timeout_outlasts_the_heartbeat() -> None:
    follower = StreamFollower("http://127.0.0.1:1", None, lambda d, i: None, lambda s, d: None)
    assert follower.timeout.read is not None and follower.timeout.read > 15
    assert follower.url == "http://127.0.0.1:1/api/v1/events"


def test_parsing_and_backoff() -> None:
    received = decode('{"type": "batch.received", "ts": 1, "run": null, "batch": 0, "attempt": 1, "user": "u", '
                      '"records": 2}')  # fmt: skip
    assert received == BatchReceived(ts=1.0, run=None, batch=0, attempt=1, user="u", records=2)
    assert decode("[1]", "x") == Undecodable("x", "Expected `object`, got `array`")
    nope = decode("{nope", "x")
    assert isinstance(nope, Undecodable) and nope.type == "x" and nope.ts is None
    partial = decode('{"type": "stats", "ts": 7, "in_flight": 2}', "stats")
    assert isinstance(partial, Undecodable) and (partial.type, partial.ts) == ("stats", 7.0)
    assert "records_per_s" in partial.reason
    assert parse_id("17") == 17 and parse_id("") is None and parse_id("x") is None
    assert parse_id("\u0661\u0662") is None and parse_id("\u00b2") is None  # digits of other scripts are no ids
    backoff = Backoff(base=0.5, cap=4.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0.25 <= d <= 4.25 for d in delays) and max(delays) > 1.0
    backoff.reset()
    assert backoff.next_delay() <= 0.75


async def test_keep_alive_pings_are_no_events() -> None:
    # sse-starlette pings with a comment; httpx-sse hands the empty block after it over as a "message".
    source = EventSource("tok", ping=0.05)
    port = free_port()
    sink = Sink()
    follower = StreamFollower(f"http://127.0.0.1:{port}", "tok", sink.event, sink.state)
    source.publish("batch.received", run="r", batch=1, attempt=1, user="u", records=1)
    async with serve(source.app, port):
        task = asyncio.create_task(follower.run())
        await wait_for(lambda: len(sink.events) == 1)
        await asyncio.sleep(0.3)  # several pings
        source.publish("batch.received", run="r", batch=2, attempt=1, user="u", records=1)
        await wait_for(lambda: len(sink.events) == 2)
        task.cancel()
    assert [type(e) for _, e in sink.events] == [BatchReceived, BatchReceived]


async def test_a_follower_of_several_workers_moves_to_the_next_when_one_dies_and_misses_nothing() -> None:
    # Two workers serving one stream (one source: one id sequence, as with the Redis bus).
    source = EventSource("tok")
    first, second = free_port(), free_port()
    sink = Sink()
    urls = [f"http://127.0.0.1:{first}", f"http://127.0.0.1:{second}"]
    follower = StreamFollower(urls, "tok", sink.event, sink.state, backoff=Backoff(base=0.05, cap=0.3))
    for i in range(3):
        source.publish("batch.received", run="r", batch=i + 1, attempt=1, user="u", records=1)
    async with serve(source.app, second):
        async with serve(source.app, first):
            task = asyncio.create_task(follower.run())
            await wait_for(lambda: len(sink.events) == 3)
            assert follower.base_url == urls[0]
        # The first worker is gone; what happens meanwhile is on the stream the second serves.
        for i in range(3, 6):
            source.publish("batch.received", run="r", batch=i + 1, attempt=1, user="u", records=1)
        await wait_for(lambda: len(sink.events) == 6)
        # Every resume asked for what came after the last event seen (the stand-in's shutdown may end
        # the other worker's stream once too).
        assert follower.base_url == urls[1] and source.resume_headers[0] is None
        assert set(source.resume_headers[1:]) == {"3"}
        task.cancel()
    assert [event_id for event_id, _ in sink.events] == list(range(1, 7))
    # It went over at once, without a backoff: the note says which worker it tried.
    assert any(state == RECONNECTING and f"trying {urls[1]}" in detail for state, detail in sink.states)


async def test_with_every_worker_down_the_follower_backs_off_instead_of_spinning() -> None:
    sink = Sink()
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    follower = StreamFollower(urls, "tok", sink.event, sink.state, backoff=Backoff(base=0.2, cap=0.2),
                              first_contact=None)  # fmt: skip
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(1.0)
    task.cancel()
    tries = [d for s, d in sink.states if s == RECONNECTING]
    # Each round tries both, then waits about 0.2 s: a handful of tries a second, never hundreds.
    assert 2 <= len(tries) <= 12 and any("retry in" in d for d in tries) and any("trying" in d for d in tries)
