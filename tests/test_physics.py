from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.limiter import make_algorithm
from syncbed.physics import (
    FIXED_WINDOW,
    GCRA,
    SLIDING_WINDOW,
    Rule,
    earliest_finish,
    eta,
    lower_bound,
    pace,
    schedule,
    throughput,
    verdict,
)

SEED = Rule("sync/user", 5, 1.0)


def test_seed_figures() -> None:
    # docs/physics.md: 100 batches, L = 0.3 s, C = 5, 5 per 1 s from a window edge -> 19.3 s, not the seed's 6 s.
    assert earliest_finish(100, 0.3, 5, [SEED]) == pytest.approx(19.3)
    assert lower_bound(100, 0.3, 5, 5, 1.0) == pytest.approx(19.3)
    assert earliest_finish(100, 0.3, 5) == pytest.approx(6.0)


def test_a_late_start_gets_its_second_quota_at_the_next_edge() -> None:
    late = Rule("sync/user", 5, 1.0, elapsed=0.9)
    assert earliest_finish(100, 0.3, 5, [late]) == pytest.approx(18.4)
    assert lower_bound(100, 0.3, 5, 5, 1.0, phase=0.9) == pytest.approx(18.4)
    # the 2x burst: 10 batches in little more than one latency
    assert earliest_finish(10, 0.3, 10, [late]) == pytest.approx(0.1 + 0.3)


def test_a_window_already_used_waits_for_its_edge() -> None:
    spent = Rule("sync/user", 5, 1.0, elapsed=0.5, used=5)
    assert schedule(1, 0.3, 5, [spent]) == [pytest.approx(0.5)]
    half = Rule("sync/user", 5, 1.0, elapsed=0.5, used=3)
    assert schedule(3, 0.3, 5, [half]) == [0.0, 0.0, pytest.approx(0.5)]


def test_batches_in_flight_hold_their_slots_until_answered() -> None:
    # 2 slots of 3 busy until 0.2 s and 0.5 s: the next three go at 0, 0.2 and 0.5.
    assert schedule(3, 1.0, 3, busy=[0.5, 0.2]) == [0.0, pytest.approx(0.2), pytest.approx(0.5)]
    # Nothing left to send: the finish is the last answer in flight; an overdue one is due now.
    assert earliest_finish(0, 1.0, 3, busy=[0.7, -0.1]) == pytest.approx(0.7)
    assert earliest_finish(2, 0.3, 5, [Rule("r", 5, 1.0, elapsed=0.5, used=5)], busy=[0.2]) == pytest.approx(0.8)
    assert earliest_finish(5, 0.3, 5, busy=()) == earliest_finish(5, 0.3, 5)


def test_several_rules_bind_together() -> None:
    # sync/user 5/s and req/ip 8 per 2 s: the tighter one per stretch sets the pace.
    rules = [SEED, Rule("req/ip", 8, 2.0)]
    sends = schedule(12, 0.1, 10, rules)
    assert sends[:5] == [0.0] * 5
    assert sends[5:8] == [pytest.approx(1.0)] * 3
    assert sends[8:] == [pytest.approx(2.0)] * 4
    assert earliest_finish(12, 0.1, 10, rules) >= max(earliest_finish(12, 0.1, 10, [r]) for r in rules)


def test_gcra_spaces_requests_after_its_burst() -> None:
    sends = schedule(7, 0.01, 10, [Rule("g", 5, 1.0, algorithm=GCRA)])
    assert sends[:5] == [0.0] * 5
    assert sends[5:] == [pytest.approx(0.2), pytest.approx(0.4)]


def test_sliding_window_waits_for_the_previous_windows_weight_to_decay() -> None:
    # 4 in the previous window, 0 so far, 0.5 s in: weight 2 now, so 3 more fit at once, then wait.
    rule = Rule("s", 5, 1.0, algorithm=SLIDING_WINDOW, elapsed=0.5, previous=4)
    sends = schedule(4, 0.01, 10, [rule])
    assert sends[:3] == [0.0] * 3
    assert sends[3] == pytest.approx(0.25)  # 4·(1 - 0.75) + 3 + 1 = 5


@pytest.mark.parametrize(("n", "c", "r"), [(100, 5, 5), (100, 10, 50), (10, 10, 50), (1, 1, 5), (100, 1, 5), (0, 5, 5)])
@pytest.mark.parametrize("phase", [0.0, 0.25, 0.9])
def test_the_schedule_equals_the_formula_when_one_constraint_binds(n: int, c: int, r: int, phase: float) -> None:
    rule = Rule("r", r, 1.0, elapsed=phase)
    assert earliest_finish(n, 0.3, c, [rule]) == pytest.approx(lower_bound(n, 0.3, c, r, 1.0, phase))


