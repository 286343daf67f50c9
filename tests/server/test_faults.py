"""Faults: validation, the draw, latency (unit level; the live server tests are further down)."""

from __future__ import annotations

import random

import pytest

from server.faults import FaultError, Faults


def test_defaults_are_harmless() -> None:
    assert Faults().snapshot() == {"latency_ms": 0, "jitter_ms": 0, "error_rate": 0.0, "reset_rate": 0.0}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms", -1),
        ("latency_ms", 1.5),
        ("latency_ms", "300"),
        ("latency_ms", True),
        ("jitter_ms", 10**9),
        ("error_rate", 1.01),
        ("error_rate", float("nan")),
        ("reset_rate", -0.1),
        ("reset_rate", None),
        ("bogus", 1),
    ],
)
def test_update_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    faults = Faults()
    with pytest.raises(FaultError) as info:
        faults.update(**{"error_rate": 0.5, field: value})
    assert info.value.field == field and field in str(info.value)
    assert faults.error_rate == 0.0  # all or nothing


def test_update_applies_a_subset() -> None:
    faults = Faults(latency_ms=10)
    assert faults.update(error_rate=1, jitter_ms=5.0) == {
        "latency_ms": 10,
        "jitter_ms": 5,
        "error_rate": 1.0,
        "reset_rate": 0.0,
    }


def test_draw_rates() -> None:
    faults = Faults(error_rate=0.25, reset_rate=0.25, rng=random.Random(7))
    draws = [faults.draw() for _ in range(4000)]
    assert 800 < draws.count("error") < 1200 and 800 < draws.count("reset") < 1200
    assert Faults(error_rate=1, reset_rate=1).draw() == "error"
    assert Faults(reset_rate=1).draw() == "reset"
    assert Faults().draw() == "ok"


async def test_before_store_sleeps_latency_plus_jitter() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    faults = Faults(latency_ms=300, jitter_ms=100, rng=random.Random(1), sleep=fake_sleep)
    for _ in range(50):
        assert await faults.before_store() == "ok"
    assert all(0.3 <= s <= 0.4 for s in slept) and len(slept) == 50
    assert max(slept) - min(slept) > 0.05

    no_delay = Faults(sleep=fake_sleep)
    await no_delay.before_store()
    assert len(slept) == 50


def test_from_settings() -> None:
    class Settings:
        latency_ms = 5
        jitter_ms = 1
        error_rate = 0.1
        reset_rate = 0.2

    assert Faults.from_settings(Settings()).snapshot()["reset_rate"] == 0.2
