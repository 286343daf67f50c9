"""Per-second counters: buckets by whole second, complete seconds only, a bounded horizon."""

from __future__ import annotations

from monitor.rates import RateSeries


def test_amounts_land_in_the_second_that_holds_them() -> None:
    s = RateSeries()
    s.add(10.0)
    s.add(10.999, 2.0)
    s.add(11.0, 0.5)
    s.add(-0.5)  # floor, not truncation: -0.5 is in second -1
    assert s.series(12.0, 3) == [0.0, 3.0, 0.5]
    assert s.series(0.0, 1) == [1.0]
    assert s.total == 4.5


def test_the_current_second_is_not_complete_yet() -> None:
    s = RateSeries()
    s.add(20.2)
    assert s.last_second(20.9) == 0.0
    assert s.series(20.9, 2) == [0.0, 0.0]
    assert s.last_second(21.0) == 1.0
    assert s.series(21.5, 2) == [0.0, 1.0]


def test_sum_between_includes_both_ends_whole() -> None:
    s = RateSeries()
    for ts in (5.0, 6.5, 7.9, 9.0):
        s.add(ts)
    assert s.sum_between(6.9, 7.1) == 2.0  # seconds 6 and 7
    assert s.sum_between(5.0, 9.0) == 4.0
    assert s.sum_between(9.5, 9.5) == 1.0
    assert s.sum_between(0.0, 1e9) == 4.0  # a span wider than the buckets held: summed from the buckets
    assert s.sum_between(6.0, 1e9) == 3.0  # ... from its first second on


def test_old_seconds_are_pruned_past_the_horizon_and_the_total_keeps_counting() -> None:
    s = RateSeries(horizon=10)
    for sec in range(200):
        s.add(float(sec))
    assert len(s._buckets) <= 10 + 64
    assert s.series(200.0, 10) == [1.0] * 10  # the recent horizon is intact
    assert s.sum_between(0.0, 50.0) == 0.0  # pruned
    assert s.total == 200.0


def test_a_late_amount_for_an_old_second_is_still_counted() -> None:
    s = RateSeries(horizon=10)
    s.add(100.0)
    s.add(95.0)  # arrives out of order, within the horizon
    assert s.series(101.0, 6) == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_clear_forgets_everything() -> None:
    s = RateSeries()
    s.add(3.0, 5.0)
    s.clear()
    assert s.total == 0.0 and s.series(4.0, 2) == [0.0, 0.0]
    s.add(1.0)  # a clock that went back after a clear starts afresh
    assert s.series(2.0, 1) == [1.0]