def test_where_both_constraints_meet_the_schedule_exceeds_the_formula() -> None:
    # 16 in flight for 0.3 s is 53/s, just over 50 per window: the first window's quota runs out at 0.9 s.
    assert earliest_finish(100, 0.3, 16, [Rule("r", 50, 1.0)]) == pytest.approx(2.2)
    assert lower_bound(100, 0.3, 16, 50, 1.0) == pytest.approx(2.1)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        schedule(1, 0.3, 0)
    with pytest.raises(ValueError):
        Rule("r", 0, 1.0)
    with pytest.raises(ValueError):
        Rule("r", 5, 1.0, elapsed=1.0)
    with pytest.raises(ValueError):
        Rule("r", 5, 1.0, algorithm="leaky")
    with pytest.raises(ValueError):
        lower_bound(10, 0.3, 1, 5, 1.0, phase=1.0)


def test_throughput_is_the_smallest_rate() -> None:
    assert throughput(0.3, 5, [SEED]) == pytest.approx(5.0)
    assert throughput(0.3, 5) == pytest.approx(5 / 0.3)
    assert math.isinf(throughput(0.0, 5))


def test_verdict_names_what_binds() -> None:
    v = verdict(100, 0.3, 5, [SEED])
    assert v.binds == "sync/user 5/1s"
    assert v.sentence() == "sync/user 5/1s binds: 100 batches need at least 19.3 s"
    assert verdict(100, 0.3, 5, [Rule("wide", 50, 1.0)]).binds == "concurrency"
    assert verdict(1, 0.3, 5, [SEED]).binds == "latency"


def _replay(rule: Rule, sends: list[float]) -> list[bool]:
    """Send at the schedule's times to the server's own algorithm, started where the rule says."""
    algo = make_algorithm(rule.algorithm, rule.limit, rule.period)
    start = 1000 * rule.period + rule.elapsed  # windows align to the epoch, as the server's do
    if rule.algorithm == SLIDING_WINDOW:
        for _ in range(rule.previous):
            algo.hit("k", 999 * rule.period)
        for _ in range(rule.used):
            algo.hit("k", 1000 * rule.period)
    else:
        for _ in range(rule.used):
            algo.hit("k", start)
    # 2 µs late: the server rounds to whole microseconds, a real client is never closer than that
    return [algo.hit("k", start + t + 2e-6).allowed for t in sends]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([FIXED_WINDOW, SLIDING_WINDOW, GCRA]),
    st.integers(1, 20),
    st.sampled_from([0.5, 1.0, 2.0]),
    st.floats(0.0, 0.99),
    st.integers(0, 5),
    st.integers(0, 60),
    st.floats(0.01, 1.0),
    st.integers(1, 16),
)
def test_the_server_admits_every_send_of_the_schedule(
    algorithm: str, limit: int, period: float, phase: float, used: int, n: int, latency: float, c: int
) -> None:
    used = min(used, limit)
    previous = used if algorithm == SLIDING_WINDOW else 0
    current = 0 if algorithm == SLIDING_WINDOW else used
    rule = Rule("r", limit, period, algorithm, elapsed=phase * period, used=current, previous=previous)
    sends = schedule(n, latency, c, [rule])
    assert all(_replay(rule, sends)), sends
    assert sends == sorted(sends)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 200),
    st.floats(0.01, 2.0),
    st.integers(1, 32),
    st.integers(1, 50),
    st.floats(0.1, 5.0),
    st.floats(0, 0.99),
)
def test_the_schedule_is_never_below_the_formula(
    n: int, latency: float, c: int, r: int, w: float, phase: float
) -> None:
    exact = earliest_finish(n, latency, c, [Rule("r", r, w, elapsed=phase * w)])
    assert exact >= lower_bound(n, latency, c, r, w, phase) - 1e-9
    assert exact <= math.ceil(n / c) * latency + math.ceil(n / r) * w + latency + 1e-9


def test_the_eta_is_the_bound_for_what_is_left_at_the_runs_pace() -> None:
    # 10 of 100 done in 1.43 s where the bound says 1.3: 10% slower, so the 90 left take 10% over their bound.
    p = pace(1.43, 10, 0.3, 5, [SEED])
    assert p == pytest.approx(1.1)
    assert eta(90, 0.3, 5, [SEED], p) == pytest.approx(17.3 * 1.1)
    assert pace(0.1, 10, 0.3, 5, [SEED]) == 1.0  # ahead of the bound is luck of the phase, not a faster physics
    assert pace(0.0, 0, 0.3, 5, [SEED]) == 1.0
    assert eta(0, 0.3, 5, [SEED], 2.0) == 0.0


def test_slots_busy_at_the_start_are_free_only_when_their_requests_are_answered() -> None:
    # 3 slots, 2 of them in flight until 0.1 s and 0.2 s: the next sends take the free one, then those.
    assert schedule(4, 0.3, 3, busy=[0.2, 0.1]) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert schedule(3, 0.3, 3) == schedule(3, 0.3, 3, busy=[])  # nothing busy: as before
    assert schedule(2, 0.3, 1, busy=[0.5, -1.0]) == pytest.approx([0.0, 0.3])  # one slot: the earliest counts
