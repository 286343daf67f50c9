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
from syncbed.contract import ADAPTIVE, AGGRESSIVE, CONSERVATIVE, SEQUENTIAL

MODES: dict[str, int] = {SEQUENTIAL: 1, CONSERVATIVE: 5, AGGRESSIVE: 10}  # the fixed modes and their concurrency
ADAPTIVE_CAP = 16  # adaptive's ceiling on requests in flight, unless --concurrency says otherwise
INITIAL_BURST = 5  # adaptive's first sends before it knows the server's limits (the seed's 5/s)


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
        if self.use_fields and self.windows.known:
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
        if self.use_fields and self.windows.known:
            wait = max(wait, self.windows.delay(now))
        elif self.loss is not None:
            wait = max(wait, self.loss.delay(now))
        return wait

    @property
    def rate(self) -> float:
        """The send rate being held to, requests per second (inf: none)."""
        if self.use_fields and self.windows.known:
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

    def observe(
        self,
        *,
        sent_at: float,
        status: int | None,
        policies: Mapping[str, Policy],
        remaining: Mapping[str, Remaining],
        seconds: float,
    ) -> None:
        """Feed one answer (status None: a transport failure)."""
        now = self.clock()
        self.answered = True
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

    def throttled(self, *, rule: str | None, retry_after: float, hold: float) -> None:
        """A 429: hold every worker for `hold` seconds and align the quota to its window."""
        now = self.clock()
        self.gate.hold(now + hold)
        if self.use_fields:
            self.windows.on_throttle(now, rule, retry_after)
