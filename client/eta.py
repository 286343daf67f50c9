"""The ETA of a running sync from the physics (docs/physics.md): the bound for what is left, at the run's pace.

The bound is `syncbed.physics.earliest_finish` for the batches not yet sent, from now: under the limits
the server advertises (the pacer's fixed windows, epoch-aligned, with what is already spent in the
current one), at the scheduler's concurrency, each batch taking the observed service time (the lower
quartile of recent acknowledged attempts), the slots of the batches in flight busy until they are due.

The pace is how many wall seconds the run has taken per second of that bound it used up, measured from
the first estimate on: retries, backoff, late answers and anything else the bound leaves out slow it.
Measured against the bound's own countdown, it is blind to what is already behind (start-up, a first
burst smaller than the concurrency): only the rate of progress counts.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from client.pacing import WindowPacer
from syncbed import physics

EVERY = 0.25  # seconds between two computations; in between the last ETA counts down
# The service time is the lower quartile of the last few acknowledged attempts: an answer that waited
# behind the others of its burst in the client's own event loop took longer than the server held it.
SERVICE_SAMPLES = 32
# Seconds after the first answer before the pace is measured (the start-up, a first burst smaller than
# the concurrency, is behind by then and would weigh on every later estimate), and the least span it is
# measured over; until then it is 1.
PACE_AFTER = 1.0
# Where in their rounds the two ends of a measurement fell moves the bound used up by about this many
# seconds: over a short span that is all a pace of a few percent says, so the pace counts only beyond it.
PACE_NOISE = 0.15
# The bound here is not strict (a median service time, an expected share of failures): a run may beat it a little.
MIN_PACE = 0.5


@dataclass(frozen=True, slots=True)
class Window:
    """One fixed-window policy as the pacer knows it: edges at `phase` mod `period`, `used` in window `index`."""

    name: str
    limit: int
    period: float
    phase: float = 0.0
    index: int | None = None
    used: int = 0  # what is spent in window `index`: our sends, or the server's count when higher

    def rule(self, t: float) -> physics.Rule:
        """The rule as it stands at `t` (wall-clock seconds)."""
        index = math.floor((t - self.phase) / self.period)
        into = (t - self.phase) - index * self.period
        used = self.used if self.index == index else 0
        return physics.Rule(
            self.name, self.limit, self.period, elapsed=min(max(0.0, into), math.nextafter(self.period, 0)), used=used
        )


def windows_of(pacer: WindowPacer) -> list[Window]:
    """The pacer's fixed windows, as the bound needs them."""
    return [
        Window(w.policy.name, w.policy.quota, w.policy.window, w.phase, w.index, w.used) for w in pacer.windows.values()
    ]


@dataclass(frozen=True, slots=True)
class _Start:
    at: float
    unsent: int
    ages: list[float]  # how long each batch then in flight had been
    rules: list[physics.Rule]


@dataclass(frozen=True, slots=True)
class Estimate:
    eta: float  # seconds until the last batch is answered
    bound: float  # the least seconds the batches left need, from now
    pace: float  # wall seconds per second of the bound (>= 1)


class EtaEstimator:
    """Fed with every send and answer; `estimate()` is recomputed at most every `every` seconds.

    Times are the scheduler's clock (wall-clock seconds: the server's windows are aligned to the epoch).
    """

    def __init__(self, clock: Callable[[], float], every: float = EVERY) -> None:
        self.clock, self.every = clock, every
        self._flying: list[float] = []  # send times of the attempts in flight, sorted
        self._service: deque[float] = deque(maxlen=SERVICE_SAMPLES)
        self._attempts = self._failures = 0
        self._answered_at: float | None = None  # the first estimate: the first acknowledgement
        self._first: _Start | None = None  # the figures the pace is measured from
        self._last: tuple[float, tuple[int, int], Estimate] | None = None  # (when, (answered, in flight), estimate)

    def sent(self, at: float) -> None:
        bisect.insort(self._flying, at)

    def answered(self, sent_at: float, seconds: float, *, ok: bool, failed: bool = False) -> None:
        """One attempt's answer: `ok` acknowledged (its duration is a service time), `failed` to be resent
        after a backoff (a 5xx, a timeout, no answer); a 429 is neither, its wait is the pacer's."""
        i = bisect.bisect_left(self._flying, sent_at)
        if i < len(self._flying) and self._flying[i] == sent_at:
            del self._flying[i]
        if ok:
            self._service.append(seconds)
        self._attempts += ok or failed
        self._failures += failed

    @property
    def failure_share(self) -> float:
        """The share of attempts that had to be resent so far (at most 0.9: a batch still gets through)."""
        return min(0.9, self._failures / self._attempts) if self._attempts else 0.0

    @property
    def service_time(self) -> float | None:
        if len(self._service) < 4:
            return min(self._service, default=None)
        return statistics.quantiles(self._service, n=4)[0]

    def estimate(self, done: int, left: int, concurrency: int, windows: Sequence[Window]) -> Estimate | None:
        """The ETA for `left` batches not yet answered (`done` answered); None until one was acknowledged."""
        if left <= 0:
            return Estimate(0.0, 0.0, 1.0)
        latency = self.service_time
        if latency is None:
            return None
        now = self.clock()
        state = (done, len(self._flying))
        last = self._last
        if last is not None and now - last[0] < self.every and last[1] == state:
            gone = now - last[0]
            return Estimate(max(0.0, last[2].eta - gone), max(0.0, last[2].bound - gone), last[2].pace)
        busy = [t + latency - now for t in self._flying[:left]]
        rules = [w.rule(now) for w in windows]
        if self._answered_at is None:
            self._answered_at = now
        if self._first is None and now - self._answered_at >= PACE_AFTER:
            self._first = _Start(now, left - len(busy), [now - t for t in self._flying[:left]], rules)
        concurrency = max(1, concurrency)
        bound = self._bound(left - len(busy), len(busy), latency, concurrency, rules, busy)
        pace = self._pace(now, bound, latency, concurrency)
        e = Estimate(bound * pace, bound, pace)
        self._last = (now, state, e)
        return e

    def _bound(
        self, unsent: int, flying: int, latency: float, concurrency: int, rules: list[physics.Rule], busy: list[float]
    ) -> float:
        # Each attempt takes a slot and a request of every rule: a batch costs 1 / (1 - share) attempts on
        # average, and one in flight fails with the share (expected values: which one fails is luck).
        share = self.failure_share
        sends = round((unsent + flying * share) / (1 - share))
        return physics.earliest_finish(sends, latency, concurrency, rules, busy)

    def _pace(self, now: float, bound: float, latency: float, concurrency: int) -> float:
        """Wall seconds per second of the bound used up since `_first` (its bound taken as it would be
        computed now, with what is known now: the service time, the concurrency, the failures)."""
        f = self._first
        if f is None:
            return 1.0
        busy = [latency - age for age in f.ages]
        first = self._bound(f.unsent, len(busy), latency, concurrency, f.rules, busy)
        spent, used = now - f.at, first - bound
        if spent < PACE_AFTER:
            return 1.0
        if used < 0.1 * spent:  # (next to) no progress against the bound: a ratio of noise; keep what was measured
            return self._last[2].pace if self._last is not None else 1.0
        raw, noise = spent / used, spent / used * PACE_NOISE / spent
        beyond = max(0.0, abs(raw - 1.0) - noise)
        return max(MIN_PACE, 1.0 + math.copysign(beyond, raw - 1.0))
