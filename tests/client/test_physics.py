from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.physics import lower_bound, schedule_bound, throughput


def test_seed_figures_from_design() -> None:
    # docs/physics.md, the seed's example: 100 batches, L=0.3, C=5, 5 per 1 s -> about 19.3 s, not the seed's 6 s.
    assert lower_bound(100, 0.3, 5, 5, 1.0) == pytest.approx(19.3)
    assert lower_bound(100, 0.3, 5) == pytest.approx(6.0)


def test_concurrency_binds_when_the_limit_is_wide() -> None:
    assert lower_bound(100, 0.3, 10, 50, 1.0) == pytest.approx(3.0)
    assert lower_bound(100, 0.3, 1, 5, 1.0) == pytest.approx(30.0)


def test_partial_rounds_round_up() -> None:
    assert lower_bound(11, 0.3, 5) == pytest.approx(0.9)
    assert lower_bound(6, 0.3, 10, 5, 1.0) == pytest.approx(1.3)


def test_edges() -> None:
    assert lower_bound(0, 0.3, 5, 5, 1.0) == 0.0
    assert lower_bound(1, 0.3, 5, 5, 1.0) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        lower_bound(1, 0.3, 0)
    with pytest.raises(ValueError):
        lower_bound(1, 0.3, 1, 0, 1.0)


def test_throughput_is_the_smaller_of_the_two() -> None:
    assert throughput(0.3, 5, 5, 1.0) == pytest.approx(5.0)
    assert throughput(0.3, 5) == pytest.approx(5 / 0.3)
    assert math.isinf(throughput(0.0, 5))


def test_schedule_bound_when_both_constraints_meet() -> None:
    # 16 in flight for 0.3 s is 53/s, just over 50 per window: the first window's quota runs out at 0.9 s.
    assert schedule_bound(100, 0.3, 16, 50, 1.0) == pytest.approx(2.2)
    assert lower_bound(100, 0.3, 16, 50, 1.0) == pytest.approx(2.1)


@pytest.mark.parametrize(
    ("n", "c", "r"), [(100, 5, 5), (100, 10, 50), (10, 10, 50), (1, 1, 5), (100, 1, 5), (0, 5, 5), (50, 5, 5)]
)
def test_schedule_bound_equals_the_formula_when_one_constraint_binds(n: int, c: int, r: int) -> None:
    assert schedule_bound(n, 0.3, c, r, 1.0) == pytest.approx(lower_bound(n, 0.3, c, r, 1.0))
    assert schedule_bound(n, 0.3, c) == pytest.approx(lower_bound(n, 0.3, c))


@given(
    st.integers(0, 300),
    st.floats(0.01, 2.0),
    st.integers(1, 64),
    st.integers(1, 100),
    st.floats(0.1, 5.0),
)
def test_schedule_bound_is_never_below_the_formula(n: int, latency: float, c: int, r: int, w: float) -> None:
    exact = schedule_bound(n, latency, c, r, w)
    assert exact >= lower_bound(n, latency, c, r, w) - 1e-9
    # and never above what the slower of two separate schedules would need back to back
    assert exact <= math.ceil(n / c) * latency + math.ceil(n / r) * w + latency + 1e-9
