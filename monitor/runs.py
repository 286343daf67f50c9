"""One sync run as the monitor sees it: the shared fold of its events, plus its lanes, progress and rates."""

from __future__ import annotations

import bisect
from collections import deque

from monitor import bound
from monitor.lanes import FAILED, STORED, THROTTLED, Attempt, LaneAllocator
from monitor.limiter import LimiterView
from syncbed.events import (
    BatchReceived,
    BatchRejected,
    BatchStored,
    RequestThrottled,
    RunEvent,
    RunFinished,
    RunStarted,
)
from syncbed.fold import Key, RunFold
from syncbed.runs import AttemptView

RATE_WINDOW = 5.0  # seconds of stored records behind the live records/s
STALLED_AFTER = 30.0  # an unfinished run quiet this long (or 3x its expected gap) shows as stalled
# The ETA and bound are schedules of the work left: worked out again after a new answer, but at most
# every MIN_RECOMPUTE_S, and at least every RECOMPUTE_S (the phase of the windows moves on).
MIN_RECOMPUTE_S = 0.25
RECOMPUTE_S = 1.0
LOST_AFTER = 300.0  # ... and this long (or 10x its expected gap) as lost: its client is likely gone
STALLED, LOST = "stalled", "lost"


# A retry may come a little after its wait (scheduling, jitter): its lane stays its own that long.
HOLD_GRACE_S = 1.0


