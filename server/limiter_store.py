"""Where the limiter's counters live: this process (memory) or Redis (limiter_redis.py, loaded when used)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from server.limiter import Decision, FixedWindow, Gcra, KeyUsage, SlidingWindow

log = logging.getLogger("syncbed.limiter")

AnyAlgorithm = FixedWindow | SlidingWindow | Gcra
StatusCallback = Callable[[str, str], None]  # (store name, "down" | "up")


@dataclass(slots=True)
class Counter:
    """One rule's counters: `id` names them in the store (kind, name and period, so a track and a
    throttle of one name, or a rule before and after a period change, never share a counter)."""

    id: str
    algorithm: AnyAlgorithm


def counter_id(kind: str, name: str, period: float) -> str:
    return f"{kind}:{name}:{period:g}"


class Store(Protocol):
    name: str
    up: bool

    async def hit(self, counter: Counter, key: str, now: float) -> Decision | None: ...

    def top(self, counter: Counter, n: int, now: float) -> list[KeyUsage]: ...

    # Bans (server/bans.py), by the ban rule's id: a key's end of ban, in epoch seconds.
    async def banned(self, ban_id: str, key: str, now: float) -> float | None: ...

    async def ban(self, ban_id: str, key: str, until: float, bantime: float) -> bool: ...

    async def bans(self, ban_id: str, now: float) -> dict[str, float] | None: ...

    async def expire_bans(self, ban_id: str, now: float) -> list[str]: ...

    async def probe(self) -> bool: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """Counters in this process: exact and fast, but every worker process counts on its own."""

    name = "memory"
    up = True

    def __init__(self) -> None:
        self._bans: dict[str, dict[str, float]] = {}

    async def hit(self, counter: Counter, key: str, now: float) -> Decision:
        return counter.algorithm.hit(key, now)

    def top(self, counter: Counter, n: int, now: float) -> list[KeyUsage]:
        return counter.algorithm.top(n, now)

    async def banned(self, ban_id: str, key: str, now: float) -> float | None:
        until = self._bans.get(ban_id, {}).get(key)
        return until if until is not None and until > now else None

    async def ban(self, ban_id: str, key: str, until: float, bantime: float) -> bool:
        self._bans.setdefault(ban_id, {})[key] = until
        return True

    async def bans(self, ban_id: str, now: float) -> dict[str, float]:
        return {k: u for k, u in self._bans.get(ban_id, {}).items() if u > now}

    async def expire_bans(self, ban_id: str, now: float) -> list[str]:
        held = self._bans.get(ban_id, {})
        gone = [k for k, u in held.items() if u <= now]
        for k in gone:
            del held[k]
        return gone

    async def probe(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def open_store(url: str, on_status: StatusCallback | None = None) -> Store:
    """'memory' or a redis:// (rediss://, unix://) URL."""
    if url == "memory":
        return MemoryStore()
    # Imported here: redis-py is a tenth of the server's start-up imports, and most servers count in memory.
    from server.limiter_redis import RedisStore

    return RedisStore(url, on_status)
