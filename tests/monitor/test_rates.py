"""Per-second counters: buckets by whole second, complete seconds only, a bounded horizon."""

from __future__ import annotations

from monitor.rates import RateSeries, Samples, span_for, span_label


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


def test_binned_keeps_each_columns_busiest_second_so_a_spike_stays_for_the_whole_span() -> None:
    s = RateSeries()
    s.add(1000.5, 5000.0)  # one spike, then quiet
    span, per_column = span_for(180.0, 30)
    assert (span, per_column) == (180, 6)  # 30 columns of 6 s: three minutes, as labelled
    for later in (1001.0, 1100.0, 1180.0):
        assert max(s.binned(later, span, 30)) == 5000.0  # still drawn 3 minutes on
        assert len(s.binned(later, span, 30)) == 30
    assert max(s.binned(1182.0, span, 30)) == 0.0  # and gone once it is older than the span


def test_span_covers_what_was_seen_in_whole_columns() -> None:
    assert span_for(4.0, 30) == (10, 1)  # at least 10 s
    assert span_for(45.2, 30) == (46, 2)  # 23 columns of 2 s
    assert span_for(1e6, 100) == (180, 2)
    assert span_for(1e6, 7) == (182, 26)  # a narrow panel: a whole number of columns, labelled as such
    assert (span_label(180), span_label(46), span_label(90)) == ("3 min", "46 s", "90 s")


def test_samples_give_nearest_rank_percentiles_of_the_recent_span() -> None:
    s = Samples(horizon=100.0)
    for i in range(1, 101):
        s.add(float(i), float(i))  # value i at time i
    assert s.percentiles(100.0, 100.0) == [50.0, 95.0, 99.0]
    assert s.percentiles(100.0, 9.5) == [95.0, 100.0, 100.0]  # the last ten only
    assert s.percentiles(500.0, 10.0) is None
    s.add(250.0, 7.0)  # the horizon drops what is older than 100 s before the newest
    assert s.percentiles(250.0, 1000.0) == [7.0, 7.0, 7.0]
