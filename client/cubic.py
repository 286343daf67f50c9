"""Loss-based rate discovery for servers that send no RateLimit fields.

A port of botocore's adaptive retry mode: a token bucket every send passes,
its rate cut to `beta` times the measured rate on a 429 and regrown along a
CUBIC curve on success, never above twice the measured rate.
"""

from __future__ import annotations

import math
from collections import deque


class RateMeter:
    """Smoothed responses per second over half-second buckets."""

    def __init__(self, now: float, smoothing: float = 0.8, bucket: float = 0.5) -> None:
        self.smoothing = smoothing
        self.bucket = bucket
        self.rate = 0.0
        self._last = math.floor(now / bucket) * bucket
        self._count = 0

    def record(self, now: float) -> float:
        self._count += 1
        current = math.floor(now / self.bucket) * self.bucket
        if current > self._last:
            sample = self._count / (current - self._last)
            self.rate = sample * self.smoothing + self.rate * (1 - self.smoothing)
            self._count = 0
            self._last = current
        return self.rate


class Cubic:
    """CUBIC window growth applied to a send rate."""

    def __init__(self, now: float, rate: float, scale: float = 0.4, beta: float = 0.7) -> None:
        self.scale = scale
        self.beta = beta
        self.w_max = rate
        self.last_fail = now
        self.k = self._zero_point()

    def _zero_point(self) -> float:
        return (self.w_max * (1 - self.beta) / self.scale) ** (1 / 3)

    def success(self, now: float) -> float:
        return self.scale * (now - self.last_fail - self.k) ** 3 + self.w_max

    def failure(self, now: float, rate: float) -> float:
        self.w_max = rate
        self.k = self._zero_point()
        self.last_fail = now
        return rate * self.beta


class LossPacer:
    """Token bucket off until the first 429, then steered by CUBIC."""

    def __init__(self, now: float, min_rate: float = 0.5) -> None:
        self.min_rate = min_rate
        self.enabled = False
        self.rate = math.inf
        self.tokens = 0.0
        self._stamp = now
        self.meter = RateMeter(now)
        self.cubic = Cubic(now, 0.0)
        self.last_cut = -math.inf
        self._recent: deque[float] = deque()  # send times within the last second

    def _refill(self, now: float) -> None:
        if self.enabled and now > self._stamp:
            self.tokens = min(max(1.0, self.rate), self.tokens + (now - self._stamp) * self.rate)
        self._stamp = max(self._stamp, now)

    def delay(self, now: float) -> float:
        if not self.enabled:
            return 0.0
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def on_send(self, now: float) -> None:
        self._recent.append(now)
        while self._recent and self._recent[0] < now - 1.0:
            self._recent.popleft()
        if self.enabled:
            self._refill(now)
            self.tokens -= 1

    def on_response(self, now: float, throttled: bool, sent_at: float) -> None:
        """Feed one answer; 429s to sends made before the last cut are the same loss event."""
        if throttled and sent_at < self.last_cut:
            return
        measured = self.meter.record(now)
        if throttled:
            # Before the meter has a sample, what was just sent is the best guess of the pace.
            seen = measured if measured > 0 else float(len(self._recent))
            basis = max(self.min_rate, seen if not self.enabled else min(seen, self.rate))
            self.last_cut = now
            new_rate = self.cubic.failure(now, basis)
            if not self.enabled:
                self._refill(now)
                self.enabled = True
        elif self.enabled:
            new_rate = self.cubic.success(now)
        else:
            return
        # Never run far ahead of what the server was actually seen to sustain.
        ceiling = 2 * measured if measured > 0 else new_rate
        self._refill(now)
        self.rate = max(self.min_rate, min(new_rate, ceiling))
        self.tokens = min(self.tokens, max(1.0, self.rate))


def concurrency_for(rate: float, latency: float, cap: int) -> int:
    """Requests in flight needed to keep `rate` going at `latency`: ceil(rate·L) + 1."""
    if math.isinf(rate) or latency <= 0:
        return cap
    return max(1, min(cap, math.ceil(rate * latency) + 1))
