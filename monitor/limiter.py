"""The limiter's rules as the monitor knows them: limit, period, hottest keys, 429s."""

from __future__ import annotations

from dataclasses import dataclass, field

from syncbed.events import ServerStats


@dataclass(slots=True)
class RuleView:
    name: str
    limit: int | None = None
    period: float | None = None
    keys: list[tuple[str, int]] = field(default_factory=list)
    throttled: int = 0


class LimiterView:
    """Rules by name, filled from `stats`, `config.changed` and `request.throttled` events."""

    def __init__(self) -> None:
        self.rules: dict[str, RuleView] = {}

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
        for item in ev.rules or ():
            self.set_rule(item.name, item.limit, item.period)
        for name, top in ev.limiter.items():
            self.rule(name).keys = sorted(((k.key, k.count) for k in top), key=lambda p: -p[1])
        for name, view in self.rules.items():
            if name not in ev.limiter:
                view.keys = []

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
