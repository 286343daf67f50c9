"""A fixed window's quota and length learnt from refusals alone, for servers that advertise nothing. Pure.

Rack::Attack and most servers modelled on it count in windows aligned to the epoch (floor(t / W)) and
admit the first `quota` requests of each. So a window in which some sends were refused tells the
quota exactly: the sends it admitted. Refusals come back at once and admitted sends only after the
service time, so a send still in flight counts as admitted, and each refusal of the same window only
lowers the estimate. A window refused whole says nothing of the quota (someone else spent it). The
window is 1 s until a Retry-After says otherwise (Rack::Attack's `period - epoch_second % period`,
or a plain ceil of the wait), or until two windows in a row are refused whole, which a quota cannot
explain and a longer window can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from client.ratelimit_fields import Policy

LEARNED = "learned"  # the policy's name when the server names no rule (a plain-text 429)
CANDIDATE_WINDOWS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


@dataclass(slots=True)
class _Tally:
    sent: int = 0
    refused: int = 0
    answered: int = 0


def window_for(retry_after: float, now: float) -> float | None:
    """The shortest candidate window whose edge a whole-second Retry-After given at `now` points to."""
    if retry_after < 1 or retry_after != int(retry_after):
        return None
    for w in CANDIDATE_WINDOWS:
        if w < retry_after:
            continue
        rack = w - (math.floor(now) % w)  # Rack::Attack's, over the whole epoch second
        ceil = math.ceil(w - (now % w))  # the exact wait rounded up (RFC 9110's whole seconds)
        if retry_after in (rack, ceil):
            return w
    return None


class WindowLearner:
    """Learns one policy (quota per window) from which sends were refused; `policy` once it knows."""

    def __init__(self, window: float = CANDIDATE_WINDOWS[0]) -> None:
        self.window = window
        self.quota: int | None = None
        self.name = LEARNED
        self._tallies: dict[int, _Tally] = {}
        self._whole: set[int] = set()  # windows whose every send was refused
        self._first: int | None = None  # the window the quota was first estimated in

    def seed(self, policy: Policy) -> None:
        """A policy remembered from an earlier run: refusals of a window someone else spent leave it be."""
        self.name, self.quota, self.window = policy.name, policy.quota, policy.window

    @property
    def policy(self) -> Policy | None:
        return None if self.quota is None else Policy(self.name, self.quota, self.window)

    def _tally(self, t: float) -> _Tally:
        index = math.floor(t / self.window)
        tally = self._tallies.get(index)
        if tally is None:
            tally = self._tallies[index] = _Tally()
            for old in [i for i in self._tallies if i < index - 8]:
                del self._tallies[old]
        return tally

    def on_send(self, sent_at: float) -> None:
        self._tally(sent_at).sent += 1

    def on_counted(self, sent_at: float) -> bool:
        """Any answer but a 429 to the send made at `sent_at` (the limiter counted it); True if the policy changed."""
        before = self.policy
        tally = self._tally(sent_at)
        tally.answered += 1
        self._settle(sent_at, tally, None)
        return self.policy != before

    def on_refused(self, sent_at: float, now: float, rule: str | None, retry_after: float | None) -> bool:
        """A 429 to the send made at `sent_at`; True when the policy changed."""
        before = self.policy
        if rule:
            self.name = rule
        longer = window_for(retry_after, now) if retry_after is not None else None
        if longer is not None and longer > self.window:
            self._regroup(longer)
            self.quota = None  # counted again in the longer window, below
        tally = self._tally(sent_at)
        tally.refused += 1
        tally.answered += 1
        admitted = tally.sent - tally.refused
        if self.quota is None or (self._first == math.floor(sent_at / self.window) and 0 < admitted < self.quota):
            # The first burst's refusals: everything still in flight was admitted (refusals come first).
            self.quota = max(1, admitted)
            self._first = math.floor(sent_at / self.window)
        self._settle(sent_at, tally, retry_after)
        return self.policy != before

    def _settle(self, sent_at: float, tally: _Tally, retry_after: float | None) -> None:
        """Once every send of a window with refusals is answered, its admitted count is the quota."""
        if tally.answered < tally.sent or tally.refused == 0:
            return
        admitted = tally.sent - tally.refused
        index = math.floor(sent_at / self.window)
        if admitted > 0:
            self.quota = admitted
            return
        # Refused whole: it tells nothing of the quota (another client, or the last run, spent the
        # window). Two windows in a row so, with no Retry-After to say more: the window is longer.
        if retry_after is None and index - 1 in self._whole:
            self._regroup(next((w for w in CANDIDATE_WINDOWS if w > self.window), self.window))
            merged = self._tally(sent_at)
            if merged.sent > merged.refused:
                self.quota = merged.sent - merged.refused
        else:
            self._whole.add(index)

    def _regroup(self, window: float) -> None:
        """Count the recent sends again in windows of the new length."""
        old, width = self._tallies, self.window
        self.window, self._tallies, self._whole = window, {}, set()
        for index, tally in old.items():
            new = self._tallies.setdefault(math.floor(index * width / window), _Tally())
            new.sent += tally.sent
            new.refused += tally.refused
            new.answered += tally.answered
