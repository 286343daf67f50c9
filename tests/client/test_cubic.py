from __future__ import annotations

import math

import pytest

from client.cubic import Cubic, LossPacer, RateMeter, concurrency_for


def test_meter_smooths_over_half_second_buckets() -> None:
    m = RateMeter()
    for i in range(20):
        m.record(i * 0.1)  # 10 per second
    assert 5 < m.rate <= 11


def test_cubic_drops_to_beta_and_regrows_past_the_old_max() -> None:
    c = Cubic(0.0, 10.0)
    assert c.failure(5.0, 10.0) == pytest.approx(7.0)
    assert c.success(5.0) == pytest.approx(7.0)  # at the cut, the curve starts at beta * w_max
    assert c.success(5.0 + c.k) == pytest.approx(10.0)  # back at the old max after K seconds
    assert c.success(5.0 + 2 * c.k) > 10.0


def test_pacer_is_off_until_the_first_429() -> None:
    p = LossPacer(0.0)
    for i in range(100):
        assert p.delay(i * 0.001) == 0.0
        p.on_send(i * 0.001)
    assert math.isinf(p.rate)


def admit(p: LossPacer, n: int, at: float) -> None:
    for i in range(n):
        p.on_send(at + 0.001 * i)
        p.on_response(at + 0.3 + 0.001 * i, throttled=False, sent_at=at + 0.001 * i)


def test_first_429_enables_the_bucket_below_what_the_server_admitted() -> None:
    p = LossPacer(0.0)
    admit(p, 10, 5.0)  # after a long idle start: idle time must not read as a low rate
    p.on_send(5.31)
    p.on_response(5.32, throttled=True, sent_at=5.31)
    assert p.enabled
    assert p.rate == pytest.approx(7.0)  # 0.7 x the 10 admitted in the last second
    # The bucket starts empty: sends are spaced at the new rate.
    assert p.delay(5.32) == pytest.approx(1 / 7.0)


def test_one_loss_event_cuts_once() -> None:
    p = LossPacer(0.0)
    admit(p, 10, 0.0)
    for i in range(5):
        p.on_send(0.31 + 0.001 * i)
    for i in range(5):  # a burst of 429s, answered one by one: one loss event, not five cuts
        p.on_response(0.35 + 0.001 * i, throttled=True, sent_at=0.31 + 0.001 * i)
    assert p.rate == pytest.approx(7.0)  # 0.7 x the 10 that got through
    p.on_send(0.5)
    p.on_response(0.6, throttled=True, sent_at=0.5)  # a send after the cut: a new loss event
    assert p.rate < 7.0


def test_rate_regrows_on_success_but_never_past_twice_the_measured_rate() -> None:
    p = LossPacer(0.0)
    admit(p, 10, 0.0)
    p.on_send(0.31)
    p.on_response(0.35, throttled=True, sent_at=0.31)
    t, rates = 0.35, []
    while t < 20:
        t += 0.1
        p.on_send(t)
        p.on_response(t, throttled=False, sent_at=t)  # about 10 answers a second
        assert p.rate <= 2 * max(p.meter.rate, p.best) + 1e-9
        rates.append(p.rate)
    assert max(rates) > 12  # grew past the old max of 7
    assert rates[-1] > 7.0


def test_concurrency_follows_rate_times_latency() -> None:
    assert concurrency_for(10.0, 0.3, 16) == 4
    assert concurrency_for(100.0, 0.3, 16) == 16
    assert concurrency_for(0.5, 0.3, 16) == 2
    assert concurrency_for(math.inf, 0.3, 16) == 16


def test_refusals_that_arrive_before_the_admitted_answers_still_give_the_right_cut() -> None:
    # 429s come back at once, 200s only after the latency: the first 429 sees 9 unrefused sends,
    # the fifth sees the truth (5 got through).
    p = LossPacer(0.0)
    for i in range(10):
        p.on_send(0.01 * i)
    for i in range(5, 10):
        p.on_response(0.1 + 0.01 * i, throttled=True, sent_at=0.01 * i)
    assert p.rate == pytest.approx(3.5)
