"""The physics of a sync run (docs/physics.md): the earliest finish any client can reach, as pure code.

A run is N identical batches, each taking L seconds from send to answer, at most C in flight, under
the server's rate rules. Each rule is modelled the way `server/limiter.py` admits (fixed window,
sliding-window counter, GCRA), starting from where the run finds it: how far into its window, how
much of it is used. Sending every batch as early as a free slot and every rule allow is optimal for
identical batches, so the greedy schedule below is the bound; `lower_bound` is its closed form for
one fixed-window rule, the formula the docs quote.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

FIXED_WINDOW: Final = "fixed_window"
SLIDING_WINDOW: Final = "sliding_window"
GCRA: Final = "gcra"
# A time within this of a window edge is on it: float sums of periods land a few ulps either side.
_EDGE: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Rule:
    """One rate rule as a run finds it: `limit` per `period` seconds, with some of it already spent.

    `elapsed` is how far into its current window the run starts (the phase φ times the period), `used`
    how many requests the run's key already has in that window (for GCRA: the backlog, in requests)
    and `previous` the count of the window before (sliding window only).
    """

    name: str
    limit: int
    period: float
    algorithm: str = FIXED_WINDOW
    elapsed: float = 0.0
    used: int = 0
    previous: int = 0

    def __post_init__(self) -> None:
        if self.limit < 1 or not self.period > 0 or not math.isfinite(self.period):
            raise ValueError(f"rule {self.name!r}: a rate rule needs limit >= 1 and a finite period > 0")
        if self.algorithm not in (FIXED_WINDOW, SLIDING_WINDOW, GCRA):
            raise ValueError(f"rule {self.name!r}: unknown algorithm {self.algorithm!r}")
        if not 0 <= self.elapsed < self.period or self.used < 0 or self.previous < 0:
            raise ValueError(f"rule {self.name!r}: needs 0 <= elapsed < period and counts >= 0")

    @property
    def phase(self) -> float:
        """φ: the fraction of the current window gone when the run starts."""
        return self.elapsed / self.period

    def label(self) -> str:
        return f"{self.name} {self.limit}/{_seconds(self.period)}"


def _seconds(period: float) -> str:
    return f"{period:g}s"


class _Gate(Protocol):
    def earliest(self, t: float) -> float: ...
    def admit(self, t: float) -> None: ...


class _Fixed:
    """Window j spans [j·W - e, (j+1)·W - e) in run time; it admits `limit` (window 0: what is left)."""

    def __init__(self, rule: Rule) -> None:
        self.limit, self.period, self.offset = rule.limit, rule.period, rule.elapsed
        self.window, self.count = 0, rule.used

    def _index(self, t: float) -> int:
        return math.floor((t + self.offset) / self.period + _EDGE)

    def earliest(self, t: float) -> float:
        j = self._index(t)
        if j != self.window or self.count < self.limit:
            return t
        return (j + 1) * self.period - self.offset

    def admit(self, t: float) -> None:
        j = self._index(t)
        if j != self.window:
            self.window, self.count = j, 0
        self.count += 1


class _Sliding:
    """The sliding-window counter: previous·(1 - elapsed/W) + current + 1 <= limit admits."""

    def __init__(self, rule: Rule) -> None:
        self.limit, self.period, self.offset = rule.limit, rule.period, rule.elapsed
        self.window, self.previous, self.current = 0, rule.previous, rule.used

    def _state(self, t: float) -> tuple[int, int, int, float]:
        j = math.floor((t + self.offset) / self.period + _EDGE)
        into = max(0.0, t + self.offset - j * self.period)
        if j == self.window:
            return j, self.previous, self.current, into
        if j == self.window + 1:
            return j, self.current, 0, into
        return j, 0, 0, into

    def earliest(self, t: float) -> float:
        for _ in range(3):  # this window, its decay point, the next window: one of them admits
            j, prev, cur, into = self._state(t)
            start, room = j * self.period - self.offset, self.limit - cur - 1
            if prev * (1 - into / self.period) <= room + _EDGE:
                return t
            if room >= 0:  # the previous window's weight decays enough before this window ends
                wait = self.period * (1 - room / prev)
                if wait < self.period:
                    return max(t, start + wait)
            t = start + self.period
        return t

    def admit(self, t: float) -> None:
        j, prev, cur, _ = self._state(t)
        self.window, self.previous, self.current = j, prev, cur + 1


class _Gcra:
    """A request every period/limit on average, bursts of up to `limit`: one theoretical arrival time."""

    def __init__(self, rule: Rule) -> None:
        self.interval = rule.period / rule.limit
        self.burst = rule.limit * self.interval
        self.tat = min(rule.used, rule.limit) * self.interval

    def earliest(self, t: float) -> float:
        return max(t, self.tat + self.interval - self.burst)

    def admit(self, t: float) -> None:
        self.tat = max(self.tat, t) + self.interval


_GATES: Final[dict[str, Callable[[Rule], _Gate]]] = {FIXED_WINDOW: _Fixed, SLIDING_WINDOW: _Sliding, GCRA: _Gcra}


def schedule(
    batches: int, latency: float, concurrency: int, rules: Sequence[Rule] = (), busy: Sequence[float] = ()
) -> list[float]:
    """When each batch is sent in the earliest schedule, in run seconds from the start.

    `busy`: when each slot already taken at the start (by a request in flight) frees up.
    """
    if batches < 0 or not latency >= 0 or concurrency < 1:
        raise ValueError("batches and latency must be >= 0 and concurrency >= 1")
    gates: list[_Gate] = [_GATES[r.algorithm](r) for r in rules]
    taken = sorted(max(0.0, b) for b in busy)[:concurrency]
    free = (taken + [0.0] * (concurrency - len(taken)))[:concurrency]  # when each slot is next free
    heapq.heapify(free)
    sends: list[float] = []
    last = 0.0
    for _ in range(batches):
        t = max(heapq.heappop(free), last)
        for _ in range(64):  # each pass moves t to where one more rule admits; a few passes settle it
            moved = max((g.earliest(t) for g in gates), default=t)
            if moved <= t:
                break
            t = moved
        for g in gates:
            g.admit(t)
        sends.append(t)
        last = t
        heapq.heappush(free, t + latency)
    return sends


def earliest_finish(
    batches: int, latency: float, concurrency: int, rules: Sequence[Rule] = (), busy: Sequence[float] = ()
) -> float:
    """Least seconds any client needs for `batches` from now: the last answer of the earliest schedule.

    `busy` as for `schedule`: those requests in flight are not among `batches` and end when their slots free.
    """
    sends = schedule(batches, latency, concurrency, rules, busy)
    return max(sends[-1] + latency if sends else 0.0, max(busy, default=0.0))


def lower_bound(
    batches: int,
    latency: float,
    concurrency: int,
    limit: int | None = None,
    window: float | None = None,
    phase: float = 0.0,
) -> float:
    """max(ceil(N/C)·L, (ceil(N/R) - 1)·W - φ·W + L): one fixed-window rule, the run starting φ into a window.

    The second term counts only when N > R. Equal to `earliest_finish` whenever one of the two binds.
    """
    if batches < 0 or latency < 0 or concurrency < 1:
        raise ValueError("batches and latency must be >= 0 and concurrency >= 1")
    if batches == 0:
        return 0.0
    by_concurrency = math.ceil(batches / concurrency) * latency
    if limit is None or window is None or batches <= limit:
        return by_concurrency
    if limit < 1 or window <= 0 or not 0 <= phase < 1:
        raise ValueError("a rate limit needs limit >= 1, window > 0 and 0 <= phase < 1")
    return max(by_concurrency, (math.ceil(batches / limit) - 1 - phase) * window + latency)


def throughput(latency: float, concurrency: int, rules: Sequence[Rule] = ()) -> float:
    """Steady requests per second: min(C/L, R/W over every rule)."""
    rates = [concurrency / latency if latency > 0 else math.inf] + [r.limit / r.period for r in rules]
    return min(rates)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What sets the pace of the work left: the constraint that alone needs the longest, and the bound."""

    binds: str  # a rule's label, "concurrency" or "latency"
    alone: float  # seconds that constraint alone needs
    bound: float  # seconds all of them together need (>= alone)
    batches: int

    def sentence(self) -> str:
        need = f"{self.batches:,} batch{'es' if self.batches != 1 else ''} need at least {self.bound:.1f} s"
        return f"{self.binds} binds: {need}"


