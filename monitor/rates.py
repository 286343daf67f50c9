"""Per-second counters over a sliding horizon (records/s, 429s/s)."""

from __future__ import annotations

import math


class RateSeries:
    """Amounts added at timestamps, bucketed by whole second, kept for `horizon` seconds."""

    def __init__(self, horizon: int = 600) -> None:
        self.horizon = horizon
        self._buckets: dict[int, float] = {}
        self._newest = -1
        self.total = 0.0

    def add(self, ts: float, amount: float = 1.0) -> None:
        """Count `amount` in the second that holds `ts`."""
        sec = math.floor(ts)
        self._buckets[sec] = self._buckets.get(sec, 0.0) + amount
        self.total += amount
        if sec > self._newest:
            self._newest = sec
            if len(self._buckets) > self.horizon + 64:
                self._prune()

    def _prune(self) -> None:
        oldest = self._newest - self.horizon
        for sec in [s for s in self._buckets if s < oldest]:
            del self._buckets[sec]

    def series(self, now: float, seconds: int) -> list[float]:
        """The last `seconds` complete seconds before `now`, oldest first."""
        end = math.floor(now)
        return [self._buckets.get(sec, 0.0) for sec in range(end - seconds, end)]

    def last_second(self, now: float) -> float:
        """The amount in the last complete second before `now`."""
        return self._buckets.get(math.floor(now) - 1, 0.0)

    def sum_between(self, start: float, end: float) -> float:
        """Sum of the buckets whose second lies in [floor(start), floor(end)]."""
        lo, hi = math.floor(start), math.floor(end)
        if hi - lo > len(self._buckets):
            return sum(v for s, v in self._buckets.items() if lo <= s <= hi)
        return sum(self._buckets.get(s, 0.0) for s in range(lo, hi + 1))

    def clear(self) -> None:
        self._buckets.clear()
        self._newest = -1
        self.total = 0.0
