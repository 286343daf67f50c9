"""Several `python -m server` processes on one redis-server: one event stream across them, resume on any, a
worker killed under its SSE client, Redis killed mid-run, the cluster's stats and hot keys."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest

from monitor.stream import Received, StreamFollower
from syncbed import contract as c
from syncbed.events import (
    BatchStored,
    BusDown,
    BusUp,
    ServerStats,
    StreamReset,
)
from tests.conftest import LiveServer, RedisServer, ServerFactory
from tests.server.helpers import TIMEOUT, auth, batch

pytestmark = pytest.mark.redis


def cluster_config(redis_url: str, maxlen: int = 10_000, limits: str = "enabled = false\n") -> str:
    """The limiter's store on Redis, and so (by default) the bus too."""
    return f'[server]\nbus_maxlen = {maxlen}\n\n[limits]\nstore = "{redis_url}"\n{limits}'


async def start(factory: ServerFactory, config: str, n: int) -> list[LiveServer]:
    return [await asyncio.to_thread(factory, config=config) for _ in range(n)]


async def sync(client: httpx.AsyncClient, srv: LiveServer, token: str, n: int, run: str = "cluster-1") -> None:
    headers = {**auth(token), c.HEADER_RUN: run, c.HEADER_BATCH: str(n), c.HEADER_ATTEMPT: "1"}
    r = await client.post(srv.url + c.SYNC_PATH, content=batch(5, f"{run}-{n}"), headers=headers)
    assert r.status_code == 200, r.text


class Follow:
    """The monitor's own StreamFollower on one worker, collecting (event, its id) as it goes."""

    def __init__(self, srv: LiveServer, last_id: int | None = None) -> None:
        self.got: list[tuple[Received, int | None]] = []  # the id from the event itself (httpx-sse repeats the last)
        self.states: list[str] = []
        self.follower = StreamFollower(
            srv.url,
            srv.admin_token,
            lambda e, _i: self.got.append((e, getattr(e, "id", None))),
            lambda s, _d: self.states.append(s),
            last_id=last_id,
        )
        self.task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Follow]:
        self.task = asyncio.create_task(self.follower.run())
        try:
            await self.until(lambda: "connected" in self.states, "the stream to connect")
            yield self
        finally:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        for _ in range(int(timeout / 0.02)):
            if check():
                return
            if self.task is not None and self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; got {[type(e).__name__ for e, _ in self.got][-20:]}")

    def numbered(self) -> list[int]:
        return [i for _, i in self.got if i is not None]

    def stored(self) -> set[int]:
        return {e.batch for e, _ in self.got if isinstance(e, BatchStored) and e.batch is not None}

    def of(self, kind: type) -> list[Any]:
        return [e for e, _ in self.got if isinstance(e, kind)]


