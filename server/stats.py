"""The counters the request path bumps, and the 1 Hz `stats` event made from them (one worker's figures)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from syncbed.events import ServerStats

log = logging.getLogger("syncbed.events")


class Stats:
    """Counters the request path bumps cheaply; the bus turns them into a 1 Hz `stats` event."""

    __slots__ = ("_reader", "_sources", "in_flight", "records", "requests", "throttled")

    def __init__(self) -> None:
        self.records = 0
        self.requests = 0
        self.throttled = 0
        self.in_flight = 0
        self._sources: dict[str, Callable[[], object]] = {}
        self._reader: Callable[[], tuple[int, int, int, int]] | None = None

    def count_request(self, records: int = 0, throttled: bool = False) -> None:
        """One sync request answered: `records` stored by it, or `throttled` if a rule refused it."""
        self.requests += 1
        self.records += records
        if throttled:
            self.throttled += 1

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1

    def read_from(self, reader: Callable[[], tuple[int, int, int, int]] | None) -> None:
        """Take (records, requests, throttled, in_flight) totals from counters kept elsewhere instead."""
        self._reader = reader

    def totals(self) -> tuple[int, int, int, int]:
        """(records, requests, throttled, in_flight), cumulative except in_flight."""
        if self._reader is not None:
            try:
                return self._reader()
            except Exception:
                log.exception("stats counters failed")
        return self.records, self.requests, self.throttled, self.in_flight

    def add_source(self, field: str, source: Callable[[], object] | None) -> None:
        """Another field for the stats event, read at each tick (e.g. "limiter": rule -> top keys)."""
        if source is None:
            self._sources.pop(field, None)
        else:
            self._sources[field] = source

    def extras(self) -> dict[str, object]:
        out: dict[str, object] = {"limiter": {}}
        for field, source in self._sources.items():
            try:
                out[field] = source()
            except Exception:
                log.exception("stats field %s failed", field)
        return out


class StatsMeter:
    """Turns cumulative counters into per-second rates between two ticks (pure; clock injected)."""

    def __init__(self, stats: Stats, now: float) -> None:
        self._stats = stats
        self._last = (now, *stats.totals()[:3])

    def tick(self, now: float) -> ServerStats:
        """The stats event since the last tick; msgspec.ValidationError if a source gave a wrong shape."""
        s = self._stats
        then, records, requests, throttled = self._last
        dt = max(now - then, 1e-6)
        r, q, t, in_flight = s.totals()
        self._last = (now, r, q, t)
        fields = {
            "records_per_s": round((r - records) / dt, 1),
            "requests_per_s": round((q - requests) / dt, 2),
            "throttled_per_s": round((t - throttled) / dt, 2),
            "in_flight": max(in_flight, 0),
            **s.extras(),
        }
        return msgspec.convert(fields, ServerStats)
