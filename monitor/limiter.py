"""The limiter's rules as the monitor knows them: limit, period, hottest keys, 429s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RuleView:
    name: str
    limit: int | None = None
    period: float | None = None
    keys: list[tuple[str, int]] = field(default_factory=list)
    throttled: int = 0


def _pairs(value: Any) -> list[tuple[str, int]]:
    """Top keys from [{key, count}], [[key, count]] or {key: count}, hottest first."""
    pairs: list[tuple[str, int]] = []
    if isinstance(value, Mapping):
        items: Any = [{"key": k, "count": v} for k, v in value.items()]
    else:
        items = value if isinstance(value, list) else []
    for item in items:
        try:
            if isinstance(item, Mapping):
                pairs.append((str(item.get("key")), int(item.get("count") or 0)))
            else:
                pairs.append((str(item[0]), int(item[1])))
        except (TypeError, ValueError, IndexError):
            continue
    pairs.sort(key=lambda p: -p[1])
    return pairs


class LimiterView:
    """Rules by name, filled from `stats`, `config.changed` and `request.throttled` events."""

    def __init__(self) -> None:
        self.rules: dict[str, RuleView] = {}

    def rule(self, name: str) -> RuleView:
        view = self.rules.get(name)
        if view is None:
            view = self.rules[name] = RuleView(name)
        return view

    def set_rule(self, item: Mapping[str, Any]) -> None:
        name = item.get("name") or item.get("rule")
        if not name:
            return
        view = self.rule(str(name))
        if item.get("limit") is not None:
            try:
                view.limit = int(item["limit"])
            except (TypeError, ValueError):
                pass
        if item.get("period") is not None:
            try:
                view.period = float(item["period"])
            except (TypeError, ValueError):
                pass

    def on_stats(self, ev: Mapping[str, Any]) -> None:
        rules = ev.get("rules")
        if isinstance(rules, list):
            for item in rules:
                if isinstance(item, Mapping):
                    self.set_rule(item)
        limiter = ev.get("limiter")
        if isinstance(limiter, Mapping):
            seen = set()
            for name, top in limiter.items():
                self.rule(str(name)).keys = _pairs(top)
                seen.add(str(name))
            for name, view in self.rules.items():
                if name not in seen:
                    view.keys = []

    def on_throttled(self, rule: Any) -> None:
        if rule:
            self.rule(str(rule)).throttled += 1

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
