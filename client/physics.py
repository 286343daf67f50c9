"""The physical lower bound of a sync run (docs/physics.md), as a pure function."""

from __future__ import annotations

import heapq
import math


def lower_bound(
    batches: int,
    latency: float,
    concurrency: int,
    limit: int | None = None,
    window: float | None = None,
) -> float:
    """Least seconds any client needs: max(ceil(N/C)·L, (ceil(N/R) - 1)·W + L).

    `limit`/`window` describe a fixed-window rate limit of R requests per W
    seconds; leave them None when no limit binds. Zero batches take no time.
    """
    if batches < 0 or latency < 0 or concurrency < 1:
        raise ValueError("batches and latency must be >= 0 and concurrency >= 1")
    if batches == 0:
        return 0.0
    by_concurrency = math.ceil(batches / concurrency) * latency
    if limit is None or window is None:
        return by_concurrency
    if limit < 1 or window <= 0:
        raise ValueError("a rate limit needs limit >= 1 and window > 0")
    by_rate = (math.ceil(batches / limit) - 1) * window + latency
    return max(by_concurrency, by_rate)


def schedule_bound(
    batches: int,
    latency: float,
    concurrency: int,
    limit: int | None = None,
    window: float | None = None,
) -> float:
    """Least seconds any client needs, exactly: the greedy schedule under both constraints at once.

    Each send starts as early as the concurrency (C in flight, each for L) and the fixed windows (R per
    [kW, (k+1)W), the first opening at 0) allow; with identical batches starting each as early as
    possible is optimal. Never less than `lower_bound`, whose two terms each drop one constraint: with
    C = 16, L = 0.3 and 50 per 1 s, 100 batches need 2.2 s, not max(2.1, 1.3).
    """
    base = lower_bound(batches, latency, concurrency, limit, window)
    if batches == 0 or limit is None or window is None:
        return base
    free: list[float] = [0.0] * min(concurrency, batches)  # when each slot is next free
    window_start, used, last = 0.0, 0, 0.0
    for _ in range(batches):
        t = heapq.heappop(free)
        if t >= window_start + window:  # windows are aligned to 0: jump to the one holding t
            window_start = math.floor(t / window) * window
            used = 0
        if used >= limit:
            window_start += window
            used = 0
        t = max(t, window_start)  # a slot freed early still waits for the window its send belongs to
        used += 1
        last = max(last, t + latency)
        heapq.heappush(free, t + latency)
    return max(base, last)


def throughput(latency: float, concurrency: int, limit: int | None = None, window: float | None = None) -> float:
    """Steady requests per second: min(C/L, R/W)."""
    by_concurrency = math.inf if latency <= 0 else concurrency / latency
    by_rate = math.inf if limit is None or window is None else limit / window
    return min(by_concurrency, by_rate)
