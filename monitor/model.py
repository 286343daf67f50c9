"""The monitor's pure model: every event goes in here; the views only read it."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from monitor.eventlog import LogEntry, make_entry
from monitor.limiter import LimiterView
from monitor.rates import RateSeries
from monitor.runs import Run
from syncbed import contract as c
from syncbed.faults import FAULT_FIELDS

Clock = Callable[[], float]
MAX_RUNS = 200


class Model:
    """Runs, global rates, status codes, limiter rules and the event log, fed one event at a time."""

    def __init__(self, clock: Clock = time.time, log_size: int = 1000) -> None:
        self.clock = clock
        self.runs: dict[str, Run] = {}
        self.records = RateSeries()
        self.throttled = RateSeries()
        self.requests = RateSeries()
        self.status_counts: Counter[int] = Counter()
        self.limiter = LimiterView()
        self.log: deque[LogEntry] = deque(maxlen=log_size)
        self.faults: dict[str, Any] = {}
        self.server_stats: dict[str, Any] = {}
        self.last_id: int | None = None
        self.last_ts: float | None = None
        self.first_ts: float | None = None
        self.lag: float | None = None
        self.events_seen = 0
        self.missed = 0
        self.resets = 0

    # --- input -----------------------------------------------------------
    def ingest(self, data: Mapping[str, Any], event_id: int | None = None) -> None:
        """Take one event's data object (with at least `type` and `ts`)."""
        now = self.clock()
        raw_ts = data.get("ts")
        try:
            ts = now if raw_ts is None else float(raw_ts)
        except (TypeError, ValueError):
            ts = now
        if ts != ts:  # NaN would poison every window
            ts = now
        etype = str(data.get("type") or "")
        self.events_seen += 1
        if event_id is not None:
            self.last_id = event_id
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        if self.first_ts is None:
            self.first_ts = ts
        self.lag = max(0.0, now - ts)
        if etype != c.EV_STATS:
            self.log.append(make_entry(data, event_id, ts))
        run_id = data.get("run")
        run = self._run(str(run_id), ts) if run_id is not None and etype in _RUN_EVENTS else None
        if run is not None:
            run.last_ts = max(run.last_ts, ts)
            record = dict(data)
            if event_id is not None:
                record.setdefault("id", event_id)
            run.events.append(record)
            if run.user is None and data.get("user"):
                run.user = str(data["user"])
        handler = _HANDLERS.get(etype)
        if handler is not None:
            handler(self, run, data, ts)

    def ingest_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        for ev in events:
            raw_id = ev.get("id")
            self.ingest(ev, raw_id if isinstance(raw_id, int) else None)

    def _run(self, run_id: str, ts: float) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = Run(run_id, ts)
            if len(self.runs) > MAX_RUNS:
                self._evict()
        return run

    def _evict(self) -> None:
        for run_id, run in list(self.runs.items()):
            if run.finished:
                del self.runs[run_id]
                return
        del self.runs[next(iter(self.runs))]

    # --- handlers --------------------------------------------------------
    def _started(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        if run is not None:
            run.on_started(ev, ts)

    def _received(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        self.requests.add(ts)
        if run is not None:
            run.on_received(ev, ts)

    def _stored(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        self.status_counts[200] += 1
        try:
            self.records.add(ts, int(ev.get("records") or 0))
        except (TypeError, ValueError):
            pass
        if run is not None:
            run.on_stored(ev, ts)

    def _rejected(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        try:
            self.status_counts[int(ev.get("status") or 0)] += 1
        except (TypeError, ValueError):
            self.status_counts[0] += 1
        if run is not None:
            run.on_rejected(ev, ts)

    def _throttled(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        self.status_counts[429] += 1
        self.throttled.add(ts)
        self.requests.add(ts)
        self.limiter.on_throttled(ev.get("rule"))
        if run is not None:
            run.on_throttled(ev, ts)

    def _finished(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        if run is not None:
            run.on_finished(ev, ts)

    def _stats(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        self.server_stats = dict(ev)
        self.limiter.on_stats(ev)
        faults = ev.get("faults")
        if isinstance(faults, Mapping):
            self.faults.update({k: v for k, v in faults.items() if k in FAULT_FIELDS})

    def _config(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        self.faults.update({k: v for k, v in ev.items() if k in FAULT_FIELDS})
        faults = ev.get("faults")
        if isinstance(faults, Mapping):
            self.faults.update({k: v for k, v in faults.items() if k in FAULT_FIELDS})
        if ev.get("rule") is not None:
            self.limiter.set_rule(ev)
        rules = ev.get("rules")
        if isinstance(rules, list):
            for item in rules:
                if isinstance(item, Mapping):
                    self.limiter.set_rule(item)

    def _dropped(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        try:
            self.missed += int(ev.get("missed") or 0)
        except (TypeError, ValueError):
            pass

    def _reset(self, run: Run | None, ev: Mapping[str, Any], ts: float) -> None:
        self.resets += 1

    # --- views' questions ------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def in_flight(self) -> int:
        return sum(run.in_flight() for run in self.runs.values())

    def newest_run(self) -> Run | None:
        return next(reversed(self.runs.values()), None)

    def entries(self, kind_filter: str = "all", run: str | None = None, limit: int = 200) -> list[LogEntry]:
        """The newest `limit` log entries that pass the filters, oldest first."""
        out: list[LogEntry] = []
        for entry in reversed(self.log):
            if entry.matches(kind_filter, run):
                out.append(entry)
                if len(out) >= limit:
                    break
        out.reverse()
        return out

    def clear(self) -> None:
        """Forget what was seen (the stream position stays, so nothing is fetched again)."""
        self.runs.clear()
        self.records.clear()
        self.throttled.clear()
        self.requests.clear()
        self.status_counts.clear()
        self.limiter.clear()
        self.log.clear()
        self.missed = 0
        self.resets = 0
        self.first_ts = None

    def summary(self) -> list[str]:
        """One line per run seen, for the terminal after exit."""
        now = self.clock()
        lines = []
        for run in self.runs.values():
            total = f"/{run.total_batches}" if run.total_batches is not None else ""
            lines.append(
                f"run {run.run} ({run.user or '?'}, {run.mode or '?'}): {run.display_status(now)}, "
                f"{run.batches_done()}{total} batches, {run.records_done:,} records in "
                f"{run.elapsed(now):.1f} s ({run.records_per_s(now):,.0f} records/s), "
                f"{run.throttled} x 429, {run.retries} retries, {run.failed_batches()} failed batches"
            )
        return lines


_RUN_EVENTS = frozenset(
    {
        c.EV_RUN_STARTED,
        c.EV_BATCH_RECEIVED,
        c.EV_BATCH_STORED,
        c.EV_BATCH_REJECTED,
        c.EV_REQUEST_THROTTLED,
        c.EV_RUN_FINISHED,
    }
)
_HANDLERS: dict[str, Callable[[Model, Run | None, Mapping[str, Any], float], None]] = {
    c.EV_RUN_STARTED: Model._started,
    c.EV_BATCH_RECEIVED: Model._received,
    c.EV_BATCH_STORED: Model._stored,
    c.EV_BATCH_REJECTED: Model._rejected,
    c.EV_REQUEST_THROTTLED: Model._throttled,
    c.EV_RUN_FINISHED: Model._finished,
    c.EV_STATS: Model._stats,
    c.EV_CONFIG_CHANGED: Model._config,
    c.EV_STREAM_DROPPED: Model._dropped,
    c.EV_STREAM_RESET: Model._reset,
}
