from __future__ import annotations

import random

import pytest

from client.policy import Action, Outcome, RetryPolicy

RNG = random.Random(1)


def decide(outcome: Outcome, failures: int = 0, throttled: int = 0, records: int = 1000) -> tuple[Action, float]:
    d = RetryPolicy(max_retries=3).decide(outcome, failures=failures, throttled=throttled, records=records, rng=RNG)
    return d.action, d.delay


def test_success() -> None:
    assert decide(Outcome(200))[0] is Action.DONE
    assert decide(Outcome(201))[0] is Action.DONE


def test_429_waits_retry_after_plus_a_little_jitter_and_costs_no_attempt() -> None:
    for _ in range(50):
        action, delay = decide(Outcome(429, retry_after=0.4), failures=3, throttled=10)
        assert action is Action.THROTTLED
        assert 0.4 <= delay <= 0.4 * 1.05
    assert decide(Outcome(429), throttled=1)[1] >= 1.0  # no retry_after: a default second


def test_a_server_that_never_admits_is_given_up_eventually() -> None:
    assert decide(Outcome(429, retry_after=0.1), throttled=1000)[0] is Action.FAIL


@pytest.mark.parametrize("outcome", [Outcome(503), Outcome(500), Outcome(None, "ReadError"), Outcome(408)])
def test_transient_failures_back_off_up_to_max_retries(outcome: Outcome) -> None:
    for failures in (1, 2, 3):
        action, delay = decide(outcome, failures=failures)
        assert action is Action.BACKOFF
        assert 0 <= delay <= 0.5 * 2 ** (failures - 1)
    action, _ = decide(outcome, failures=4)
    assert action is Action.FAIL


def test_full_jitter_spreads_delays() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    delays = [policy.backoff(6, RNG) for _ in range(500)]
    assert max(delays) <= 8.0 and min(delays) >= 0.0
    assert min(delays) < 1.0 < 7.0 < max(delays)  # uniform over [0, cap], not a fixed schedule


def test_413_splits_unless_a_single_record() -> None:
    assert decide(Outcome(413))[0] is Action.SPLIT
    assert decide(Outcome(413), records=1)[0] is Action.FAIL


@pytest.mark.parametrize("status", [400, 401, 403, 404, 415, 422])
def test_client_errors_fail_at_once_with_the_servers_message(status: int) -> None:
    d = RetryPolicy().decide(
        Outcome(status, "invalid_records", "record 3: url must be http(s)"), failures=0, throttled=0, records=9, rng=RNG
    )
    assert d.action is Action.FAIL
    assert d.reason == f"HTTP {status} invalid_records: record 3: url must be http(s)"
