"""The limiter's counters in Redis: shared by workers and hosts, one atomic script a decision, fail-open."""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError, RedisError

from server.limiter import EPS, US, Decision, FixedWindow, KeyUsage, SlidingWindow
from server.limiter_store import Counter, StatusCallback

log = logging.getLogger("syncbed.limiter")

KEY_PREFIX = "syncbed:rl:"
# After a failure the store is not asked again for this long: requests pass at once instead of each
# waiting for a connection error. One request then probes, and the store is back when it answers.
PROBE_INTERVAL = 0.5
# A decision in Redis takes well under a millisecond on a LAN; one that has not come back in 100 ms
# will not come in time to matter, and every request waiting on it waits that long. A hung Redis
# (stopped, swapping, a dead host) then costs one request 100 ms and opens the breaker; before, each
# request waited a 2 s socket timeout and a retry (4 s). The store URL may set others
# (`?socket_timeout=0.25&socket_connect_timeout=0.25&timeout=0.25`, in seconds).
STORE_TIMEOUT = 0.1
_MAX_SEEN = 20_000  # per counter: bounds the hot-keys memory of the Redis store

# Each script is one atomic decision in one round trip; the arithmetic that turns the returned
# counters into remaining/reset/retry_after is the algorithm's own (server/limiter.py).
_FIXED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

_SLIDING = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local limit, period, elapsed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local est = prev * ((period - elapsed) / period) + cur
if est + 1 <= limit + tonumber(ARGV[4]) then
  cur = redis.call('INCR', KEYS[1])
  if cur == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
  return {1, prev, cur}
end
return {0, prev, cur}
"""

_GCRA = """
local now, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local new = tat + interval
if new - now <= burst then
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 1000)
  return {1, string.format('%.0f', new)}
