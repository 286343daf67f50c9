"""The pure algorithms: Rack::Attack parity, exactness, and retry_after told truthfully (clock injected)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.limiter import FixedWindow, Gcra, SlidingWindow, make_algorithm

T0 = 1_700_000_400.0  # an epoch instant on a 1 s, 5 s and 60 s boundary
ALL = ("fixed_window", "sliding_window", "gcra")


# --- fixed window: Rack::Attack's semantics -------------------------------------------------------


def test_fixed_window_refuses_the_sixth_of_five_and_counts_refusals() -> None:
    fw = FixedWindow(5, 1.0)
    now = T0 + 0.25
    got = [fw.hit("alice", now) for _ in range(7)]
    assert [d.allowed for d in got] == [True] * 5 + [False] * 2
    assert [d.count for d in got] == [1, 2, 3, 4, 5, 6, 7]  # refused requests count, as Rack::Attack's do
    assert [d.remaining for d in got] == [4, 3, 2, 1, 0, 0, 0]
    assert got[5].retry_after == pytest.approx(0.75)  # period - now % period
    assert got[5].reset == pytest.approx(0.75)
    assert got[0].retry_after == 0.0


def test_fixed_window_is_epoch_aligned_and_resets_at_the_boundary() -> None:
    fw = FixedWindow(2, 60.0)
    assert fw.window(T0 + 59.999) == fw.window(T0)
    assert fw.window(T0 + 60.0) == fw.window(T0) + 1
    assert [fw.hit("k", T0 + 30).allowed for _ in range(3)] == [True, True, False]
    assert fw.hit("k", T0 + 59.9).allowed is False
    assert fw.hit("k", T0 + 60.0).allowed is True  # new window: counting starts over
    assert fw.hit("k", T0 + 60.0).count == 2


def test_fixed_window_admits_twice_the_limit_across_a_boundary() -> None:
    # The documented weakness: limit just before the boundary, limit just after.
    for name, most in (("fixed_window", 10), ("sliding_window", 5), ("gcra", 5)):
        alg = make_algorithm(name, 5, 1.0)
        admitted = sum(alg.hit("k", T0 + 0.995).allowed for _ in range(10))
        admitted += sum(alg.hit("k", T0 + 1.005).allowed for _ in range(10))
        assert admitted == most, name


def test_keys_are_independent() -> None:
    for name in ALL:
        alg = make_algorithm(name, 3, 1.0)
        assert sum(alg.hit("a", T0).allowed for _ in range(5)) == 3
        assert sum(alg.hit("b", T0).allowed for _ in range(5)) == 3


@pytest.mark.parametrize("name", ALL)
def test_exactly_limit_of_many_at_one_instant(name: str) -> None:
    alg = make_algorithm(name, 37, 60.0)
    assert sum(alg.hit("k", T0 + 12.5).allowed for _ in range(200)) == 37


@pytest.mark.parametrize("name", ALL)
def test_limit_zero_refuses_everything(name: str) -> None:
    alg = make_algorithm(name, 0, 1.0)
    d = alg.hit("k", T0 + 0.5)
    assert not d.allowed and d.retry_after > 0 and d.remaining == 0


def test_unknown_algorithm_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="leaky"):
        make_algorithm("leaky", 1, 1.0)


# --- sliding window -------------------------------------------------------------------------------


def test_sliding_window_weights_the_previous_window() -> None:
    sw = SlidingWindow(5, 1.0)
    assert sum(sw.hit("k", T0 + 0.9).allowed for _ in range(5)) == 5
    # Half-way through the next window half of the previous 5 still count: 2.5 + 2 + 1 > 5.
    got = [sw.hit("k", T0 + 1.5) for _ in range(3)]
    assert [d.allowed for d in got] == [True, True, False]
    assert got[1].remaining == 0 and got[1].count == 5  # ceil(2.5 + 2)
    # Refused requests do not count; the estimate decays to room for one more at 1.7: 5 * 0.3 + 2 + 1 = 4.5.
    assert got[2].retry_after == pytest.approx(0.1)
    assert sw.hit("k", T0 + 1.6 - 0.01).allowed is False
    assert sw.hit("k", T0 + 1.6 + 0.01).allowed is True


def test_sliding_window_retry_after_can_cross_the_boundary() -> None:
    sw = SlidingWindow(4, 10.0)
    assert sum(sw.hit("k", T0 + 1.0).allowed for _ in range(6)) == 4
    d = sw.hit("k", T0 + 2.0)
    # Needs 4 * (1 - e/10) + 1 <= 4 in the next window: e >= 2.5, so 8 + 2.5 seconds from now.
    assert not d.allowed and d.retry_after == pytest.approx(10.5)
    assert d.reset >= d.retry_after


# --- gcra -----------------------------------------------------------------------------------------


def test_gcra_bursts_to_the_limit_then_spaces_requests_evenly() -> None:
    g = Gcra(5, 1.0)
    got = [g.hit("k", T0) for _ in range(6)]
    assert [d.allowed for d in got] == [True] * 5 + [False]
    assert [d.remaining for d in got[:5]] == [4, 3, 2, 1, 0]
    assert got[5].retry_after == pytest.approx(0.2)
    assert got[4].reset == pytest.approx(1.0)  # the bucket is empty again after a full period
    assert g.hit("k", T0 + 0.19).allowed is False
    assert g.hit("k", T0 + 0.2).allowed is True
    assert g.hit("k", T0 + 0.3).allowed is False


@pytest.mark.parametrize(("limit", "period"), [(3000, 1.0), (7, 1.0), (23, 60.0), (1, 0.001)])
def test_gcra_burst_is_exact_when_the_period_does_not_divide(limit: int, period: float) -> None:
    g = Gcra(limit, period)
    assert sum(g.hit("k", T0 + 0.3).allowed for _ in range(limit + 50)) == limit


def test_gcra_set_limit_changes_the_spacing() -> None:
    g = Gcra(2, 1.0)
    g.set_limit(10)
    assert sum(g.hit("k", T0).allowed for _ in range(20)) == 10
    assert g.interval_us == 100_000


# --- properties: retry_after is exact, short bursts are bounded -----------------------------------

steps = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=1.5), st.sampled_from(["a", "b"])), min_size=1, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(ALL),
    limit=st.integers(min_value=1, max_value=8),
    period=st.sampled_from([0.5, 1.0, 3.0, 60.0]),
    script=steps,
)
def test_retry_after_is_the_truth(name: str, limit: int, period: float, script: list[tuple[float, str]]) -> None:
    """When refused, a request a bit before now+retry_after is refused too; one just after passes."""
    alg = make_algorithm(name, limit, period)
    now = T0 + 0.123
    for fraction, key in script:
        now += fraction * period / limit
        d = alg.hit(key, now)
        if d.allowed:
            assert d.retry_after == 0.0
            assert 0 <= d.remaining < limit or limit == 0
            continue
        margin = period * 1e-3
        assert d.retry_after > 0 and d.reset >= d.retry_after - 1e-9
        if d.retry_after > 2 * margin and name != "fixed_window":
            # Refusals do not count here, so probing does not move the answer.
            assert not alg.hit(key, now + d.retry_after - margin).allowed
        now += d.retry_after + margin
        assert alg.hit(key, now).allowed


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(["sliding_window", "gcra"]),
    limit=st.integers(min_value=1, max_value=10),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.3), min_size=1, max_size=80),
)
def test_no_instant_burst_beyond_the_limit(name: str, limit: int, gaps: list[float]) -> None:
    """In any span of d seconds, sliding_window and gcra admit at most limit + floor(d * limit / period)."""
    period = 1.0
    alg = make_algorithm(name, limit, period)
    now, admitted = T0 + 0.5, []
    for gap in gaps:
        now += gap
        if alg.hit("k", now).allowed:
            admitted.append(now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - start
            if span >= period:
                break
            assert j - i + 1 <= limit + int(span * limit / period + 1e-4)


def test_top_lists_the_hottest_keys_with_their_reset() -> None:
    for name in ALL:
        alg = make_algorithm(name, 100, 10.0)
        for key, n in (("a", 5), ("b", 9), ("c", 1)):
            for _ in range(n):
                alg.hit(key, T0 + 1.0)
        top = alg.top(2, T0 + 1.0)
        assert [(u.key, u.count) for u in top] == [("b", 9), ("a", 5)], name
        assert all(0 < u.reset <= 10.0 for u in top)
        alg.clear()
        assert alg.top(2, T0 + 1.0) == []


def test_state_is_swept_after_keys_go_quiet() -> None:
    sw, g = SlidingWindow(5, 1.0), Gcra(5, 1.0)
    for i in range(100):
        sw.hit(f"k{i}", T0 + 0.1)
        g.hit(f"k{i}", T0 + 0.1)
    sw.hit("late", T0 + 5.0)
    g.hit("late", T0 + 5.0)
    assert list(sw._state) == ["late"]
    assert list(g._tat) == ["late"]