def verdict(batches: int, latency: float, concurrency: int, rules: Sequence[Rule] = ()) -> Verdict:
    """Which constraint binds for `batches` left, and the bound under all of them."""
    bound = earliest_finish(batches, latency, concurrency, rules)
    options = [
        ("latency", latency if batches else 0.0),
        ("concurrency", earliest_finish(batches, latency, concurrency)),
    ]
    # A rule alone: as many in flight as there are batches, so only the rule and one latency count.
    options += [(r.label(), earliest_finish(batches, latency, max(1, batches), [r])) for r in rules]
    binds, alone = max(options, key=lambda o: o[1])  # ties go to the earlier: latency, then concurrency
    return Verdict(binds, alone, bound, batches)


def pace(elapsed: float, done: int, latency: float, concurrency: int, rules: Sequence[Rule] = ()) -> float:
    """How much slower than its bound a run has gone so far: elapsed over the bound for `done` (>= 1).

    `rules` are the rules as the run found them at its start. Retries, backoff and a service time above
    the bound's L all show up here, so the bound for what is left times this is the run's ETA.
    """
    bound = earliest_finish(done, latency, concurrency, rules)
    return max(1.0, elapsed / bound) if bound > 0 and elapsed > 0 else 1.0


def eta(left: int, latency: float, concurrency: int, rules: Sequence[Rule] = (), pace: float = 1.0) -> float:
    """Seconds until the last of `left` batches is answered: the bound for them, at the run's pace."""
    return earliest_finish(left, latency, concurrency, rules) * pace
