"""syncbed/faults.py: the one range check of the fault settings, used at start-up and by the admin API."""

from __future__ import annotations

import math

import pytest

from syncbed.faults import FAULT_FIELDS, MAX_DELAY_MS, FaultError, FaultSettings, validate


def test_the_field_names_are_the_structs() -> None:
    assert FAULT_FIELDS == ("latency_ms", "jitter_ms", "error_rate", "reset_rate")
    assert FaultSettings() == FaultSettings(0, 0, 0.0, 0.0)


def test_good_values_come_back_clean() -> None:
    assert validate({"latency_ms": 300.0, "error_rate": 1}) == {"latency_ms": 300, "error_rate": 1.0}
    assert validate({"jitter_ms": MAX_DELAY_MS, "reset_rate": 0}) == {"jitter_ms": MAX_DELAY_MS, "reset_rate": 0.0}
    assert validate({}) == {}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"latency_ms": -1}, "latency_ms", "between 0 and"),
        ({"latency_ms": MAX_DELAY_MS + 1}, "latency_ms", "between 0 and"),
        ({"latency_ms": 1.5}, "latency_ms", "whole number"),
        ({"jitter_ms": True}, "jitter_ms", "whole number"),
        ({"jitter_ms": "10"}, "jitter_ms", "whole number"),
        ({"error_rate": 1.01}, "error_rate", "between 0 and 1"),
        ({"error_rate": math.nan}, "error_rate", "between 0 and 1"),
        ({"reset_rate": None}, "reset_rate", "fraction"),
        ({"drop": 1}, "drop", "unknown fault setting; known: latency_ms, jitter_ms, error_rate, reset_rate"),
    ],
)
def test_a_bad_value_names_its_field(changes: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(FaultError) as caught:
        validate(changes)
    assert caught.value.field == field
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"{field}: ")
