"""Stores: memory and a real redis-server give the same decisions; Redis is exact under concurrency and
fails open (once-logged, reported) while it is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from server.config import ThrottleRule
from server.limiter import make_algorithm
from server.limiter_redis import KEY_PREFIX, PROBE_INTERVAL, RedisStore, ScriptBatcher, redact
from server.limiter_store import Counter, MemoryStore, counter_id
from syncbed.contract import EVENTS_PATH, LIMITER_PATH
from syncbed.events import EV_LIMITER_STORE
from tests.conftest import RedisServer, ServerFactory, wait_until
from tests.server.helpers import Reader, data
from tests.server.test_throttle import serve

# Tests that check counts, not the breaker: a loaded machine can take longer than the store's 100 ms for a
# call, which would fail open and count nothing.
COUNTING_TIMEOUT = 5.0

T0 = 1_700_000_400.0
ALL = ("fixed_window", "sliding_window", "gcra")
pytestmark = pytest.mark.redis


def counter(name: str, limit: int, period: float, kind: str = "throttle", rule: str = "r") -> Counter:
    return Counter(counter_id(kind, rule, period), make_algorithm(name, limit, period))


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("name", ALL)
async def test_redis_decides_exactly_like_memory(redis_server: RedisServer, name: str) -> None:
    """The Lua scripts and the in-process algorithms agree field for field on a random script."""
    store = RedisStore(redis_server.url, timeout=COUNTING_TIMEOUT)
    try:
        for seed in range(3):
            rng = random.Random(seed)
            limit, period = rng.randint(1, 6), rng.choice([0.5, 1.0, 7.0])
            mem, red = counter(name, limit, period), counter(name, limit, period, rule=f"{name}-{seed}")
            now = T0 + rng.random()
            for _ in range(150):
                now += rng.expovariate(2 * limit / period)
                key = rng.choice(["a", "b", "c"])
                want = await MemoryStore().hit(mem, key, now)
                got = await store.hit(red, key, now)
                assert got == want, (seed, now, key)
    finally:
        await store.aclose()


@pytest.mark.parametrize("name", ALL)
async def test_redis_admits_exactly_the_limit_of_200_concurrent(redis_server: RedisServer, name: str) -> None:
    """Four independent clients (four pools, like four worker processes) race on one key."""
    stores = [RedisStore(redis_server.url, timeout=COUNTING_TIMEOUT) for _ in range(4)]
    try:
        c = counter(name, 23, 60.0)
        now = T0 + 10.0
        got = await asyncio.gather(*(stores[i % 4].hit(c, "k", now) for i in range(200)))
        assert all(d is not None for d in got)
        assert sum(d.allowed for d in got if d is not None) == 23
        remaining = sorted(d.remaining for d in got if d is not None and d.allowed)
        assert remaining == list(range(23))  # every admitted request saw its own, distinct count
    finally:
        for s in stores:
            await s.aclose()


async def test_one_pipeline_per_loop_turn_each_call_gets_its_own_answer_or_error(redis_server: RedisServer) -> None:
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        script = raw.register_script("if ARGV[1] == 'boom' then return redis.error_reply('boom') end return ARGV[1]")
        batcher = ScriptBatcher(raw)
        sent: list[int] = []
        real_send = batcher._send

        async def counting_send(calls: list[Any]) -> list[Any]:
            sent.append(len(calls))
            return await real_send(calls)

        batcher._send = counting_send  # type: ignore[method-assign]
        args = ["a", "boom", "c", "d"]
        got = await asyncio.gather(*(batcher.call(script, [], [a]) for a in args), return_exceptions=True)
        assert got[0] == b"a" and got[2:] == [b"c", b"d"]
        assert isinstance(got[1], ResponseError) and "boom" in str(got[1])
        # The first pipeline met NOSCRIPT (never loaded): the script was loaded and the calls sent again.
        assert sent == [4, 4]
        assert await batcher.call(script, [], ["e"]) == b"e" and sent == [4, 4, 1]
    finally:
        await raw.aclose()


async def test_track_and_throttle_of_one_name_do_not_share_a_counter(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, timeout=COUNTING_TIMEOUT)
    try:
        throttle = counter("fixed_window", 2, 60.0, kind="throttle", rule="same")
        track = counter("fixed_window", 2, 60.0, kind="track", rule="same")
        for _ in range(5):
            await store.hit(track, "k", T0)
        d = await store.hit(throttle, "k", T0)
        assert d is not None and d.allowed and d.count == 1
    finally:
        await store.aclose()


async def test_keys_expire_and_hot_keys_are_reported(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, timeout=COUNTING_TIMEOUT)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        now = time.time()
        for name in ALL:
            c = counter(name, 50, 30.0, rule=name)
            for key, n in (("ip:1", 4), ("ip:2", 7)):
                for _ in range(n):
                    await store.hit(c, key, now)
            top = store.top(c, 5, now)
            assert [(u.key, u.count) for u in top] == [("ip:2", 7), ("ip:1", 4)]
            assert all(0 < u.reset <= 30.0 for u in top)
        keys = [k async for k in raw.scan_iter(match=KEY_PREFIX + "*")]
        assert len(keys) == 6
        ttls = [await raw.pttl(k) for k in keys]
        assert all(0 < t <= 62_000 for t in ttls), ttls  # nothing lives forever
    finally:
        await raw.aclose()
        await store.aclose()


async def test_fails_open_once_logged_and_reported_then_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[tuple[str, str]] = []
    mono = FakeMonotonic()
    store = RedisStore(redis_server.url, lambda store, status: events.append((store, status)), monotonic=mono)
    c = counter("fixed_window", 1, 60.0)
    try:
        d = await store.hit(c, "k", T0)
        assert d is not None and d.allowed
        d = await store.hit(c, "k", T0)
        assert d is not None and not d.allowed

        redis_server.kill()
        caplog.set_level(logging.WARNING, logger="syncbed.limiter")
        for _ in range(20):
            assert await store.hit(c, "k", T0) is None  # fail open: no decision, the request passes
            mono.t += PROBE_INTERVAL / 3
        assert events == [(store.name, "down")]
        down_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down_logs) == 1 and store.up is False

        redis_server.start()  # same port, empty: counting starts over
        mono.t += PROBE_INTERVAL
        d = await store.hit(c, "k", T0)
        assert d is not None and d.allowed
        d = await store.hit(c, "k", T0)
        assert d is not None and not d.allowed  # limits apply again
        assert events == [(store.name, "down"), (store.name, "up")]
        assert store.up is True
    finally:
        await store.aclose()


async def test_while_down_requests_do_not_wait_for_redis(redis_server: RedisServer) -> None:
    mono = FakeMonotonic()
    store = RedisStore(redis_server.url, monotonic=mono)
    c = counter("gcra", 5, 1.0)
    try:
        redis_server.kill()
        assert await store.hit(c, "k", T0) is None
        # Within the quiet interval no connection is even tried: the pool is never asked.
        calls = 0
        real = store._decide

        async def counting(*args: object) -> object:
            nonlocal calls
            calls += 1
            return await real(*args)  # type: ignore[arg-type]

        store._decide = counting  # type: ignore[method-assign,assignment]
        for _ in range(50):
            assert await store.hit(c, "k", T0) is None
        assert calls == 0
        mono.t += PROBE_INTERVAL
        assert await store.hit(c, "k", T0) is None
        assert calls == 1
    finally:
        await store.aclose()


async def test_memory_store_is_the_algorithm_itself() -> None:
    store = MemoryStore()
    c = counter("fixed_window", 2, 1.0)
    got = [await store.hit(c, "k", T0) for _ in range(3)]
    assert [d.allowed for d in got] == [True, True, False]
    assert [(u.key, u.count) for u in store.top(c, 5, T0)] == [("k", 3)]


def test_redact_hides_the_password_only() -> None:
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("redis://user:s3cret@host:6380/2") == "redis://user:***@host:6380/2"
    assert "s3cret" not in redact("rediss://:s3cret@host/0")


def test_counter_ids_separate_kind_name_and_period() -> None:
    ids = {counter_id(k, n, p) for k in ("throttle", "track") for n in ("a", "b") for p in (1.0, 60.0)}
    assert len(ids) == 8


# --- four `python -m server` processes sharing one redis-server --------------------------------------

ALGOS = {"fixed": "fixed_window", "sliding": "sliding_window", "gcra": "gcra"}


def shared_config(redis_url: str) -> str:
    rules = "".join(
        f'[[limits.throttle]]\nname = "exact/{short}"\nlimit = 37\nperiod = "1h"\nkey = "ip"\n'
        f'paths = ["/exact/{short}"]\nalgorithm = "{algo}"\n\n'
        for short, algo in ALGOS.items()
    )
    # req/ip raised so that it does not refuse first; counted paths have no route, so "admitted" is a 404.
    return (
        f'[limits]\nstore = "{redis_url}"\n\n[[limits.throttle]]\nname = "req/ip"\nlimit = 1000000\nperiod = "5m"\n\n'
        + rules
    )


async def burst(urls: list[str], path: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=60) as c:
        got = await asyncio.gather(*(c.get(urls[i % len(urls)] + path) for i in range(n)))
    return [r.status_code for r in got]


@pytest.mark.slow
async def test_four_server_processes_on_redis_admit_exactly_the_limit_and_fail_open(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    config = shared_config(redis_server.url)
    servers = [await asyncio.to_thread(server_factory, config=config) for _ in range(4)]
    urls = [s.url for s in servers]
    # A fixed window must not roll during the bursts: stay clear of the hour's last half minute.
    to_boundary = 3600 - time.time() % 3600
    if to_boundary < 30:
        await asyncio.sleep(to_boundary + 0.1)
    for short in ALGOS:
        codes = await burst(urls, f"/exact/{short}", 200)
        assert (codes.count(404), codes.count(429)) == (37, 163), short

    redis_server.kill()
    codes = await burst(urls, "/exact/fixed", 40)
    assert codes == [404] * 40  # Redis is gone: every request is served, none refused, none failed
    redis_server.start()  # empty: counting starts over

    def limits_apply_again() -> bool:
        return all(httpx.get(u + "/exact/gcra", timeout=10).status_code == 429 for u in urls)

    await asyncio.to_thread(wait_until, limits_apply_again, 30, "limits to apply again")
    for srv in servers:
        log = srv.log()
        assert log.count("is unreachable") == 1, log[-2000:]
        assert "limits apply again" in log


async def test_in_process_server_reports_the_outage_and_the_recovery(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="syncbed.limiter")
    rule = ThrottleRule("x", 2, 3600.0, "ip", ("/x",))
    async with serve(tmp_path, store=redis_server.url, throttles=(rule,)) as srv, srv.client() as c:
        assert [(await c.get("/x")).status_code for _ in range(3)] == [404, 404, 429]
        redis_server.kill()
        assert [(await c.get("/x")).status_code for _ in range(5)] == [404] * 5
        admin = {"Authorization": f"Bearer {srv.state.admin_token}"}
        assert (await c.get(LIMITER_PATH, headers=admin)).json()["store_status"] == "down"
        redis_server.start()
        for _ in range(200):
            if (await c.get("/x")).status_code == 429:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("limits did not apply again after Redis came back")
        events = srv.events(EV_LIMITER_STORE)
    assert [(e["store"], e["status"]) for e in events] == [(redis_server.url, "down"), (redis_server.url, "up")]
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1


# --- a hung Redis (SIGSTOP): decided in milliseconds, the breaker opens, and closes after SIGCONT ------


def hung_config(redis_url: str) -> str:
    return (
        f'[limits]\nstore = "{redis_url}"\n\n[[limits.throttle]]\nname = "req/ip"\nlimit = 1000000\nperiod = "5m"\n\n'
        '[[limits.throttle]]\nname = "x"\nlimit = 2\nperiod = "1h"\nkey = "ip"\npaths = ["/x"]\n'
    )


async def test_a_hung_redis_costs_milliseconds_and_the_breaker_recovers(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    srv = await asyncio.to_thread(server_factory, config=hung_config(redis_server.url))
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    url = f"{srv.url}{EVENTS_PATH}?types={EV_LIMITER_STORE}"
    try:
        async with (
            httpx.AsyncClient(base_url=srv.url, timeout=httpx.Timeout(30.0)) as c,
            Reader(c, url, srv.admin_headers()) as reader,
        ):
            assert [(await c.get("/x")).status_code for _ in range(3)] == [404, 404, 429]
            os.kill(pid, signal.SIGSTOP)  # hung: connections are accepted, nothing is answered
            took: list[float] = []
            for path in ["/x", "/healthz"] * 10:
                began = time.monotonic()
                r = await c.get(path)
                took.append(time.monotonic() - began)
                assert r.status_code in (200, 404), (path, r.status_code)  # failing open, not refusing
                await asyncio.sleep(0.1)  # 2 s in all: the breaker's half-open probes run meanwhile
            assert max(took) < 0.3, [round(t, 3) for t in took]
            view = (await c.get(LIMITER_PATH, headers=srv.admin_headers())).json()
            assert view["store_status"] == "down"
            os.kill(pid, signal.SIGCONT)
            for _ in range(100):  # Redis still has the count of 3: the next probe's answer is a 429
                if (await c.get("/x")).status_code == 429:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("limits did not apply again after SIGCONT")
            with contextlib.suppress(TimeoutError):  # fewer than two is for the assertion below to show
                await reader.wait_for(lambda evs: len(evs) >= 2, timeout=2.0)
            events = [data(e) for e in reader.events if e.data]  # not the empty events after heartbeats
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [(e["store"], e["status"]) for e in events] == [(redis_server.url, "down"), (redis_server.url, "up")]
    log = srv.log()
    assert log.count("is unreachable") == 1 and "limits apply again" in log
