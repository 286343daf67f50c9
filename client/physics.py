"""The physical lower bound of a sync run (DESIGN.md section 8), as a pure function."""

from __future__ import annotations

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


def throughput(latency: float, concurrency: int, limit: int | None = None, window: float | None = None) -> float:
    """Steady requests per second: min(C/L, R/W)."""
    by_concurrency = math.inf if latency <= 0 else concurrency / latency
    by_rate = math.inf if limit is None or window is None else limit / window
    return min(by_concurrency, by_rate)
