"""The ETA estimator on a fake clock: the physics bound for what is left, the busy slots, the failures, the pace."""

from __future__ import annotations

import io
import json

import pytest

from client.eta import EVERY, EtaEstimator, Window
from client.progress import JsonProgress
from client.result import Progress

START = 1_000_000.0  # a window edge of a 1 s rule


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def answered_burst(eta: EtaEstimator, clock: Clock, n: int, latency: float, fail: int = -1) -> None:
    """n sends now, all answered `latency` later (the one at index `fail` with a 503)."""
    sends = [clock.now + i * 1e-6 for i in range(n)]
    for t in sends:
        eta.sent(t)
    clock.now += latency
    for i, t in enumerate(sends):
        eta.answered(t, latency, ok=i != fail, failed=i == fail)


def seed_window(used: int) -> Window:
    return Window("sync/user", 5, 1.0, index=int(START), used=used)


def test_unknown_until_an_acknowledgement_and_zero_when_nothing_is_left() -> None:
    clock = Clock()
    eta = EtaEstimator(clock)
    assert eta.estimate(0, 10, 5, []) is None
    eta.sent(clock.now)
    eta.answered(clock.now, 0.3, ok=False, failed=True)
    assert eta.estimate(0, 10, 5, []) is None  # a 503's duration is not a service time
    done = eta.estimate(10, 0, 5, [])
    assert done is not None and done.eta == 0


def test_under_the_seed_limit_the_batches_left_wait_for_their_windows() -> None:
    clock = Clock()
    eta = EtaEstimator(clock)
    answered_burst(eta, clock, 5, 0.3)  # window 0 spent; now 0.3 s into it
    e = eta.estimate(5, 45, 10, [seed_window(5)])
    # 45 left at 5 a window from the edge 0.7 s away: 9 windows, the last answered 0.3 s after it opens.
    assert e is not None and e.bound == pytest.approx(0.7 + 8 + 0.3) and e.pace == 1.0


def test_batches_in_flight_hold_their_slots_and_are_not_sent_again() -> None:
    clock = Clock()
    eta = EtaEstimator(clock)
    answered_burst(eta, clock, 4, 1.0)
    for _ in range(3):  # three in flight, sent now: due in 1 s
        eta.sent(clock.now)
    clock.now += 0.5
    e = eta.estimate(4, 3 + 8, 4, [])
    # 1 slot free now, 3 free at +0.5: 8 unsent go as 1 at 0, 3 at 0.5, then 1 at 1.0 and 3 at 1.5.
    assert e is not None and e.bound == pytest.approx(2.5)


def test_the_share_of_failed_attempts_counts_as_extra_sends() -> None:
    bounds = []
    for fail in (-1, 2):
        clock = Clock()
        eta = EtaEstimator(clock)
        answered_burst(eta, clock, 5, 0.3)
        clock.now = START + 1.0
        answered_burst(eta, clock, 5, 0.3, fail=fail)
        e = eta.estimate(10, 10, 5, [Window("sync/user", 5, 1.0, index=int(START) + 1, used=5)])
        assert e is not None
        bounds.append((eta.failure_share, e.bound))
    # 10 batches left are 10 sends, two windows; with 1 attempt in 10 failing, 11: a third window.
    assert bounds == [(0.0, pytest.approx(0.7 + 1 + 0.3)), (pytest.approx(0.1), pytest.approx(0.7 + 2 + 0.3))]


def test_between_computations_the_estimate_counts_down() -> None:
    clock = Clock()
    eta = EtaEstimator(clock)
    answered_burst(eta, clock, 5, 0.3)
    first = eta.estimate(5, 45, 10, [seed_window(5)])
    clock.now += EVERY / 2
    later = eta.estimate(5, 45, 10, [])  # not recomputed (no rule now would change it): counted down
    assert first is not None and later is not None
    assert later.eta == pytest.approx(first.eta - EVERY / 2)


def test_a_run_slower_than_its_bound_gets_a_pace_above_one() -> None:
    clock = Clock()
    eta = EtaEstimator(clock)
    left = 100
    answered_burst(eta, clock, 10, 0.1)
    left -= 10
    first = eta.estimate(100 - left, left, 10, [])
    assert first is not None and first.pace == 1.0
    for _ in range(20):  # rounds of 10 that take 0.2 s each against a service time of 0.1 s
        for t in [clock.now + i * 1e-6 for i in range(10)]:
            eta.sent(t)
            eta.answered(t, 0.1, ok=True)
        clock.now += 0.2
        left -= 3 if left > 3 else 0  # only 3 of each round count: the run is slower than its bound
        e = eta.estimate(100 - left, left, 10, [])
    assert e is not None and e.pace > 1.2 and e.eta == pytest.approx(e.bound * e.pace)


def progress(done: int, throttled: int = 0, total: int = 4) -> Progress:
    return Progress(done * 10, total * 10, done, 0, total, 1, throttled, 0, 1.0, 10.0, 1.0, 1.0, 1.0)


def test_json_progress_writes_a_line_per_answered_batch_and_few_others() -> None:
    out = io.StringIO()
    t = [0.0]
    lines = JsonProgress(out, every=0.1, now=lambda: t[0])
    lines(progress(1))
    lines(progress(2))  # another batch: written at once
    lines(progress(2))  # nothing changed
    lines(progress(2, throttled=1))  # a 429 within 0.1 s: not written
    t[0] = 0.2
    lines(progress(2, throttled=2))  # a 429 later on: written
    lines(progress(4, throttled=2))
    written = [json.loads(line)["progress"] for line in out.getvalue().splitlines()]
    assert [(p["batches_done"], p["throttled"]) for p in written] == [(1, 0), (2, 0), (2, 2), (4, 2)]
    assert written[-1]["fraction"] == 1.0 and set(written[0]) >= {"eta", "bound", "pace", "elapsed"}
