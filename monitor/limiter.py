"""The limiter's rules as the monitor knows them: limit, period, hottest keys, 429s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from syncbed.events import ConfigChanged, ServerStats
from syncbed.physics import FIXED_WINDOW
from syncbed.responses import RuleSettings


@dataclass(slots=True)
class RuleView:
    name: str
    limit: int | None = None
    period: float | None = None
    keys: list[tuple[str, int]] = field(default_factory=list)
    throttled: int = 0
    # What the bound needs to know of it (monitor/bound.py); a rule only heard of by name is a throttle.
    algorithm: str = FIXED_WINDOW
    kind: str = "throttle"
    enabled: bool = True
    paths: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    # Whether it counts at all: the server lists its rules even with limits off (`--no-limits`).
    counted: bool = False  # a stats event showed a hot key of it: it counts
    silent: int = 0  # stats events with traffic but no key of it

    def take(self, settings: RuleSettings | ConfigChanged) -> None:
        """The shape of the rule from the server's stats or a limits edit (absent fields stay)."""
        for name in ("algorithm", "kind", "enabled", "paths", "methods"):
            value = getattr(settings, name)
            if value is not None:
                setattr(self, name, value)


class LimiterView:
    """Rules by name, filled from `stats`, `config.changed` and `request.throttled` events."""

    def __init__(self) -> None:
        self.rules: dict[str, RuleView] = {}
        self.response: str | None = None  # how the server words its 429s (limits.response), once a stats said

    def rule(self, name: str) -> RuleView:
        view = self.rules.get(name)
        if view is None:
            view = self.rules[name] = RuleView(name)
        return view

    def set_rule(self, name: str | None, limit: int | None, period: float | None) -> None:
        if not name:
            return
        view = self.rule(name)
        if limit is not None:
            view.limit = limit
        if period is not None:
            view.period = period

    def on_stats(self, ev: ServerStats) -> None:
        if ev.response is not None:
            self.response = ev.response
        for item in ev.rules or ():
            self.set_rule(item.name, item.limit, item.period)
            self.rule(item.name).take(item)
        for name, top in ev.limiter.items():
            view = self.rule(name)
            view.keys = sorted(((k.key, k.count) for k in top), key=lambda p: -p[1])
            if view.keys:
                view.counted = True
            elif ev.requests_per_s > 0:
                view.silent += 1
        for name, view in self.rules.items():
            if name not in ev.limiter:
                view.keys = []

    def seed(self, rules: Iterable[RuleSettings], enforced: bool = True) -> None:
        """The rules as `GET /api/v1/limiter` lists them, for a model that saw no `stats` (a report)."""
        for item in rules:
            self.set_rule(item.name, item.limit, item.period)
            view = self.rule(item.name)
            view.take(item)
            if not enforced:
                view.enabled = False  # limits off or a dry run: the server lists rules it does not apply

    def on_limits(self, ev: ConfigChanged) -> None:
        name = ev.name or ev.rule
        self.set_rule(name, ev.limit, ev.period)
        if name:
            self.rule(name).take(ev)

    def on_throttled(self, rule: str) -> None:
        self.rule(rule).throttled += 1

    def clear(self) -> None:
        for view in self.rules.values():
            view.keys = []
            view.throttled = 0


def format_period(period: float | None) -> str:
    if period is None:
        return "?"
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if period >= size and period % size == 0:
            return f"{int(period // size)}{unit}"
    return f"{period:g}s"
