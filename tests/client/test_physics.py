from __future__ import annotations

import math

import pytest

from client.physics import lower_bound, throughput


def test_seed_figures_from_design() -> None:
    # DESIGN.md section 8: 100 batches, L=0.3, C=5, 5 per 1 s -> about 19.3 s, not the seed's 6 s.
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
