"""The stream's connection as the model keeps it: up or down since when, and what a restart reset."""

from __future__ import annotations

import time
from collections.abc import Mapping

import msgspec

from monitor.limiter import format_period
from monitor.stream import CONNECTED
from syncbed.faults import FaultSettings
from syncbed.responses import RuleSettings

DEFAULT_FAULTS = msgspec.structs.asdict(FaultSettings())
Limits = Mapping[str, tuple[int | None, float | None]]


def clock_time(ts: float) -> str:
    """HH:MM:SS of a timestamp, in the terminal's local time."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def ago(ts: float, now: float) -> str:
    """`HH:MM:SS (Ns)`: when, and how long before `now`."""
    return f"{clock_time(ts)} ({max(0.0, now - ts):.0f}s)"


class Link:
    """Follower states in, with the model's clock; says when the data on screen stopped being live."""

    def __init__(self) -> None:
        self.state: str | None = None  # the follower's last state; None: no live stream (a replay, a test)
        self.detail = ""
        self.since: float | None = None  # when `state` began
        self.down_since: float | None = None  # when the last connection broke; None while up
        self.outages = 0
        self.checking = False  # reconnected: the first settings the server sends are compared with ours
        self.reset_note: str | None = None  # what a restart changed behind our back, for the header
        self.reset_at: float | None = None

    @property
    def stale(self) -> bool:
        """The views show what a server said before the stream broke."""
        return self.down_since is not None

    def on_state(self, state: str, detail: str, now: float) -> tuple[str, bool] | None:
        """Take a follower state; returns (log line, is it bad news) when the stream broke or came back."""
        was_up = self.state == CONNECTED
        self.detail = detail
        if state != self.state:
            self.state, self.since = state, now
        if was_up and state != CONNECTED:
            self.down_since = now
            self.outages += 1
            self.checking = False
            return f"stream lost ({state}): {detail}; what is shown is stale", True
        if state == CONNECTED and not was_up and self.down_since is not None:
            down, self.down_since = now - self.down_since, None
            self.checking = True
            return f"stream back after {down:.1f} s down (outage {self.outages})", False
        return None

    def on_settings(
        self, now: float, faults: Mapping[str, float], limits: Limits, new_faults: FaultSettings | None,
        new_rules: list[RuleSettings] | None,
    ) -> str | None:  # fmt: skip
        """The first settings after a reconnect: what differs from what the screen showed, if anything."""
        if not self.checking or (new_faults is None and new_rules is None):
            return None
        self.checking = False
        changes = []
        if new_faults is not None and faults:
            after = msgspec.structs.asdict(new_faults)
            moved = [f"{k} {faults[k]:g}→{after[k]:g}" for k in after if k in faults and faults[k] != after[k]]
            if moved:
                back = " (back to defaults)" if after == DEFAULT_FAULTS else ""
                changes.append("faults " + ", ".join(moved) + back)
        for rule in new_rules or ():
            limit, period = limits.get(rule.name, (None, None))
            if limit is not None and (limit, period) != (rule.limit, rule.period):
                changes.append(f"{rule.name} {limit}/{format_period(period)}→{rule.limit}/{format_period(rule.period)}")
        if not changes:
            return None
        self.reset_note = "server restarted? " + "; ".join(changes)
        self.reset_at = now
        return self.reset_note