async def test_one_worker_streams_all_workers_events_with_ids_rising_by_one_and_another_resumes_them(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    a, b, _ = cluster = await start(server_factory, cluster_config(redis_server.url), 3)
    tokens = [s.token("alice") for s in cluster]
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Follow(a).running() as on_a:
        for i in range(30):  # batch i goes to worker i % 3: the batch number says which worker published it
            await sync(client, cluster[i % 3], tokens[i % 3], i)
        await on_a.until(lambda: on_a.stored() == set(range(30)), "every batch.stored on a")
    ids = on_a.numbered()
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # rising by one, none missing, none twice
    middle, last = ids[len(ids) // 2], ids[-1]
    after = [msgspec.to_builtins(e) for e, i in on_a.got if i is not None and i > middle]
    # A client that read up to `middle` on a resumes on b: exactly what came after, in the same order.
    async with Follow(b, last_id=middle).running() as on_b:
        await on_b.until(lambda: bool(on_b.numbered()) and on_b.numbered()[-1] >= last, "b to reach a's last id")
    resumed = [msgspec.to_builtins(e) for e, i in on_b.got if i is not None and i <= last]
    assert resumed == after
    assert not on_b.of(StreamReset)


async def test_a_resume_beyond_what_the_stream_keeps_starts_with_stream_reset(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    a, b = await start(server_factory, cluster_config(redis_server.url, maxlen=100), 2)
    token = a.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Follow(b).running() as on_b:
        for i in range(180):  # 360 events at least: MAXLEN ~100 keeps a node or two of them
            await sync(client, a, token, i)
        await on_b.until(lambda: 179 in on_b.stored(), "the last batch on b")
        first = on_b.numbered()[0]
    async with Follow(b, last_id=first).running() as again:
        await again.until(lambda: bool(again.of(StreamReset)) and len(again.numbered()) >= 100, "the reset")
    reset = again.got[0][0]
    assert isinstance(reset, StreamReset) and again.got[0][1] is None
    assert reset.last_event_id == first and reset.oldest_id > first + 1
    numbered = again.numbered()
    assert numbered[0] == reset.oldest_id and numbered == list(range(numbered[0], numbered[0] + len(numbered)))
    assert len(again.of(StreamReset)) == 1


async def test_the_worker_under_an_sse_client_is_killed_and_the_client_resumes_on_another_missing_nothing(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    a, b, c3 = await start(server_factory, cluster_config(redis_server.url), 3)
    tokens = {s.url: s.token("alice") for s in (b, c3)}
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:

        async def syncs() -> None:
            for i in range(40):
                srv = (b, c3)[i % 2]
                await sync(client, srv, tokens[srv.url], i)
                await asyncio.sleep(0.02)

        on_a = Follow(a)
        async with on_a.running():
            load = asyncio.create_task(syncs())
            await on_a.until(lambda: len(on_a.stored()) >= 12, "a dozen batches on a")
            a.kill()  # SIGKILL: no goodbye on the stream
            await asyncio.sleep(0.2)
        resume_from = on_a.follower.last_id
        assert resume_from is not None
        async with Follow(b, last_id=resume_from).running() as on_b:
            await load
            await on_b.until(lambda: on_a.stored() | on_b.stored() == set(range(40)), "every batch on a or b")
    ids = on_a.numbered() + on_b.numbered()
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # nothing missed, nothing twice across the switch
    assert not on_b.of(StreamReset)


async def test_redis_killed_mid_run_syncs_go_on_bus_down_then_bus_up_and_the_stream_resumes(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    a, b = await start(server_factory, cluster_config(redis_server.url), 2)
    ta, tb = a.token("alice"), b.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Follow(a).running() as on_a:
        for i in range(4):
            await sync(client, (a, b)[i % 2], (ta, tb)[i % 2], i)
        await on_a.until(lambda: on_a.stored() == set(range(4)), "the batches before")
        before = on_a.numbered()[-1]
        redis_server.kill()
        for i in range(4, 10):  # Redis is gone: every sync is still stored and answered
            await sync(client, (a, b)[i % 2], (ta, tb)[i % 2], i)
        await on_a.until(lambda: bool(on_a.of(BusDown)), "bus.down on a")
        await asyncio.to_thread(redis_server.start)  # the same port, empty
        await on_a.until(lambda: bool(on_a.of(BusUp)), "bus.up on a")
        for i in range(10, 14):
            await sync(client, b, tb, i)
        await on_a.until(lambda: on_a.stored() == set(range(14)), "every batch on a, b's outage ones late")
    kinds = [type(e).__name__ for e, _ in on_a.got]
    assert kinds.count("BusDown") == 1 and kinds.count("BusUp") == 1
    assert kinds.index("BusDown") < kinds.index("BusUp")
    local = [e.batch for e, i in on_a.got if isinstance(e, BatchStored) and i is None]
    assert local == [4, 6, 8]  # a's own, sent to its subscribers at once while the stream was away
    late = [e.batch for e, i in on_a.got if isinstance(e, BatchStored) and i is not None and i > before]
    assert sorted(late) == [5, 7, 9, 10, 11, 12, 13]  # b's outage batches, late, then the stream as before
    ids = on_a.numbered()
    assert ids == sorted(set(ids)) and min(i for i in ids if i > before) > before
    up = on_a.of(BusUp)[0]
    assert up.local >= 3 and up.down_s > 0


async def test_the_stats_event_sums_the_workers_and_the_limiter_view_shows_their_hot_keys(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    limits = (
        'enabled = true\n\n[[limits.throttle]]\nname = "sync/user"\nlimit = 100000\nperiod = "1h"\nkey = "user"\n'
        f'paths = ["{c.SYNC_PATH}"]\nmethods = ["POST"]\n\n'
        '[[limits.throttle]]\nname = "req/ip"\nlimit = 1000000\nperiod = "1h"\n\n'
        '[[limits.throttle]]\nname = "sync/ip"\nlimit = 1000000\nperiod = "1h"\n'
    )
    a, b = await start(server_factory, cluster_config(redis_server.url, limits=limits), 2)
    ta, tb = a.token("alice"), b.token("bob")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Follow(a).running() as on_a:

        async def drive(srv: LiveServer, token: str, run: str) -> None:
            deadline = time.monotonic() + 3.5
            i = 0
            while time.monotonic() < deadline:
                await sync(client, srv, token, i, run)
                i += 1
                await asyncio.sleep(0.01)

        began = time.time()
        await asyncio.gather(drive(a, ta, "stats-a"), drive(b, tb, "stats-b"))
        ended = time.time()

        def both_busy() -> list[ServerStats]:
            stats: list[ServerStats] = on_a.of(ServerStats)
            return [
                s for s in stats if s.workers and len(s.workers) == 2 and all(w.records_per_s > 0 for w in s.workers)
            ]

        await on_a.until(lambda: bool(both_busy()), "a stats event with both workers busy")
        view = (await client.get(a.url + c.LIMITER_PATH, headers=a.admin_headers())).json()
    for stats in both_busy():
        assert stats.records_per_s == pytest.approx(sum(w.records_per_s for w in stats.workers or []), abs=0.11)
        assert stats.requests_per_s == pytest.approx(sum(w.requests_per_s for w in stats.workers or []), abs=0.011)
    during = [s for s in on_a.of(ServerStats) if began + 1 <= s.ts <= ended]
    assert len(during) <= ended - began  # one worker publishes them, once a second: not one each
    hot = {h["key"] for r in view["rules"] if r["name"] == "sync/user" for h in r["hot"]}
    assert {"user:alice", "user:bob"} <= hot  # bob synced only on b: a knows him from b's share
    assert len(view["workers"]) == 2 and {"worker", "records_per_s", "in_flight"} <= set(view["workers"][0])


async def test_workers_2_on_a_redis_store_is_one_cluster(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    srv = await asyncio.to_thread(server_factory, config=cluster_config(redis_server.url), args=["--workers", "2"])
    token = srv.token("alice")
    async with Follow(srv).running() as on_srv:
        for i in range(20):  # a connection each: the kernel hands them to either worker
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                await sync(client, srv, token, i)

        def two() -> list[ServerStats]:
            stats: list[ServerStats] = on_srv.of(ServerStats)
            return [s for s in stats if s.workers and len(s.workers) == 2]

        await on_srv.until(lambda: on_srv.stored() == set(range(20)) and bool(two()), "both workers' shares")
    ids = on_srv.numbered()
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert len({w.worker for w in two()[0].workers or []}) == 2
