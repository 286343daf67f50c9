"""The cluster's 1 Hz stats: each worker's share in Redis each tick, summed by the one worker holding a lease."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
import redis.asyncio as aioredis

from syncbed.events import ServerStats
from syncbed.responses import WorkerStats

log = logging.getLogger("syncbed.events")

SHARES_KEY = "syncbed:stats:shares"  # worker -> "<redis ms> <share JSON>"
LEADER_KEY = "syncbed:stats:leader"
STALE_MS = 3000  # a share this old is a worker that stopped: dropped from the sums; also the lease's life
HOT_PER_RULE = 20

# counter id -> [(key, count, seconds until its quota is back)], the hottest first
HotKeys = dict[str, list[tuple[str, int, float]]]

# KEYS: shares, leader. ARGV: worker, share JSON, stale ms. Redis's clock for every share, so the workers'
# clocks need not agree. Returns (1 if this worker holds the lease, the fresh shares' JSON).
_TICK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d ', now) .. ARGV[2])
local lead = 0
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', stale) then
  lead = 1
elseif redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], stale)
  lead = 1
end
local all = redis.call('HGETALL', KEYS[1])
local fresh = {}
for i = 1, #all, 2 do
  local at, share = string.match(all[i + 1], '^(%d+) (.*)$')
  if at and now - tonumber(at) <= stale then
    table.insert(fresh, share)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return {lead, fresh}
"""


class Share(msgspec.Struct):
    """What one worker writes each tick: its rates, and its view of the shared limiter's hottest keys."""

    stats: WorkerStats
    hot: HotKeys = {}


_decode_share = msgspec.json.Decoder(Share).decode


def combine(local: ServerStats, shares: list[WorkerStats]) -> ServerStats:
    """The leader's stats event: its own (limiter, faults, rules) with the rates summed over `shares`."""
    workers = sorted(shares, key=lambda s: s.worker)
    return msgspec.structs.replace(
        local,
        records_per_s=round(sum(s.records_per_s for s in workers), 1),
        requests_per_s=round(sum(s.requests_per_s for s in workers), 2),
        throttled_per_s=round(sum(s.throttled_per_s for s in workers), 2),
        in_flight=sum(s.in_flight for s in workers),
        workers=workers,
    )


class ClusterStats:
    """One tick: write this worker's share, read every fresh one; the lease holder gets the cluster's event."""

    def __init__(self, redis: aioredis.Redis, worker: str) -> None:
        self.worker = worker
        self.leader = False
        self.shares: list[WorkerStats] | None = None  # every fresh share at the last tick, by worker
        self._tick = redis.register_script(_TICK)
        self._hot_source: Callable[[int], HotKeys] | None = None
        self._hot_sink: Callable[[list[HotKeys]], None] | None = None

    def share_hot_keys(self, source: Callable[[int], HotKeys], sink: Callable[[list[HotKeys]], None]) -> None:
        """The shared limiter store's own hot keys go out with each share; the others' come back to `sink`."""
        self._hot_source, self._hot_sink = source, sink

    async def tick(self, local: ServerStats) -> ServerStats | None:
        """This worker's share of `local` to Redis; the cluster's stats if this worker holds the lease, else None."""
        mine = WorkerStats(
            worker=self.worker,
            records_per_s=local.records_per_s,
            requests_per_s=local.requests_per_s,
            throttled_per_s=local.throttled_per_s,
            in_flight=local.in_flight,
        )
        hot = self._hot_source(HOT_PER_RULE) if self._hot_source is not None else {}
        payload = msgspec.json.encode(Share(mine, hot))
        lead, fresh = await self._tick(keys=[SHARES_KEY, LEADER_KEY], args=[self.worker, payload, STALE_MS])
        shares: list[Share] = []
        for raw in fresh:
            try:
                shares.append(_decode_share(raw))
            except msgspec.DecodeError:
                log.warning("a worker's stats share is unreadable: left out")
        if self._hot_sink is not None:
            self._hot_sink([s.hot for s in shares if s.stats.worker != self.worker])
        others = [s.stats for s in shares if s.stats.worker != self.worker]
        self.shares = sorted([mine, *others], key=lambda s: s.worker)
        if bool(lead) != self.leader:
            self.leader = bool(lead)
            log.info("stats: this worker %s the cluster's stats events", "publishes" if lead else "no longer publishes")
        if not lead:
            return None
        return combine(local, self.shares)
