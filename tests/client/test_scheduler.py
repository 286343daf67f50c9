"""The scheduler on a fake clock: slots, the shared 429 gate, field pacing and adaptive's concurrency."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

import pytest

from client.ratelimit_fields import Policy, Remaining
from client.scheduler import ADAPTIVE_CAP, INITIAL_BURST, MODES, Scheduler
from tests.client.fakes import START, Clock


def scheduler(mode: str, clock: Clock, concurrency: int | None = None, *, use_fields: bool = True) -> Scheduler:
    return Scheduler(mode, concurrency, use_fields=use_fields, clock=clock, sleep=clock.sleep)


def answer(
    s: Scheduler,
    clock: Clock,
    status: int,
    *,
    seconds: float = 0.3,
    policies: Mapping[str, Policy] | None = None,
    remaining: Mapping[str, Remaining] | None = None,
) -> None:
    """One answer to a send made just now."""
    s.observe(sent_at=clock(), status=status, policies=policies or {}, remaining=remaining or {}, seconds=seconds)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_fixed_modes_allow_their_concurrency_whatever_they_learn(mode: str) -> None:
    clock = Clock()
    s = scheduler(mode, clock)
    assert s.limit() == s.cap == MODES[mode]
    answer(s, clock, 429)
    assert s.limit() == MODES[mode] and s.loss is None
    assert scheduler(mode, clock, 3).limit() == 3


def test_unknown_modes_and_no_concurrency_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        Scheduler("turbo")
    with pytest.raises(ValueError, match="at least 1"):
        Scheduler("adaptive", -1)


def test_adaptive_sends_a_small_burst_until_the_first_answer_then_its_cap() -> None:
    clock = Clock()
    s = scheduler("adaptive", clock)
    assert s.limit() == INITIAL_BURST and s.rate == math.inf
    answer(s, clock, 200)
    assert s.limit() == ADAPTIVE_CAP  # no fields, no 429 yet: nothing to hold it back


async def test_a_slot_is_waited_for_until_one_is_released() -> None:
    clock = Clock()
    s = scheduler("conservative", clock, 2)
    await s.acquire()
    await s.acquire()
    third = asyncio.ensure_future(s.acquire())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not third.done() and s.in_flight == 2
    s.release()
    await asyncio.wait_for(third, 1)
    assert s.in_flight == 2 and s.peak == 2 and clock.slept == []


async def test_a_429_holds_every_sender_for_the_hold() -> None:
    clock = Clock()
    s = scheduler("aggressive", clock)
    s.throttled(rule=None, retry_after=0.5, hold=0.6)
    assert s.delay(clock()) == pytest.approx(0.6)
    times = [await s.acquire() for _ in range(3)]
    assert times == [pytest.approx(START + 0.6)] * 3  # one wait, then all three go
    assert sum(clock.slept) == pytest.approx(0.6)


async def test_field_pacing_spends_each_window_then_waits_for_the_next_edge() -> None:
    clock = Clock()
    s = scheduler("aggressive", clock)
    s.preload({"sync/user": Policy("sync/user", 2, 1.0)})
    assert s.rate == 2.0
    times = [await s.acquire() for _ in range(3)]
    edge = math.floor(START) + 1
    assert times[:2] == [START, START] and times[2] == pytest.approx(edge + s.windows.margin)


async def test_ignored_fields_leave_the_pace_to_429s() -> None:
    clock = Clock()
    s = scheduler("aggressive", clock, use_fields=False)
    s.preload({"sync/user": Policy("sync/user", 1, 1.0)})
    answer(s, clock, 200, policies={"sync/user": Policy("sync/user", 1, 1.0)})
    assert not s.windows.known and s.rate == math.inf
    assert [await s.acquire() for _ in range(3)] == [START] * 3


async def test_a_spent_quota_without_a_policy_holds_until_its_reset() -> None:
    clock = Clock()
    s = scheduler("aggressive", clock)
    answer(s, clock, 200, remaining={"other": Remaining("other", 0, 2.0)})
    assert await s.acquire() == pytest.approx(START + 2.0)


def test_latency_is_a_moving_average_of_acknowledged_sends() -> None:
    clock = Clock()
    s = scheduler("adaptive", clock)
    answer(s, clock, 200, seconds=0.3)
    answer(s, clock, 503, seconds=5.0)  # not an acknowledgement: not a latency
    answer(s, clock, 200, seconds=0.5)
    assert s.latency == pytest.approx(0.8 * 0.3 + 0.2 * 0.5)


def test_adaptive_without_fields_learns_the_quota_from_its_first_burst_and_paces_from_it() -> None:
    clock = Clock()  # half way through a second
    s = scheduler("adaptive", clock)
    assert s.learner is not None
    for _ in range(8):
        s.windows.on_send(clock())
        s.learner.on_send(clock())
    for _ in range(3):  # refusals come back at once; the 5 admitted are still on their way
        s.observe(sent_at=clock(), status=429, policies={}, remaining={}, seconds=0.001)
        s.throttled(rule=None, retry_after=None, hold=1.0, exact=False)
    assert s.learner.policy == Policy("learned", 5, 1.0)
    assert s.rate == 5.0 and s.limit() == ADAPTIVE_CAP
    # No Retry-After: no 1 s hold from now, the window's own end (the epoch's second) instead.
    assert s.gate.delay(clock()) == 0.0
    assert s.delay(clock()) == pytest.approx(0.5 + s.windows.margin, abs=1e-6)
