"""A run's physics as the monitor sees it: the rules it meets, its ETA and what binds it (docs/physics.md).

Everything here is pure: the rules come from the limiter view (the server's `stats`), the run's sends
and service times from its events. The server's windows are aligned to its epoch clock, so a
fixed-window rule is `t % period` into its window at time t, and the run's own sends in that window
are what it has used of it.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncbed import physics
from syncbed.contract import SYNC_PATH

if TYPE_CHECKING:
    from monitor.limiter import RuleView
    from monitor.runs import Run


def applies(rule: RuleView) -> bool:
    """Whether a rule counts a sync POST: an enabled throttle on every path or on the sync path."""
    if rule.limit is None or rule.period is None or not rule.period > 0 or rule.limit < 1:
        return False
    if rule.kind != "throttle" or not rule.enabled:
        return False
    return (not rule.paths or SYNC_PATH in rule.paths) and (not rule.methods or "POST" in rule.methods)


def _count(sends: Sequence[float], start: float, end: float) -> int:
    """Sends with start <= ts < end (`sends` sorted)."""
    return bisect.bisect_left(sends, end) - bisect.bisect_left(sends, start)


def enforced(rule: RuleView, admitted: Sequence[float]) -> bool:
    """False when a rule does not hold the run back: it never counts, or let twice its limit through.

    The server lists its rules even when it does not apply them (`--no-limits`, a dry run). With
    limits off its `stats` show traffic and never a hot key of the rule; in a dry run the keys are
    counted but the run gets more than its limit through in one window. Twice, because an
    event's time may fall a hair past the window edge the limiter decided in (the 2x burst at an
    edge is then counted in one window).
    """
    if not rule.counted and rule.silent >= 2:
        return False  # traffic, and never a key of it in the server's stats: it does not count
    if rule.limit is None or rule.period is None or len(admitted) <= 2 * rule.limit:
        return True
    if rule.algorithm != physics.FIXED_WINDOW:
        return True  # only a fixed window is cut where the server cuts it
    windows = Counter(math.floor(t / rule.period) for t in admitted)
    return max(windows.values()) <= 2 * rule.limit


def rules_at(
    views: Iterable[RuleView],
    sends: Sequence[float],
    t: float,
    admitted: Sequence[float] = (),
    limits: Mapping[str, int] | None = None,
) -> list[physics.Rule]:
    """Each rule that counts a sync request as the run finds it at `t`, from its own sends before `t`.

    `admitted`: the run's requests the limiter let through, to leave out a rule the server does not apply.
    `limits`: a limit per rule to use instead of the one it has now (the loosest the run met).
    """
    out = []
    for view in views:
        if not applies(view) or not enforced(view, admitted):
            continue
        assert view.limit is not None and view.period is not None
        period, algorithm = view.period, view.algorithm
        elapsed = math.fmod(t, period)
        if not 0 <= elapsed < period:  # fmod of a float just below a multiple can round up to it
            elapsed = 0.0
        start = t - elapsed
        used = _count(sends, start, t)
        previous = _count(sends, start - period, start) if algorithm == physics.SLIDING_WINDOW else 0
        if algorithm == physics.GCRA:
            used, elapsed = min(_count(sends, t - period, t), view.limit), 0.0
        limit = max(view.limit, (limits or {}).get(view.name, 0))
        out.append(physics.Rule(view.name, limit, period, algorithm, elapsed, used, previous))
    return out


def service_time(ms: Sequence[float]) -> float | None:
    """L: the median server-side service time of the stored batches, in seconds."""
    return statistics.median(ms) / 1000.0 if ms else None


@dataclass(frozen=True, slots=True)
class Physics:
    """The figures the bound needs for one run at one moment."""

    latency: float
    concurrency: int
    left: int  # batches not yet stored
    in_flight: list[float]  # send times of the attempts now open
    rules_now: list[physics.Rule]
    rules_start: list[physics.Rule]
    done: int  # attempts admitted and answered (stored or refused after the limiter let them in)
    took: float  # seconds from the run's start to its latest answer
    failing: float = 0.0  # the fraction of admitted attempts that fail and are sent again


def failing(faults: dict[str, int | float]) -> float:
    """The share of admitted requests the server's injected faults refuse (each is sent again)."""
    rate = float(faults.get("error_rate") or 0) + float(faults.get("reset_rate") or 0)
    return min(0.9, max(0.0, rate))