class Run:
    """Everything seen of one run id; fed event by event by the model.

    Its figures (user, announcement, status, totals, attempts) are the fold the server's run view uses
    too; what is the monitor's own is the picture: bars on lanes, the recent rate, the ETA.
    """

    def __init__(
        self, run: str, ts: float, limiter: LimiterView | None = None, faults: dict[str, int | float] | None = None
    ) -> None:
        self.run = run
        # The server's rules and faults as the model knows them (shared, not copied): the ETA's physics.
        self.limiter = limiter if limiter is not None else LimiterView()
        self.faults = faults if faults is not None else {}
        self.fold = RunFold(run)
        self.started_at = ts
        self.last_ts = ts
        self.attempts: list[Attempt] = []  # bars, in the order they started
        self.batches: dict[int | None, list[Attempt]] = {}
        self.events: list[RunEvent] = []
        self.lanes = LaneAllocator()
        self._open: dict[Key, Attempt] = {}
        self._bars: dict[Key, Attempt] = {}  # each attempt's latest bar
        self._recent: deque[tuple[float, int]] = deque()
        self.sends: list[float] = []  # every request the server counted for the run, sorted
        self.admitted: list[float] = []  # the ones the limiter let through (batch.received)
        self.service_ms: list[float] = []  # each stored attempt's server-side time
        self.last_store: float | None = None
        self.answered = 0  # attempts the limiter admitted that have an answer (stored or refused)
        self.last_answer: float | None = None
        self._retry_after: dict[Key, float] = {}
        self.loosest: dict[str, int] = {}  # each rule's highest limit while the run went on (its bound's)
        # (when, value, answers then[, finished then]) as last worked out
        self._eta: tuple[float, float | None, int] | None = None
        self._bound: tuple[float, bound.BoundView | None, int, bool] | None = None

    # --- feeding ---------------------------------------------------------
    def add(self, event: RunEvent) -> None:
        self.note_limits()
        self.fold.add(event)
        self.events.append(event)
        ts = event.ts
        self.last_ts = max(self.last_ts, ts)
        if isinstance(event, RunStarted):
            self.started_at = min(self.started_at, ts)
        elif isinstance(event, RunFinished):
            if event.seconds > 0 and self.fold.announced is None:
                self.started_at = min(self.started_at, ts - event.seconds)
        elif isinstance(event, BatchReceived):
            self._open[(event.batch, event.attempt)] = self._new_bar(event.batch, event.attempt, ts)
            bisect.insort(self.sends, ts)
            self.admitted.append(ts)
        elif isinstance(event, BatchStored):
            bar = self._close(event.batch, event.attempt, ts, STORED, event.ms)
            bar.status = 200
            self._recent.append((ts, event.records))
            self.service_ms.append(event.ms)
            self.last_store = ts if self.last_store is None else max(self.last_store, ts)
            self._answer(ts)
        elif isinstance(event, BatchRejected):
            bar = self._close(event.batch, event.attempt, ts, FAILED, 0.0)
            bar.status = event.status or None  # 0: the connection was dropped, no answer
            self._answer(ts)
        elif isinstance(event, RequestThrottled):
            bar = self._new_bar(event.batch, event.attempt, ts)
            self._end(bar, ts, THROTTLED)
            bar.status = 429
            self._retry_after[(event.batch, event.attempt)] = event.retry_after
            self.lanes.hold(bar.lane, event.batch, ts + event.retry_after)
            bisect.insort(self.sends, ts)

    def _answer(self, ts: float) -> None:
        self.answered += 1
        self.last_answer = ts if self.last_answer is None else max(self.last_answer, ts)

    # --- bars and lanes --------------------------------------------------
    def _new_bar(self, batch: int | None, attempt: int | None, start: float) -> Attempt:
        self.lanes.expire(start - HOLD_GRACE_S)
        bar = Attempt(batch=batch, attempt=attempt, start=start, lane=self.lanes.assign(start, batch))
        history = self.batches.setdefault(batch, [])
        if history and history[-1].next_start is None:
            history[-1].next_start = start
        history.append(bar)
        self.attempts.append(bar)
        self._bars[(batch, attempt)] = bar
        return bar

    def _close(self, batch: int | None, attempt: int | None, ts: float, state: str, ms: float) -> Attempt:
        bar = self._open.pop((batch, attempt), None)
        if bar is None:
            # Its start was not seen (missed, or refused before processing): draw it from `ms` back.
            bar = self._new_bar(batch, attempt, min(ts, ts - ms / 1000.0))
        self._end(bar, ts, state)
        return bar

    def _end(self, bar: Attempt, ts: float, state: str) -> None:
        bar.end = max(ts, bar.start)
        bar.state = state
        self.lanes.release(bar.lane, bar.end)

    def bar(self, attempt: AttemptView) -> Attempt | None:
        """The bar drawn for one of the fold's attempts."""
        return self._bars.get((attempt.batch, attempt.attempt))

    # --- the fold's figures ----------------------------------------------
    @property
    def user(self) -> str | None:
        return self.fold.user

    @property
    def announced(self) -> bool:
        return self.fold.announced is not None

    @property
    def mode(self) -> str | None:
        announced = self.fold.announced
        return (announced.mode or None) if announced is not None else None

    @property
    def concurrency(self) -> int | None:
        return self.fold.announced.concurrency if self.fold.announced else None

    @property
    def total_records(self) -> int | None:
        return self.fold.announced.total_records if self.fold.announced else None

    @property
    def batch_size(self) -> int | None:
        return self.fold.announced.batch_size if self.fold.announced else None

    @property
    def total_batches(self) -> int | None:
        return self.fold.announced.total_batches if self.fold.announced else None

    @property
    def status(self) -> str:
        return self.fold.status

    @property
    def finished_at(self) -> float | None:
        return self.fold.finished

    @property
    def finished(self) -> bool:
        return self.fold.finished is not None

    @property
    def records_done(self) -> int:
        """Records acknowledged: every stored attempt's, so both halves of a split batch count."""
        return self.fold.totals().records_acked

    @property
    def throttled(self) -> int:
        return self.fold.totals().throttled

    @property
    def rejected(self) -> int:
        return self.fold.totals().rejected

    @property
    def retries(self) -> int:
        return self.fold.retries

    def batches_done(self) -> int:
        return self.fold.totals().batches_stored

    def failed_batches(self) -> int:
        """The client's own count once it reported one, else the batches the events show failed for good."""
        if self.fold.reported is not None:
            return self.fold.reported.failed_batches
        return self.fold.failed_batches()

    # --- derived ---------------------------------------------------------
    def in_flight(self) -> int:
        return len(self._open)

    def open_starts(self) -> list[float]:
        """When each attempt now in flight was sent."""
        return [bar.start for bar in self._open.values()]

    def progress(self) -> float | None:
        """Fraction of records acknowledged, when the run announced its total."""
        total = self.total_records
        if total:
            return min(1.0, self.records_done / total)
        if total == 0:
            return 1.0
        return None

    def elapsed(self, now: float) -> float:
        end = self.finished_at if self.finished_at is not None else max(now, self.last_ts)
        return max(0.0, end - self.started_at)

    def records_per_s(self, now: float) -> float:
        """Recent rate while running, the average once finished."""
        if self.finished:
            reported = self.fold.reported
            seconds = reported.seconds if reported is not None and reported.seconds > 0 else self.elapsed(now)
            return self.records_done / seconds if seconds > 0 else 0.0
        while self._recent and self._recent[0][0] < now - RATE_WINDOW:
            self._recent.popleft()
        window = min(RATE_WINDOW, self.elapsed(now))
        if window <= 0:
            return 0.0
        return sum(n for t, n in self._recent if t <= now) / window

    def eta(self, now: float) -> float | None:
        """Seconds left: the physics bound for the batches left at the run's pace; 0 when done, None unknown."""
        if self.finished:
            return 0.0
        if self.total_records is None:
            return None
        if self.records_done >= self.total_records:
            return 0.0
        if self.display_status(now) in (STALLED, LOST):
            return None  # no pace to go by: the run is not moving
        cached = self._eta
        if cached is not None and self._fresh(cached[0], cached[2], now):
            return None if cached[1] is None else max(0.0, cached[1] - (now - cached[0]))  # counting down
        p = bound.physics_of(self, self.limiter.rules.values(), now, self.faults)
        value = bound.eta(p, now) if p is not None else None
        self._eta = (now, value, self.answered)
        return value

    def note_limits(self) -> None:
        """Keep the limits as they stand (the model calls it before a limits edit, the run on each event)."""
        if self.finished:
            return
        for name, view in self.limiter.rules.items():
            if view.limit is not None and view.limit > self.loosest.get(name, 0):
                self.loosest[name] = view.limit

    def bound(self, now: float) -> bound.BoundView | None:
        """What binds the run now and how far it is from its bound (the bound panel)."""
        self.note_limits()
        cached = self._bound
        # A verdict is a few schedules of the work left: once a second is often enough for a sentence.
        if cached is not None and 0 <= now - cached[0] < RECOMPUTE_S and cached[3] == self.finished:
            return cached[1]
        view = bound.bound_of(self, self.limiter.rules.values(), now, self.faults)
        self._bound = (now, view, self.answered, self.finished)
        return view

    def _fresh(self, when: float, answered: int, now: float) -> bool:
        """Whether a figure worked out at `when` still stands: a schedule of 1,000 batches takes ms."""
        age = now - when
        return 0 <= age < MIN_RECOMPUTE_S or (0 <= age < RECOMPUTE_S and answered == self.answered)

    def expected_gap(self, now: float) -> float:
        """The longest quiet spell a healthy run may have now: a service time, or a 429's wait."""
        gap = bound.service_time(self.service_ms) or 0.0
        for bar in self.attempts[-64:]:
            until = self.waiting_until(bar, now)
            if until is not None and bar.end is not None and bar.state == THROTTLED:
                gap = max(gap, self._retry_after.get((bar.batch, bar.attempt), 0.0))
        return gap

    def display_status(self, now: float) -> str:
        if not self.finished:
            quiet = now - self.last_ts
            gap = self.expected_gap(now)
            if quiet > max(LOST_AFTER, 10 * gap):
                return LOST
            if quiet > max(STALLED_AFTER, 3 * gap):
                return STALLED
        return self.status

    def waiting_until(self, att: Attempt, now: float) -> float | None:
        """End of the gap after `att` before its batch's next attempt, or None when no gap."""
        if att.state not in (THROTTLED, FAILED) or att.end is None:
            return None
        if att.next_start is not None:
            return att.next_start
        if self.finished or not att.retryable() or self.fold.is_stored(att.batch):
            return None
        return max(now, att.end)
