"""Pure pacing decisions: the shared 429 gate and the RateLimit-driven window pacer.

Every method takes `now` (wall-clock seconds): fixed windows are aligned to the
epoch (floor(now/W)), so the pacer reasons in the same clock as the server.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from client.ratelimit_fields import Policy, Remaining


class Gate:
    """One hold shared by every worker: nobody sends before `until`."""

    def __init__(self) -> None:
        self.until = -math.inf

    def hold(self, until: float) -> None:
        """Extend the hold; a shorter one never cuts a longer one short."""
        self.until = max(self.until, until)

    def delay(self, now: float) -> float:
        return max(0.0, self.until - now)


@dataclass(slots=True)
class _Window:
    policy: Policy
    phase: float = 0.0  # where the server's window edges fall, mod the window length
    index: int | None = None  # which window `used` counts
    used: int = 0


class WindowPacer:
    """Spends each advertised fixed-window quota right after the window opens.

    A send is allowed when every known policy has quota left in its current
    window, and never just before an edge (`guard`) or just after it
    (`margin`), so clock jitter cannot count a request in the wrong window.
    """

    def __init__(self, margin: float = 0.002, guard: float = 0.02) -> None:
        self.margin = margin
        self.guard = guard
        self.windows: dict[str, _Window] = {}
        # Recent send times: a policy first seen mid-window must count what was already sent in it.
        self._sent: deque[float] = deque(maxlen=4096)

    @property
    def known(self) -> bool:
        return bool(self.windows)

    def learn(self, policies: Mapping[str, Policy], now: float) -> None:
        """Add or update policies from a `RateLimit-Policy` field."""
        for name, policy in policies.items():
            current = self.windows.get(name)
            if current is not None and current.policy == policy:
                continue
            if current is None or current.policy.window != policy.window:
                current = self.windows[name] = _Window(policy)
                index, start, _ = self._edges(current, now)
                # A blind send just before the edge may well have reached the server after it.
                early = start - min(self.guard, policy.window / 10)
                current.index, current.used = index, sum(1 for t in self._sent if early <= t <= now)
            current.policy = policy

    def _index(self, window: _Window, t: float) -> int:
        return math.floor((t - window.phase) / window.policy.window)

    def _edges(self, window: _Window, t: float) -> tuple[int, float, float]:
        """(index, start, end) of the window holding t."""
        w = window.policy.window
        index = self._index(window, t)
        start = index * w + window.phase
        return index, start, start + w

    def delay(self, now: float) -> float:
        """Seconds until every policy allows one more send (0: send now)."""
        wait = 0.0
        for window in self.windows.values():
            w = window.policy.window
            margin, guard = min(self.margin, w / 20), min(self.guard, w / 10)
            index, start, end = self._edges(window, now)
            used = window.used if window.index == index else 0
            if now < start + margin:
                wait = max(wait, start + margin - now)
            if used >= window.policy.quota or now > end - guard:
                wait = max(wait, end + margin - now)
        return wait

    def on_send(self, now: float) -> None:
        self._sent.append(now)
        for window in self.windows.values():
            index = self._index(window, now)
            if window.index != index:
                window.index, window.used = index, 0
            window.used += 1

    def on_response(self, sent_at: float, remaining: Mapping[str, Remaining]) -> None:
        """Adopt the server's count when it is higher (other clients share the key)."""
        for name, rem in remaining.items():
            window = self.windows.get(name)
            if window is not None and window.index == self._index(window, sent_at):
                window.used = max(window.used, window.policy.quota - rem.remaining)

    def on_throttle(self, now: float, rule: str | None, retry_after: float) -> None:
        """A 429 names the window's true end: align to it and treat the window as spent."""
        window = self.windows.get(rule or "")
        if window is None:
            return
        w = window.policy.window
        if 0 < retry_after <= w:
            phase = (now + retry_after) % w
            drift = abs(phase - window.phase) % w
            if min(drift, w - drift) > 0.002:
                window.phase = phase
        window.index, window.used = self._index(window, now), window.policy.quota

    def tightest(self) -> Policy | None:
        """The policy with the lowest rate (quota per second), if any."""
        policies = [window.policy for window in self.windows.values()]
        return min(policies, key=lambda p: p.quota / p.window, default=None)