end
return {0, string.format('%.0f', tat)}
"""


# A ban is a member of its rule's sorted set, scored by its end: one set answers "banned?", lists the
# bans and finds the expired ones. The set itself lives as long as its longest ban.
_BANNED = "return redis.call('ZSCORE', KEYS[1], ARGV[1])"
_BAN = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""
BANS_PREFIX = "syncbed:ban:"


@dataclass(slots=True)
class _Call:
    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[str | int | float]
    future: asyncio.Future[Any]


class ScriptBatcher:
    """Sends the script calls made in one event-loop turn as one pipeline (not a transaction).

    Every call is still its own atomic script; only the round trip is shared. Concurrent requests
    then cost Redis one round trip per turn instead of one each: several times the decisions/s.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._queue: list[_Call] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Call(script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_soon)
        return await future

    def _flush_soon(self) -> None:
        self._scheduled = False
        calls, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._flush(calls))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, calls: list[_Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for c in calls:
            pipe.evalsha(c.script.sha, len(c.keys), *c.keys, *c.args)
        return list(await pipe.execute(raise_on_error=False))

    async def _flush(self, calls: list[_Call]) -> None:
        try:
            results = await self._send(calls)
            again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if again:  # a restarted Redis has forgotten the scripts: load them, send those calls again
                for script in {id(calls[i].script): calls[i].script for i in again}.values():
                    script.sha = await self._redis.script_load(script.script)
                for i, r in zip(again, await self._send([calls[i] for i in again]), strict=True):
                    results[i] = r
        except BaseException as exc:
            for c in calls:
                if not c.future.done():
                    c.future.set_exception(exc if isinstance(exc, Exception) else RedisError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for c, r in zip(calls, results, strict=True):
            if not c.future.done():
                if isinstance(r, Exception):
                    c.future.set_exception(r)
                else:
                    c.future.set_result(r)


def redact(url: str) -> str:
    """The store URL without its password, fit for logs and the limiter view."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedisStore:
    """Counters in Redis, shared by every worker and host; a failing Redis lets requests through."""

    def __init__(
        self,
        url: str,
        on_status: StatusCallback | None = None,
        *,
        timeout: float = STORE_TIMEOUT,
        max_connections: int = 64,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = redact(url)
        self.up = True
        self._on_status = on_status
        self._monotonic = monotonic
        self._quiet_until = 0.0
        # Retried once, at once, only when a pooled socket turns out dead (Redis restarted): that fails
        # in microseconds. A timeout is never retried (redis-py's default retry_on_timeout=False, left so):
        # it would only double the wait.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,  # waiting for a free connection
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        )
        self._redis = aioredis.Redis.from_pool(pool)
        self._fixed = self._redis.register_script(_FIXED)
        self._sliding = self._redis.register_script(_SLIDING)
        self._gcra = self._redis.register_script(_GCRA)
        self._banned = self._redis.register_script(_BANNED)
        self._ban = self._redis.register_script(_BAN)
        self._batch = ScriptBatcher(self._redis)
        self._seen: dict[str, dict[str, tuple[int, float]]] = {}
        self._others: dict[str, dict[str, tuple[int, float]]] = {}  # other workers' hot keys (server/cluster_stats.py)
        self._clock = time.time

    async def hit(self, counter: Counter, key: str, now: float) -> Decision | None:
        if not self._may_ask():
            return None
        try:
            decision = await self._decide(counter, key, now)
        except (RedisError, OSError, TimeoutError) as exc:
            self._down(exc)
            return None
        self._answered()
        self._remember(counter.id, key, decision, now)
        return decision

    def _may_ask(self) -> bool:
        if not self.up:
            mono = self._monotonic()
            if mono < self._quiet_until:
                return False
            self._quiet_until = mono + PROBE_INTERVAL  # while down, one probe at a time
        return True

    def _answered(self) -> None:
        if not self.up:
            self.up = True
            log.warning("limiter store %s is back: limits apply again", self.name)
            if self._on_status is not None:
                self._on_status(self.name, "up")

    async def banned(self, ban_id: str, key: str, now: float) -> float | None:
        if not self._may_ask():
            return None  # failing open, as a count does
        try:
            score = await self._batch.call(self._banned, [BANS_PREFIX + ban_id], [key])
        except (RedisError, OSError, TimeoutError) as exc:
            self._down(exc)
            return None
        self._answered()
        until = None if score is None else float(score)
        return until if until is not None and until > now else None

    async def ban(self, ban_id: str, key: str, until: float, bantime: float) -> bool:
        ttl = math.ceil((bantime + 1) * 1000)  # from the ban's length: `until` is on the limiter's clock
        try:
            await self._batch.call(self._ban, [BANS_PREFIX + ban_id], [key, repr(until), ttl])
        except (RedisError, OSError, TimeoutError) as exc:
            self._down(exc)
            return False
        return True

    async def bans(self, ban_id: str, now: float) -> dict[str, float] | None:
        try:
            held: list[tuple[bytes, float]] = await self._redis.zrangebyscore(  # type: ignore[assignment]
                BANS_PREFIX + ban_id, f"({now!r}", "+inf", withscores=True
            )
        except (RedisError, OSError, TimeoutError):
            return None  # the sweep's read: the next request reports the outage
        return {k.decode(): float(u) for k, u in held}

    async def expire_bans(self, ban_id: str, now: float) -> list[str]:
        """The ended bans, each removed by the one worker whose ZREM took it: that one says so (`limiter.unban`)."""
        name = BANS_PREFIX + ban_id
        try:
            ended: list[bytes] = await self._redis.zrangebyscore(name, "-inf", repr(now))  # type: ignore[assignment]
            if not ended:
                return []
            pipe = self._redis.pipeline(transaction=False)
            for k in ended:
                pipe.zrem(name, k)
            removed = await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            return []
        return [k.decode() for k, n in zip(ended, removed, strict=True) if n]

    async def _decide(self, counter: Counter, key: str, now: float) -> Decision:
        alg = counter.algorithm
        base = f"{KEY_PREFIX}{counter.id}:"
        if isinstance(alg, FixedWindow):
            reset = alg.period - now % alg.period
            w = alg.window(now)
            count = await self._batch.call(self._fixed, [f"{base}{w}:{key}"], [math.ceil((reset + 1) * 1000)])
            return alg.decision(int(count), now)
        if isinstance(alg, SlidingWindow):
            w = alg.window(now)
            elapsed = now - w * alg.period
            ttl = math.ceil((2 * alg.period - elapsed + 1) * 1000)
            ok, prev, cur = await self._batch.call(
                self._sliding,
                [f"{base}{w}:{key}", f"{base}{w - 1}:{key}"],
                [alg.limit, repr(alg.period), repr(elapsed), repr(EPS), ttl],
            )
            return alg.decision(bool(ok), int(prev), int(cur), elapsed)
        now_us = int(now * US)
        if alg.limit <= 0:
            return alg.decision(False, now_us, now_us)
        ok, tat = await self._batch.call(self._gcra, [f"{base}{key}"], [now_us, alg.interval_us, alg.burst_us])
        return alg.decision(bool(ok), int(tat), now_us)

    def _down(self, exc: BaseException) -> None:
        if self.up:
            self.up = False
            log.warning(
                "limiter store %s is unreachable (%s): failing open, requests pass unlimited until it is back",
                self.name,
                exc.__class__.__name__,
            )
            if self._on_status is not None:
                self._on_status(self.name, "down")
        self._quiet_until = self._monotonic() + PROBE_INTERVAL

    def _remember(self, cid: str, key: str, d: Decision, now: float) -> None:
        # Hot keys as this process last saw them: the counts are the shared (global) ones.
        seen = self._seen.get(cid)
        if seen is None:
            seen = self._seen[cid] = {}
        if len(seen) >= _MAX_SEEN and key not in seen:
            for k in [k for k, (_, until) in seen.items() if until <= now]:
                del seen[k]
            if len(seen) >= _MAX_SEEN:
                seen.clear()
        seen[key] = (d.count, now + d.reset)

    def top(self, counter: Counter, n: int, now: float) -> list[KeyUsage]:
        seen = self._seen.get(counter.id, {})
        live = {k: (c, until) for k, (c, until) in seen.items() if until > now and c > 0}
        for k, (c, until) in self._others.get(counter.id, {}).items():
            # The counts are the shared ones, as each worker last read them: the highest is the latest.
            if until > now and c > live.get(k, (0, 0.0))[0]:
                live[k] = (c, until)
        return heapq.nlargest(n, (KeyUsage(k, c, until - now) for k, (c, until) in live.items()), key=lambda u: u.count)

    def own_hot_keys(self, n: int) -> dict[str, list[tuple[str, int, float]]]:
        """Per counter id, the `n` hottest keys this process has seen: (key, count, seconds to reset)."""
        now = self._clock()
        out = {}
        for cid, seen in self._seen.items():
            live = [(k, c, round(until - now, 3)) for k, (c, until) in seen.items() if until > now and c > 0]
            if live:
                out[cid] = heapq.nlargest(n, live, key=lambda u: u[1])
        return out

    def others_hot_keys(self, shares: list[dict[str, list[tuple[str, int, float]]]]) -> None:
        """The other workers' hottest keys (from their stats shares), merged into top() until the next tick."""
        now = self._clock()
        merged: dict[str, dict[str, tuple[int, float]]] = {}
        for share in shares:
            for cid, keys in share.items():
                into = merged.setdefault(cid, {})
                for key, count, reset in keys:
                    if count > into.get(key, (0, 0.0))[0]:
                        into[key] = (count, now + reset)
        self._others = merged

    async def probe(self) -> bool:
        """Ask Redis now (at start-up): a missing Redis is logged and reported before any request."""
        try:
            await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self._down(exc)
            return False
        return True

    async def aclose(self) -> None:
        await self._redis.aclose()
