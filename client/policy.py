"""Retry decisions: what to do with one answer (or failure) to one batch send. Pure."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from syncbed.contract import is_temporary


class Action(enum.Enum):
    DONE = "done"  # acknowledged: drop the records from the outbox
    THROTTLED = "throttled"  # 429: hold every worker for retry_after, then resend (free)
    BACKOFF = "backoff"  # transient: resend after an exponential, fully jittered delay
    SPLIT = "split"  # 413: send the two halves instead
    FAIL = "fail"  # permanent: keep the records, report the reason


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one send produced: an HTTP status, or a transport error (status None)."""

    status: int | None
    error: str = ""  # server `error` code, or the exception class name
    message: str = ""  # server `message`, or the exception text
    retry_after: float | None = None
    rule: str | None = None  # the throttle a 429 names
    exact: bool = False  # retry_after is the body's (to the millisecond), not a whole-second Retry-After


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Full-jitter exponential backoff (delay = U(0,1)·min(cap, base·2^(n-1))) up to `max_retries`."""

    max_retries: int = 8
    base: float = 0.5
    cap: float = 30.0
    throttle_jitter: float = 0.05  # at most this share of retry_after is added, so waiters spread
    default_retry_after: float = 1.0
    max_throttled: int = 1000  # a batch refused this often is given up (a server that never admits)

    def backoff(self, failures: int, rng: random.Random) -> float:
        return rng.random() * min(self.cap, self.base * 2 ** max(0, failures - 1))

    def decide(self, outcome: Outcome, *, failures: int, throttled: int, records: int, rng: random.Random) -> Decision:
        """`failures` counts transient failures of this batch so far, this one included."""
        status = outcome.status
        if status is not None and 200 <= status < 300:
            return Decision(Action.DONE)
        if status == 429:
            if throttled >= self.max_throttled:
                return Decision(Action.FAIL, reason=f"still rate limited after {throttled} tries")
            wait = outcome.retry_after if outcome.retry_after is not None else self.default_retry_after
            wait = max(0.0, wait)
            return Decision(Action.THROTTLED, wait + rng.random() * self.throttle_jitter * wait)
        if status == 413 and records > 1:
            return Decision(Action.SPLIT, reason=_describe(outcome))
        if is_temporary(status):
            if failures > self.max_retries:
                return Decision(Action.FAIL, reason=f"gave up after {self.max_retries} retries: {_describe(outcome)}")
            return Decision(Action.BACKOFF, self.backoff(failures, rng), _describe(outcome))
        return Decision(Action.FAIL, reason=_describe(outcome))


def _describe(outcome: Outcome) -> str:
    """`HTTP 422 invalid_records: message` or `ReadError: text`."""
    head = f"HTTP {outcome.status}" if outcome.status is not None else "network error"
    parts = [p for p in (outcome.error, outcome.message) if p]
    return f"{head} {': '.join(parts)}".strip() if parts else head
