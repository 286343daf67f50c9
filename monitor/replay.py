"""Replaying an exported run (JSON Lines of event data objects) through the same model."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from monitor.stream import Received, decode


def read_events(path: Path) -> list[Received]:
    """The events of a JSON Lines file in time order; a line that is none of ours stays, as Undecodable."""
    with path.open("rb") as fh:
        return decode_lines(fh)


def decode_lines(lines: Iterable[bytes]) -> list[Received]:
    """JSON Lines (a file's, or the server's run export) as events in time order."""
    events = [decode(line) for line in lines if line.strip()]
    # A line without a time takes its neighbour's, so it is shown where it was in the file.
    known = [e.ts for e in events if e.ts is not None]
    last = known[0] if known else 0.0
    for event in events:
        if event.ts is None:
            event.ts = last
        last = event.ts
    # A stable sort keeps file order for equal timestamps (received before stored at the same ts).
    events.sort(key=_ts)
    return events


def _ts(event: Received) -> float:
    return event.ts or 0.0


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


def due(events: list[Received], cursor: int, now: float) -> Iterator[Received]:
    """The events from `cursor` on whose time has come."""
    while cursor < len(events) and _ts(events[cursor]) <= now:
        yield events[cursor]
        cursor += 1
