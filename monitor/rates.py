"""Per-second counters over a sliding horizon (records/s, 429s/s), their sparkline bins, and latency samples."""

from __future__ import annotations

import math
from collections import deque


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

    def binned(self, now: float, span: int, bins: int) -> list[float]:
        """The last `span` seconds in `bins` columns, each its busiest second (a spike stays visible)."""
        seconds = self.series(now, span)
        size = max(1, math.ceil(span / max(1, bins)))
        return [max(seconds[i : i + size]) for i in range(0, len(seconds), size)]


def span_for(seen: float, width: int, longest: int = 180) -> tuple[int, int]:
    """(seconds, seconds per column) a sparkline `width` wide covers: `longest`, or what was seen if less.

    The span is a whole number of columns, so the label says exactly what is drawn.
    """
    want = max(10, min(longest, math.ceil(seen)))
    size = max(1, math.ceil(want / max(1, width)))
    return min(width, math.ceil(want / size)) * size, size


def span_label(seconds: int) -> str:
    """A span as a short label: `45 s`, `3 min`."""
    return f"{seconds // 60} min" if seconds >= 120 and seconds % 60 == 0 else f"{seconds} s"


class Samples:
    """Timed values (latencies) kept for `horizon` seconds: percentiles over a recent span."""

    def __init__(self, horizon: float = 600.0) -> None:
        self.horizon = horizon
        self._items: deque[tuple[float, float]] = deque()

    def add(self, ts: float, value: float) -> None:
        self._items.append((ts, value))
        newest = max(ts, self._items[-1][0])
        while self._items and self._items[0][0] < newest - self.horizon:
            self._items.popleft()

    def percentiles(self, now: float, span: float, qs: tuple[float, ...] = (50, 95, 99)) -> list[float] | None:
        """Nearest-rank percentiles of the values of the last `span` seconds; None when there are none."""
        values = sorted(v for t, v in self._items if now - span <= t <= now)
        if not values:
            return None
        return [values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))] for q in qs]

    def clear(self) -> None:
        self._items.clear()
