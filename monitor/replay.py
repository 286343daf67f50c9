"""Replaying an exported run (JSON Lines of event data objects) through the same model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def read_events(path: Path) -> list[dict[str, Any]]:
    """Event objects from a JSON Lines file, in time order; lines that are not objects are skipped."""
    events: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "type" in obj:
                events.append(obj)
    # A stable sort keeps file order for equal timestamps (received before stored at the same ts).
    events.sort(key=lambda e: _ts(e))
    return events


def _ts(event: dict[str, Any]) -> float:
    try:
        return float(event.get("ts") or 0.0)
    except (TypeError, ValueError):
        return 0.0


class ReplayClock:
    """Virtual time of a replay: runs at `speed` x wall time from the first event, can hold."""

    def __init__(self, start: float, end: float, speed: float, wall: Callable[[], float] = time.monotonic) -> None:
        self.start = start
        self.end = end
        self.speed = speed
        self._wall = wall
        self._base = start
        self._since = wall()
        self.held = speed <= 0
        if speed <= 0:
            self._base = end

    def __call__(self) -> float:
        if self.held:
            return self._base
        return min(self.end, self._base + (self._wall() - self._since) * self.speed)

    def hold(self, held: bool) -> None:
        if held == self.held or self.speed <= 0:
            return
        self._base = self()
        self._since = self._wall()
        self.held = held

    @property
    def done(self) -> bool:
        return self() >= self.end

    def fraction(self) -> float:
        span = self.end - self.start
        return 1.0 if span <= 0 else min(1.0, (self() - self.start) / span)


def due(events: list[dict[str, Any]], cursor: int, now: float) -> Iterator[dict[str, Any]]:
    """The events from `cursor` on whose time has come."""
    while cursor < len(events) and _ts(events[cursor]) <= now:
        yield events[cursor]
        cursor += 1
