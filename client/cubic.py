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

    def __init__(self, smoothing: float = 0.8, bucket: float = 0.5) -> None:
        self.smoothing = smoothing
        self.bucket = bucket
        self.rate = 0.0
        self._last: float | None = None  # starts with the first answer: idle time is not a rate
        self._count = 0

    def record(self, now: float) -> float:
        self._count += 1
        current = math.floor(now / self.bucket) * self.bucket
        if self._last is None:
            self._last = current
        elif current > self._last:
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

    def rebase(self, rate: float) -> None:
        """Take `rate` as the last loss point, keeping the time of the loss."""
        self.w_max = rate
        self.k = self._zero_point()

    def failure(self, now: float, rate: float) -> float:
        self.rebase(rate)
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
        self.meter = RateMeter()
        self.cubic = Cubic(now, 0.0)
        self.last_cut = -math.inf
        self.cut_basis = math.inf
        self.best = 0.0  # the most sends admitted within one second so far
        self._sent: deque[float] = deque()  # send times, last second
        self._refused: deque[float] = deque()  # send times of the refused ones, last second

    def _refill(self, now: float) -> None:
        if self.enabled and now > self._stamp:
            self.tokens = min(max(1.0, self.rate), self.tokens + (now - self._stamp) * self.rate)
        self._stamp = max(self._stamp, now)

    def _admitted(self, now: float) -> float:
        """Sends of the last second not refused (so far): the pace the server let through."""
        for times in (self._sent, self._refused):
            while times and times[0] < now - 1.0:
                times.popleft()
        return float(len(self._sent) - len(self._refused))

    def delay(self, now: float) -> float:
        if not self.enabled:
            return 0.0
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def on_send(self, now: float) -> None:
        self._sent.append(now)
        if self.enabled:
            self._refill(now)
            self.tokens -= 1

    def on_response(self, now: float, throttled: bool, sent_at: float) -> None:
        """Feed one answer; 429s to sends made before the last cut belong to that cut's loss event."""
        measured = self.meter.record(now)
        if throttled:
            self._refused.append(sent_at)
        admitted = self._admitted(now)
        if not throttled:
            self.best = max(self.best, admitted)
        if throttled and sent_at < self.last_cut:
            # The same loss event: refusals of one burst arrive one by one (and before its 200s,
            # which wait out the latency); each only sharpens the estimate of what got through.
            if admitted < self.cut_basis:
                self.cut_basis = max(self.min_rate, admitted)
                self.cubic.rebase(self.cut_basis)
                self._set(now, self.cut_basis * self.cubic.beta, measured)
            return
        if throttled:
            basis = max(self.min_rate, admitted if not self.enabled else min(admitted, self.rate))
            self.last_cut, self.cut_basis = now, basis
            new_rate = self.cubic.failure(now, basis)
            if not self.enabled:
                self._refill(now)
                self.enabled = True
        elif self.enabled:
            new_rate = self.cubic.success(now)
        else:
            return
        self._set(now, new_rate, measured)

    def _set(self, now: float, new_rate: float, measured: float) -> None:
        # Never run far ahead of what the server was seen to admit (the best second, since pauses
        # behind the 429 gate drag the smoothed meter down).
        seen = self.cut_basis if math.isfinite(self.cut_basis) else 0.0
        ceiling = 2 * max(measured, self.best, seen, self.min_rate)
        self._refill(now)
        self.rate = max(self.min_rate, min(new_rate, ceiling))
        self.tokens = min(self.tokens, max(1.0, self.rate))


def concurrency_for(rate: float, latency: float, cap: int) -> int:
    """Requests in flight needed to keep `rate` going at `latency`: ceil(rate·L) + 1."""
    if math.isinf(rate) or latency <= 0:
        return cap
    return max(1, min(cap, math.ceil(rate * latency) + 1))
