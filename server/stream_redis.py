"""The cluster's event stream in Redis: one Lua script numbers and appends events, readers decode entries."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from server.events import Published
from syncbed.events import decode_event

log = logging.getLogger("syncbed.events")

KEY_PREFIX = "syncbed:bus:"
STREAM_KEY = KEY_PREFIX + "stream"
COUNTER_KEY = KEY_PREFIX + "counter"
SEQ_PREFIX = KEY_PREFIX + "seq:"  # + worker: the last of that worker's own sequence numbers appended
ONCE_KEY = KEY_PREFIX + "once"  # sorted set: the `once` names appended, scored by when
ONCE_KEEP_S = 86_400
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
COMMAND_TIMEOUT = 1.0  # a push or a resume that has not come back in a second will not: the bus goes local
BLOCK_MS = 1000
BACKOFF_S = (0.1, 2.0)  # a worker that lost Redis tries again after this, doubling up to the second
PAGE = 1000

# KEYS: stream, counter, this worker's sequence key, the once set. ARGV: maxlen, floor, worker, now, keep, then
# (seq, once, event) triples.
# The counter is the global id: INCR'd here with the XADD, so ids rise by one with no gap across workers, and
# the SSE id n is the stream id "<n>-1". It never goes below `floor` (the highest id the caller has seen),
# nor below the stream's last entry when the counter itself was lost. A pair whose seq this worker already
# appended is skipped: a push retried after an answer that never came (a hung or restarted Redis) adds nothing
# twice. An event with a `once` name already in the set (another worker published it) is skipped too; names
# older than `keep` seconds leave the set.
_PUSH = """
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n == 0 then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if top then n = tonumber(string.match(top[1], '^(%d+)')) end
end
n = math.max(n, tonumber(ARGV[2]))
local done = tonumber(redis.call('GET', KEYS[3]) or '0')
local now = tonumber(ARGV[4])
for i = 6, #ARGV, 3 do
  local seq = tonumber(ARGV[i])
  if seq > done then
    done = seq
    if ARGV[i + 1] == '' or redis.call('ZADD', KEYS[4], 'NX', now, ARGV[i + 1]) == 1 then
      n = n + 1
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-1', n),
        'e', ARGV[i + 2], 'w', ARGV[3], 's', ARGV[i])
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[5]))
redis.call('SET', KEYS[2], string.format('%d', n))
redis.call('SET', KEYS[3], string.format('%d', done), 'PX', 86400000)
return n
"""


@dataclass(slots=True)
class Entry:
    """One stream entry: its id, the worker that published it and that worker's sequence number."""

    id: int
    worker: str
    seq: int
    published: Published | None  # None: data that is none of our events (a newer server's)


def entry_of(raw_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    n = int(raw_id.split(b"-", 1)[0])
    worker = fields.get(b"w", b"").decode(errors="replace")
    seq = int(fields.get(b"s", b"0") or 0)
    try:
        event = decode_event(fields.get(b"e", b""))
    except msgspec.DecodeError as exc:
        log.warning("event stream entry %d is none of our events (%s): skipped", n, exc)
        return Entry(n, worker, seq, None)
    event.id = n
    return Entry(n, worker, seq, Published(event))


def client(url: str, timeout: float) -> aioredis.Redis:
    """A client whose commands give up after `timeout`; a dead pooled socket (Redis restarted) is retried once."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, COMMAND_TIMEOUT),
        retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        max_connections=16,
    )


class Stream:
    """The stream's commands: push (numbered appends), read (blocking, after an id), fetch (for a resume)."""

    def __init__(self, url: str, worker: str, maxlen: int) -> None:
        self.worker = worker
        self.maxlen = maxlen
        self.redis = client(url, COMMAND_TIMEOUT)
        # XREAD BLOCK holds its connection for up to a second: a client of its own, with a longer timeout.
        self._blocking = client(url, BLOCK_MS / 1000 + 2.0)
        self._push = self.redis.register_script(_PUSH)

    async def push(self, floor: int, items: Sequence[tuple[int, str | None, bytes]]) -> int:
        """Append (seq, once, event JSON) triples; the id of the last one (the counter, if none was new)."""
        args: list[str | int | float | bytes] = [self.maxlen, floor, self.worker, round(time.time(), 3), ONCE_KEEP_S]
        for seq, once, data in items:
            args += [seq, once or "", data]
        keys = [STREAM_KEY, COUNTER_KEY, SEQ_PREFIX + self.worker, ONCE_KEY]
        n = await self._push(keys=keys, args=args)
        return int(n)

    async def read(self, after: int, count: int = PAGE) -> list[Entry]:
        """The entries after id `after`, waiting up to BLOCK_MS for the first."""
        got: Any = await self._blocking.xread({STREAM_KEY: f"{after}-1"}, count=count, block=BLOCK_MS)
        return [entry_of(i, f) for _, entries in got or () for i, f in entries]

    async def fetch(self, first: int, limit: int) -> list[Entry]:
        """Up to `limit` entries from id `first` on, oldest first, in pages."""
        out: list[Entry] = []
        start = first
        while len(out) < limit:
            page: Any = await self.redis.xrange(STREAM_KEY, f"{start}-0", "+", count=min(PAGE, limit - len(out)))
            out += [entry_of(i, f) for i, f in page]
            if len(page) < PAGE:
                break
            start = out[-1].id + 1
        return out

    async def counter(self) -> int:
        """The last id given out in the cluster."""
        return int(await self.redis.get(COUNTER_KEY) or 0)

    async def aclose(self) -> None:
        await self.redis.aclose()
        await self._blocking.aclose()