def physics_of(
    run: Run, views: Iterable[RuleView], now: float, faults: dict[str, int | float] | None = None
) -> Physics | None:
    """None until the run has announced its size and stored a batch (no L before that)."""
    total, size = run.total_records, run.batch_size
    latency = service_time(run.service_ms)
    if total is None or not size or latency is None:
        return None
    views = list(views)
    left = max(0, math.ceil((total - run.records_done) / size))
    sends = run.sends
    started = run.started_at
    return Physics(
        latency=latency,
        # Adaptive announces its ceiling, not what it sends at: the most it had in flight is its C.
        concurrency=max(1, run.lanes.count if run.mode == "adaptive" else run.concurrency or 1),
        left=left,
        in_flight=run.open_starts(),
        rules_now=rules_at(views, sends, now, run.admitted),
        # A limit changed mid-run: the run's bound is the loosest limit it met, so it stays a bound.
        rules_start=rules_at(views, sends[: bisect.bisect_left(sends, started)], started, run.admitted, run.loosest),
        done=run.answered,
        took=max(0.0, (run.last_answer or started) - started),
        failing=failing(faults or {}),
    )


def eta(p: Physics, now: float) -> float:
    """Seconds until the last batch is answered: the bound for the unsent ones, at the run's pace so far.

    Batches already in flight are answered L after they were sent; only the rest wait for slots and rules.
    Each one the server's faults refuse is sent again and spends a request of every rule, so the
    expected number of sends is what is left over the share that succeeds (between two whole numbers,
    the ETA is between their bounds).
    """
    pace = physics.pace(p.took, p.done, p.latency, p.concurrency, p.rules_start)
    busy = [s + p.latency - now for s in p.in_flight]  # their slots free up as they are answered
    sends = max(0.0, p.left / (1.0 - p.failing) - len(p.in_flight))
    low = math.floor(sends)

    def finish(n: int) -> float:
        times = physics.schedule(n, p.latency, p.concurrency, p.rules_now, busy)
        return (times[-1] + p.latency if times else 0.0) * pace

    ahead = finish(low)
    if sends > low:
        ahead += (sends - low) * (finish(low + 1) - ahead)
    return max(0.0, *busy, ahead)


@dataclass(frozen=True, slots=True)
class BoundView:
    """What binds the work left, and how far the run so far is from its own bound."""

    verdict: physics.Verdict
    ratio: float | None  # time so far over the bound for the batches done (None before any)
    whole: bool = False  # nothing left to send: the verdict is the whole run's

    def line(self) -> str:
        v = self.verdict
        if self.whole:
            plural = "es" if v.batches != 1 else ""
            text = f"{v.binds} bound the run: {v.batches:,} batch{plural} needed at least {v.bound:.1f} s"
        else:
            text = v.sentence()
        if self.ratio is not None:
            text += f" · so far {self.ratio:.2f}x the bound"
        return text


def bound_of(
    run: Run, views: Iterable[RuleView], now: float, faults: dict[str, int | float] | None = None
) -> BoundView | None:
    """The bound panel's figures for `run` at `now`, None while L or the run's size is unknown."""
    p = physics_of(run, views, now, faults)
    if p is None:
        return None
    unsent = p.left - len(p.in_flight)
    whole = run.finished or unsent <= 0  # nothing left to send: what bound the whole run
    stored = run.batches_done()  # the ratio is time over the bound for the batches, as the bench's is
    if whole:
        verdict = physics.verdict(stored + len(p.in_flight), p.latency, p.concurrency, p.rules_start)
    else:
        verdict = physics.verdict(unsent, p.latency, p.concurrency, p.rules_now)
    so_far = physics.earliest_finish(stored, p.latency, p.concurrency, p.rules_start)
    took = max(0.0, (run.last_store or run.started_at) - run.started_at)
    ratio = took / so_far if so_far > 0 and took > 0 else None
    return BoundView(verdict, ratio, whole)
