"""When may the next send start: the shared gate, the paced quota and the concurrency limit.

A thin async layer over the pure pacers. Workers queue on one FIFO lock, so a
429 holds all of them at once and they leave the gate one by one, never in a
stampede of independent sleepers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from client.cubic import LossPacer, concurrency_for
from client.pacing import Gate, WindowPacer
from client.ratelimit_fields import Policy, Remaining
from client.window_learner import WindowLearner
from syncbed.contract import ADAPTIVE, AGGRESSIVE, CONSERVATIVE, SEQUENTIAL

MODES: dict[str, int] = {SEQUENTIAL: 1, CONSERVATIVE: 5, AGGRESSIVE: 10}  # the fixed modes and their concurrency
ADAPTIVE_CAP = 16  # adaptive's ceiling on requests in flight, unless --concurrency says otherwise
# Adaptive's first sends before it knows anything: aggressive's, so wide limits cost it nothing, and a
# burst whose refusals (at most this less the quota) tell the quota of a server that advertises none.
INITIAL_BURST = 10


class Scheduler:
    """Hands out send slots; learns from every answer."""

    def __init__(
        self,
        mode: str,
        concurrency: int | None = None,
        *,
        use_fields: bool = True,
        initial_burst: int = INITIAL_BURST,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if mode != ADAPTIVE and mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.adaptive = mode == ADAPTIVE
        self.cap = concurrency or (ADAPTIVE_CAP if self.adaptive else MODES[mode])
        if self.cap < 1:
            raise ValueError("concurrency must be at least 1")
        self.use_fields = use_fields
        self.initial_burst = initial_burst
        self.clock = clock
        self.sleep = sleep
        self.gate = Gate()
        self.windows = WindowPacer()
        self.loss = LossPacer(clock()) if self.adaptive else None
        self.learner = WindowLearner() if self.adaptive else None
        self.fields_seen = False  # the server advertised a policy: what the learner infers is not needed
        self._learned: str | None = None  # the learner's policy's name in `windows`
        self.latency = 0.0  # EWMA of acknowledged sends, seconds
        self.answered = False
        self.in_flight = 0
        self.peak = 0
        self._line = asyncio.Lock()
        self._freed = asyncio.Event()

    # --- decisions ---------------------------------------------------------
    def limit(self) -> int:
        """How many sends may be in flight now."""
        if not self.adaptive:
            return self.cap
        if self.windows.known:
            # The quota bounds the burst; in-flight only needs to be big enough to spend it.
            return self.cap
        if not self.answered:
            return min(self.cap, self.initial_burst)
        assert self.loss is not None
        if not self.loss.enabled:
            return self.cap
        return concurrency_for(self.loss.rate, self.latency, self.cap)

    def delay(self, now: float) -> float:
        wait = self.gate.delay(now)
        if self.windows.known:
            wait = max(wait, self.windows.delay(now))
        elif self.loss is not None:
            wait = max(wait, self.loss.delay(now))
        return wait

    @property
    def rate(self) -> float:
        """The send rate being held to, requests per second (inf: none)."""
        if self.windows.known:
            policy = self.windows.tightest()
            return math.inf if policy is None else policy.quota / policy.window
        if self.loss is not None and self.loss.enabled:
            return self.loss.rate
        return math.inf

    # --- async slots -------------------------------------------------------
    async def acquire(self) -> float:
        """Wait for a slot; returns the wall-clock send time."""
        async with self._line:
            while True:
                now = self.clock()
                wait = self.delay(now)
                if wait > 0:
                    await self.sleep(wait)
                    continue
                if self.in_flight >= self.limit():
                    self._freed.clear()
                    await self._freed.wait()
                    continue
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                self.windows.on_send(now)
                if self.learner is not None:
                    self.learner.on_send(now)
                if self.loss is not None:
                    self.loss.on_send(now)
                return now

    def release(self) -> None:
        self.in_flight -= 1
        self._freed.set()

    # --- learning ----------------------------------------------------------
    def preload(self, policies: Mapping[str, Policy]) -> None:
        """Limits remembered from an earlier run: a hint the first answer corrects."""
        if self.use_fields:
            self.windows.learn(policies, self.clock())
            tightest = self.windows.tightest()
            if self.learner is not None and tightest is not None:
                self.learner.seed(tightest)
                self._learned = tightest.name

    def observe(
        self,
        *,
        sent_at: float,
        status: int | None,
        policies: Mapping[str, Policy],
        remaining: Mapping[str, Remaining],
        seconds: float,
        rule: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Feed one answer (status None: a transport failure); a 429's `rule` and `retry_after` if it said."""
        now = self.clock()
        self.answered = True
        if policies:
            self.fields_seen = True
        learner = None if self.fields_seen else self.learner
        if learner is not None and (
            learner.on_refused(sent_at, now, rule, retry_after) if status == 429 else learner.on_counted(sent_at)
        ):
            self._adopt(now)
        if self.use_fields:
            self.windows.learn(policies, now)
            self.windows.on_response(sent_at, remaining)
            for name, rem in remaining.items():
                # A quota we cannot pace (no policy) is still honoured when it runs out.
                if rem.remaining == 0 and name not in self.windows.windows:
                    self.gate.hold(now + rem.reset)
        if status is not None and 200 <= status < 300:
            self.latency = seconds if self.latency == 0 else 0.8 * self.latency + 0.2 * seconds
        if self.loss is not None and status is not None and (status == 429 or 200 <= status < 300):
            self.loss.on_response(now, status == 429, sent_at)

    def _adopt(self, now: float) -> None:
        """Pace from the learner's policy (it replaces the one it learnt before, under any name)."""
        assert self.learner is not None
        policy = self.learner.policy
        if policy is None:
            return
        if self._learned is not None and self._learned != policy.name:
            self.windows.windows.pop(self._learned, None)
        self._learned = policy.name
        self.windows.learn({policy.name: policy}, now)

    def throttled(self, *, rule: str | None, retry_after: float | None, hold: float, exact: bool = True) -> None:
        """A 429: hold every worker for `hold` seconds and mark its window spent.

        Only a wait to the millisecond (`exact`, the body's) moves where the windows' edges are; a
        whole-second Retry-After, or none, leaves the edges where they are (the epoch's, at first) and
        the pacer's window end, not a second from now, says when to send again."""
        now = self.clock()
        name = rule or self._learned
        if self.windows.known and not exact:
            hold = max(0.0, retry_after - 1.0) if retry_after is not None else 0.0
            retry_after = None
        self.gate.hold(now + hold)
        self.windows.on_throttle(now, name, retry_after or 0.0)
