"""The monitor's pure model: every event goes in here; the views only read it."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable

import msgspec

from monitor.eventlog import KIND_ERROR, KIND_INFO, LogEntry, Query, make_entry
from monitor.limiter import LimiterView
from monitor.link import Link
from monitor.rates import RateSeries, Samples
from monitor.runs import Run
from monitor.stream import Received, Undecodable
from syncbed.events import (
    RUN_EVENT_CLASSES,
    BatchReceived,
    BatchRejected,
    BatchStored,
    ConfigChanged,
    Event,
    LimiterStore,
    RequestThrottled,
    ServerStats,
    StreamDropped,
    StreamReset,
)

Clock = Callable[[], float]
MAX_RUNS = 200
LINK_EVENT = "monitor.link"  # the log's type for the monitor's own notes on its stream
# The answers by class, for the throughput panel's breakdown; "reset": the connection dropped, no status.
CODE_CLASSES = ("200", "429", "4xx", "5xx", "reset")
# Events that explain a run without belonging to one (a fault edit, the limiter's store going down, the
# rules and rates of the moment): kept so an export carries them; an hour of 1 Hz stats and then some.
CONTEXT_EVENTS = 5_000
CONTEXT_CLASSES = (ConfigChanged, ServerStats, LimiterStore)
OPEN_ATTEMPTS = 10_000  # sends waiting for their answer, for the attempt latency (older ones are dropped)


def code_class(status: int) -> str:
    if status == 0:
        return "reset"
    if status in (200, 429):
        return str(status)
    return "5xx" if status >= 500 else "4xx"


class Model:
    """Runs, global rates, status codes, limiter rules and the event log, fed one event at a time."""

    def __init__(self, clock: Clock = time.time, log_size: int = 1000) -> None:
        self.clock = clock
        self.runs: dict[str, Run] = {}
        self.context: deque[Event] = deque(maxlen=CONTEXT_EVENTS)
        self.records = RateSeries()
        self.throttled = RateSeries()
        self.requests = RateSeries()
        self.status_counts: Counter[int] = Counter()
        self.codes = {name: RateSeries() for name in CODE_CLASSES}
        self.service = Samples()  # batch.stored `ms`: the server's own time per stored batch
        self.attempt_ms = Samples()  # batch.received to its answer, per run/batch/attempt
        self._sent: dict[tuple[str | None, int | None, int | None], float] = {}
        self.limiter = LimiterView()
        self.log: deque[LogEntry] = deque(maxlen=log_size)
        self.logged = 0  # entries ever appended (the log view writes only the new ones)
        self.faults: dict[str, int | float] = {}
        self.stats: ServerStats | None = None  # the server's latest
        self.last_id: int | None = None
        self.last_ts: float | None = None
        self.first_ts: float | None = None
        self.lag: float | None = None
        self.events_seen = 0
        self.missed = 0
        self.resets = 0
        self.undecodable = 0  # events of a type or shape this monitor does not know
        self.link = Link()

    # --- the stream's connection -------------------------------------------
    def on_connection(self, state: str, detail: str) -> None:
        """A follower state: an outage or a reconnect goes into the log."""
        now = self.clock()
        note = self.link.on_state(state, detail, now)
        if note is not None:
            text, bad = note
            self.note(text, KIND_ERROR if bad else KIND_INFO, now)

    def note(self, text: str, kind: str, ts: float) -> None:
        """A line of the monitor's own in the log."""
        self.log.append(LogEntry(None, ts, LINK_EVENT, None, kind, text))
        self.logged += 1

    def _check_restart(self, stats: ServerStats, ts: float) -> None:
        limits = {name: (rule.limit, rule.period) for name, rule in self.limiter.rules.items()}
        note = self.link.on_settings(self.clock(), self.faults, limits, stats.faults, stats.rules)
        if note is not None:
            self.note(note, KIND_ERROR, ts)

    # --- input -----------------------------------------------------------
    def ingest(self, event: Received, event_id: int | None = None) -> None:
        """Take one event; `event_id` is its stream id when it came with one outside its data."""
        now = self.clock()
        ts = now if event.ts is None else event.ts
        self.events_seen += 1
        if not isinstance(event, Undecodable):
            if event_id is None:
                event_id = event.id
            elif event.id is None:
                event.id = event_id  # so a run's export keeps it
        if event_id is not None:
            self.last_id = event_id
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        if self.first_ts is None:
            self.first_ts = ts
        self.lag = max(0.0, now - ts)
        if isinstance(event, Undecodable):
            self.undecodable += 1
            self.log.append(make_entry(event, event_id, ts))
            self.logged += 1
            return
        if not isinstance(event, ServerStats):
            limits = {name: (view.limit, view.period) for name, view in self.limiter.rules.items()}
            self.log.append(make_entry(event, event_id, ts, self.faults, limits))
            self.logged += 1
        if isinstance(event, RUN_EVENT_CLASSES) and event.run is not None:
            self._run(event.run, ts).add(event)
        elif isinstance(event, CONTEXT_CLASSES):
            self.context.append(event)
        self._count(event, ts)

    def ingest_many(self, events: Iterable[Received]) -> None:
        for ev in events:
            self.ingest(ev)

    def _run(self, run_id: str, ts: float) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = Run(run_id, ts, self.limiter, self.faults)
            if len(self.runs) > MAX_RUNS:
                self._evict()
        return run

    def _evict(self) -> None:
        for run_id, run in list(self.runs.items()):
            if run.finished:
                del self.runs[run_id]
                return
        del self.runs[next(iter(self.runs))]

    # --- what every event adds up to ---------------------------------------
    def _count(self, event: Event, ts: float) -> None:
        if isinstance(event, BatchReceived):
            self.requests.add(ts)
            if event.attempt is not None:
                if len(self._sent) >= OPEN_ATTEMPTS:
                    del self._sent[next(iter(self._sent))]
                self._sent[(event.run, event.batch, event.attempt)] = ts
        elif isinstance(event, BatchStored):
            self.status_counts[200] += 1
            self.codes["200"].add(ts)
            self.records.add(ts, event.records)
            self.service.add(ts, event.ms)
            self._answered(event, ts)
        elif isinstance(event, BatchRejected):
            self.status_counts[event.status] += 1
            self.codes[code_class(event.status)].add(ts)
            self._answered(event, ts)
        elif isinstance(event, RequestThrottled):
            self.status_counts[429] += 1
            self.codes["429"].add(ts)
            self.throttled.add(ts)
            self.requests.add(ts)
            self.limiter.on_throttled(event.rule)
        elif isinstance(event, ServerStats):
            self._check_restart(event, ts)
            self.stats = event
            self.limiter.on_stats(event)
            if event.faults is not None:
                self.faults.update(msgspec.structs.asdict(event.faults))
        elif isinstance(event, ConfigChanged):
            self.faults.update(event.fault_values())
            if event.what == "limits":
                for run in self.runs.values():
                    run.note_limits()  # the limits the runs met until now: their bounds keep the loosest
                self.limiter.on_limits(event)
        elif isinstance(event, StreamDropped):
            self.missed += event.missed
        elif isinstance(event, StreamReset):
            self.resets += 1

    def _answered(self, event: BatchStored | BatchRejected, ts: float) -> None:
        sent = self._sent.pop((event.run, event.batch, event.attempt), None)
        if sent is not None:
            self.attempt_ms.add(ts, max(0.0, ts - sent) * 1000.0)

    # --- views' questions ------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def in_flight(self) -> int:
        return sum(run.in_flight() for run in self.runs.values())

    def newest_run(self) -> Run | None:
        return next(reversed(self.runs.values()), None)

    def entries(
        self, kind_filter: str = "all", run: str | None = None, limit: int = 200, query: Query | None = None
    ) -> list[LogEntry]:
        """The newest `limit` log entries that pass the filters, oldest first."""
        out: list[LogEntry] = []
        for entry in reversed(self.log):
            if entry.matches(kind_filter, run, query):
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
        for series in self.codes.values():
            series.clear()
        self.service.clear()
        self.attempt_ms.clear()
        self._sent.clear()
        self.limiter.clear()
        self.log.clear()
        self.missed = 0
        self.resets = 0
        self.undecodable = 0
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

    def context_of(self, run: Run) -> list[Event]:
        """The events around `run` that explain it: those of its time span, and the last of each kind before."""
        start, end = run.started_at, run.finished_at if run.finished_at is not None else self.now()
        before: dict[object, Event] = {}
        within: list[Event] = []
        for event in self.context:
            ts = event.ts
            if ts < start:
                kind = (type(event), getattr(event, "what", None))  # faults and limits edits apart
                before[kind] = event  # the state the run started in
            elif ts <= end:
                within.append(event)
        return [*before.values(), *within]
