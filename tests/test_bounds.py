"""A throttle rule's limit and period: one check, with the field and the reason in its error."""

from __future__ import annotations

import pytest

from syncbed.bounds import MAX_LIMIT, MAX_PERIOD_S, MIN_LIMIT, MIN_PERIOD_S, BoundsError, RuleValues, rule_values


def test_nothing_given_is_nothing_checked() -> None:
    assert rule_values() == RuleValues(None, None)
    assert rule_values(limit=5) == RuleValues(5, None)
    assert rule_values(period=2) == RuleValues(None, 2.0)


@pytest.mark.parametrize(
    ("period", "seconds"),
    [
        ("250ms", 0.25),
        ("1s", 1.0),
        (" 1.5 s ", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("7d", MAX_PERIOD_S),
        ("30", 30.0),
        ("1ms", MIN_PERIOD_S),
        (60, 60.0),
        (0.5, 0.5),
    ],
)
def test_a_period_is_a_duration_or_seconds(period: object, seconds: float) -> None:
    assert rule_values(period=period).period == pytest.approx(seconds)


@pytest.mark.parametrize("limit", [MIN_LIMIT, 10, MAX_LIMIT])
def test_a_limit_in_range_is_kept(limit: int) -> None:
    assert rule_values(limit=limit).limit == limit


@pytest.mark.parametrize(
    ("limit", "words"),
    [
        (0, f"must be from {MIN_LIMIT} to {MAX_LIMIT}, got 0"),
        (MAX_LIMIT + 1, "must be from"),
        (-3, "got -3"),
        (True, "expected a whole number"),
        (2.0, "expected a whole number"),
        ("10", "got '10'"),
    ],
)
def test_a_bad_limit_names_the_field(limit: object, words: str) -> None:
    with pytest.raises(BoundsError) as caught:
        rule_values(limit=limit)
    assert caught.value.field == "limit"
    assert words in caught.value.reason
    assert str(caught.value) == f"limit: {caught.value.reason}"


@pytest.mark.parametrize(
    ("period", "words"),
    [
        ("0.5ms", "must be from 1 ms to 7 days"),
        ("8d", "got '8d'"),
        (0, "must be from"),
        (-1, "must be from"),
        (float("inf"), "must be from"),
        (float("nan"), "must be from"),
        (10**400, "must be from"),  # past float's range: JSON allows it
        (1e-300, "must be from"),
        ("5 minutes", "expected a duration"),
        ("1e3", "expected a duration"),
        ("-1s", "expected a duration"),
        (True, "expected a duration"),
        ([], "expected a duration"),
    ],
)
def test_a_bad_period_names_the_field(period: object, words: str) -> None:
    with pytest.raises(BoundsError) as caught:
        rule_values(period=period)
    assert caught.value.field == "period"
    assert words in caught.value.reason, caught.value.reason


def test_a_bounds_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^limit: "):
        rule_values(limit=0, period="1s")
