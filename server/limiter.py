"""Rate-limit algorithms: pure decisions over per-key state, time passed in by the caller.

Each algorithm keeps its in-process state in one dict (the memory store) and exposes the
arithmetic that turns raw counters into a Decision, so the Redis store's Lua scripts only
move numbers and the meaning of every field lives here once.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

# Float slack for the sliding window's weighted estimate (in requests).
EPS = 1e-6
US = 1_000_000


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs on the hot path
class Decision:
    """One answer: may this request pass, and what is left of the quota."""

    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the quota is back (the window ends / the bucket drains)
    retry_after: float  # seconds until a refused request could pass; 0.0 when allowed
    count: int  # requests counted against the key in the current window, this one included


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A key's current use, for the hottest-keys views."""

    key: str
    count: int
    reset: float


class Algorithm(Protocol):
    name: ClassVar[str]
    limit: int
    period: float

    def hit(self, key: str, now: float) -> Decision: ...

    def set_limit(self, limit: int) -> None: ...

    def top(self, n: int, now: float) -> list[KeyUsage]: ...

    def clear(self) -> None: ...


class FixedWindow:
    """Rack::Attack's throttle: counter per floor(now/period), count first, refuse when count > limit.

    Refused requests count too, and a client can get up to 2x the limit through across a window
    boundary (limit at the end of one window, limit at the start of the next).
    """

    name: ClassVar[str] = "fixed_window"

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._window = -1
        self._counts: dict[str, int] = {}

    def window(self, now: float) -> int:
        return int(now // self.period)

    def decision(self, count: int, now: float) -> Decision:
        """The Decision for a key whose counter reads `count` after this hit."""
        reset = self.period - now % self.period
        if count <= self.limit:
            return Decision(True, self.limit, self.limit - count, reset, 0.0, count)
        return Decision(False, self.limit, 0, reset, reset, count)

    def hit(self, key: str, now: float) -> Decision:
        w = int(now // self.period)
        counts = self._counts
        if w != self._window:
            # All keys of a rule share the epoch-aligned window: rolling it forgets every key at once.
            self._window = w
            counts.clear()
        count = counts.get(key, 0) + 1
        counts[key] = count
        return self.decision(count, now)

    def top(self, n: int, now: float) -> list[KeyUsage]:
        if int(now // self.period) != self._window:
            return []
        reset = self.period - now % self.period
        best = heapq.nlargest(n, self._counts.items(), key=lambda kv: kv[1])
        return [KeyUsage(k, c, reset) for k, c in best]

    def set_limit(self, limit: int) -> None:
        self.limit = limit

    def clear(self) -> None:
        self._window = -1
        self._counts.clear()


class SlidingWindow:
    """Sliding-window counter: the previous window's count, weighted by how much of it still
    overlaps the sliding period, plus the current window's count. Refused requests do not count."""

    name: ClassVar[str] = "sliding_window"

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._state: dict[str, tuple[int, int, int]] = {}  # key -> (window, previous, current)
        self._next_sweep = 0.0

    def window(self, now: float) -> int:
        return int(now // self.period)

    def estimate(self, previous: int, current: int, elapsed: float) -> float:
        """Requests in the last `period` seconds, assuming the previous window's were spread evenly."""
        return previous * ((self.period - elapsed) / self.period) + current

    def admits(self, previous: int, current: int, elapsed: float) -> bool:
        return self.estimate(previous, current, elapsed) + 1 <= self.limit + EPS

    def decision(self, allowed: bool, previous: int, current: int, elapsed: float) -> Decision:
        """The Decision given the counters after this hit and the time since the window began."""
        p, limit = self.period, self.limit
        est = self.estimate(previous, current, elapsed)
        to_end = p - elapsed
        count = max(0, math.ceil(est - EPS))
        if allowed:
            return Decision(True, limit, max(0, math.floor(limit - est + EPS)), to_end, 0.0, count)
        retry = self._retry_after(previous, current, elapsed)
        return Decision(False, limit, 0, max(to_end, retry), retry, count)

    def _retry_after(self, previous: int, current: int, elapsed: float) -> float:
        p, room = self.period, self.limit - 1
        if room < 0:
            return 2 * p - elapsed  # a limit of 0 never admits: say so without dividing by it
        to_end = p - elapsed
        if previous > 0 and current <= room:
            # Still in this window: wait until the previous window's weight has decayed enough.
            t = to_end - (room - current) * p / previous
            if t < to_end:
                return max(t, 0.0)
        if current <= room:
            return to_end
        # Past the boundary the current window becomes the previous one and decays the same way.
        return to_end + p * (1 - room / current)

    def _counters(self, key: str, w: int) -> tuple[int, int]:
        st = self._state.get(key)
        if st is None:
            return 0, 0
        sw, prev, cur = st
        if sw == w:
            return prev, cur
        if sw == w - 1:
            return cur, 0
        return 0, 0

    def hit(self, key: str, now: float) -> Decision:
        # Inlined _counters/estimate/decision: this is the per-request path. Same float operations
        # in the same order as estimate(), so the Redis store's Lua gets identical answers.
        p, limit = self.period, self.limit
        w = int(now // p)
        elapsed = now - w * p
        st = self._state.get(key)
        if st is None:
            prev = cur = 0
        elif st[0] == w:
            prev, cur = st[1], st[2]
        elif st[0] == w - 1:
            prev, cur = st[2], 0
        else:
            prev = cur = 0
        weighted = prev * ((p - elapsed) / p)
        if weighted + cur + 1 > limit + EPS:
            return self.decision(False, prev, cur, elapsed)
        cur += 1
        self._state[key] = (w, prev, cur)
        if now >= self._next_sweep:
            self._sweep(w, now)
        est = weighted + cur
        remaining = int(limit - est + EPS)  # floor: non-negative here
        return Decision(True, limit, remaining, p - elapsed, 0.0, math.ceil(est - EPS))

    def _sweep(self, w: int, now: float) -> None:
        # Amortised: once a period, drop keys with no count in the last two windows.
        self._next_sweep = now + self.period
        stale = [k for k, st in self._state.items() if st[0] < w - 1]
        for k in stale:
            del self._state[k]

    def top(self, n: int, now: float) -> list[KeyUsage]:
        w = int(now // self.period)
        elapsed = now - w * self.period
        used = []
        for key in self._state:
            prev, cur = self._counters(key, w)
            est = self.estimate(prev, cur, elapsed)
            if est > EPS:
                used.append(KeyUsage(key, math.ceil(est - EPS), self.period - elapsed))
        return heapq.nlargest(n, used, key=lambda u: u.count)

    def set_limit(self, limit: int) -> None:
        self.limit = limit

    def clear(self) -> None:
        self._state.clear()


class Gcra:
    """Generic cell rate algorithm: one theoretical arrival time (TAT) per key, a request every
    period/limit on average and bursts of up to `limit`. Refused requests do not count.

    Times are integer microseconds: adding the emission interval to an epoch float again and again
    drifts by a few ulps per step, enough to refuse the last request of an exact burst. The burst
    tolerance is `limit` whole intervals (not the period), so a burst admits exactly `limit` even
    when the period is not a multiple of the limit in microseconds.
    """

    name: ClassVar[str] = "gcra"

    def __init__(self, limit: int, period: float) -> None:
        self.period = period
        self.period_us = round(period * US)
        self.set_limit(limit)
        self._tat: dict[str, int] = {}
        self._next_sweep = 0

    def set_limit(self, limit: int) -> None:
        # Stored TATs stay valid instants; only the spacing of future requests changes.
        self.limit = limit
        self.interval_us = max(1, self.period_us // limit) if limit > 0 else 0
        self.burst_us = limit * self.interval_us  # <= period_us

    def decision(self, allowed: bool, tat_us: int, now_us: int) -> Decision:
        """The Decision given the key's TAT after this hit (the stored one when refused)."""
        limit, t = self.limit, self.interval_us
        if limit <= 0:
            return Decision(False, limit, 0, self.period, self.period, 0)
        backlog = max(tat_us - now_us, 0)  # microseconds of emission intervals still owed
        remaining = max(0, min(limit, (self.burst_us - backlog) // t))
        if allowed:
            return Decision(True, limit, remaining, backlog / US, 0.0, limit - remaining)
        retry = max(tat_us + t - self.burst_us - now_us, 0)
        return Decision(False, limit, 0, max(backlog, retry) / US, retry / US, limit)

    def hit(self, key: str, now: float) -> Decision:
        now_us = int(now * US)
        limit = self.limit
        if limit <= 0:
            return self.decision(False, now_us, now_us)
        tat = self._tat.get(key, now_us)
        if tat < now_us:
            tat = now_us
        t = self.interval_us
        backlog = tat + t - now_us
        if backlog > self.burst_us:
            # Refused: decision(False, tat, now_us) inlined; reset (tat - now) >= retry as t <= burst.
            retry = backlog - self.burst_us
            return Decision(False, limit, 0, (tat - now_us) / US, retry / US, limit)
        new_tat = tat + t
        self._tat[key] = new_tat
        if now_us >= self._next_sweep:
            self._sweep(now_us)
        remaining = (self.burst_us - backlog) // self.interval_us
        return Decision(True, limit, remaining, backlog / US, 0.0, limit - remaining)

    def _sweep(self, now_us: int) -> None:
        self._next_sweep = now_us + self.period_us
        stale = [k for k, tat in self._tat.items() if tat <= now_us]
        for k in stale:
            del self._tat[k]

    def top(self, n: int, now: float) -> list[KeyUsage]:
        now_us = int(now * US)
        used = []
        for key, tat in self._tat.items():
            if tat > now_us:
                d = self.decision(True, tat, now_us)
                used.append(KeyUsage(key, d.count, d.reset))
        return heapq.nlargest(n, used, key=lambda u: u.count)

    def clear(self) -> None:
        self._tat.clear()


ALGORITHMS: dict[str, type[FixedWindow] | type[SlidingWindow] | type[Gcra]] = {
    FixedWindow.name: FixedWindow,
    SlidingWindow.name: SlidingWindow,
    Gcra.name: Gcra,
}


def make_algorithm(name: str, limit: int, period: float) -> FixedWindow | SlidingWindow | Gcra:
    """The algorithm called `name` ('fixed_window', 'sliding_window' or 'gcra')."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r} (known: {', '.join(ALGORITHMS)})") from None
    return cls(limit, period)
