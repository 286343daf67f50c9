"""Event log lines: one short text per event, with what the log filters and searches by.

An attempt is written `b17/a1`: batch 17, attempt 1 (the client's trace headers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.stream import Received, Undecodable
from syncbed.events import (
    RUN_EVENT_CLASSES,
    BatchEvent,
    BatchReceived,
    BatchRejected,
    BatchStored,
    ConfigChanged,
    LimiterStore,
    RequestThrottled,
    RunFinished,
    RunStarted,
    StreamDropped,
    StreamReset,
    event_type,
)

LOG_FILTERS = ("all", "throttled", "errors", "batches", "runs", "config")
KIND_INFO = "info"
KIND_THROTTLED = "throttled"
KIND_ERROR = "error"
LEGEND = "b17/a1: batch 17, attempt 1"
SEARCH_HELP = "words match anywhere; run:ID type:batch.rejected status:503 rule:sync/user narrow it"
_TYPE_FILTERS = {
    "batches": ("batch.", "request."),
    "runs": ("run.",),
    "config": ("config.", "limiter.", "stream."),
}


@dataclass(slots=True, frozen=True)
class LogEntry:
    id: int | None
    ts: float
    type: str
    run: str | None
    kind: str
    text: str  # run ids shortened
    full: str = ""  # the same with whole run ids
    status: int | None = None
    rule: str | None = None

    def matches(self, kind_filter: str, run: str | None, query: Query | None = None) -> bool:
        if run is not None and self.run != run:
            return False
        if query is not None and not query.matches(self):
            return False
        if kind_filter == "throttled":
            return self.kind == KIND_THROTTLED
        if kind_filter == "errors":
            return self.kind == KIND_ERROR
        if kind_filter in _TYPE_FILTERS:
            return self.type.startswith(_TYPE_FILTERS[kind_filter])
        return True

    def line(self, full_ids: bool = False) -> str:
        return self.full if full_ids and self.full else self.text


@dataclass(slots=True, frozen=True)
class Query:
    """What the log's search box asks: free words (all must appear) and field:value terms."""

    words: tuple[str, ...] = ()
    run: str | None = None
    type: str | None = None
    status: int | None = None
    rule: str | None = None

    @classmethod
    def parse(cls, text: str) -> Query:
        words, fields = [], {}
        for token in text.split():
            name, sep, value = token.partition(":")
            if sep and value and name.lower() in ("run", "type", "status", "rule"):
                fields[name.lower()] = value
            else:
                words.append(token.lower())
        raw = fields.get("status")
        status = int(raw) if raw is not None and raw.isascii() and raw.isdigit() else None
        if raw is not None and status is None:
            words.append(f"status:{raw}".lower())  # not a number: matches nothing unless written so
        return cls(tuple(words), fields.get("run"), fields.get("type"), status, fields.get("rule"))

    def matches(self, entry: LogEntry) -> bool:
        if self.run is not None and self.run not in (entry.run or ""):
            return False
        if self.type is not None and not entry.type.startswith(self.type):
            return False
        if self.status is not None and entry.status != self.status:
            return False
        if self.rule is not None and self.rule != entry.rule:
            return False
        haystack = (entry.full or entry.text).lower()
        return all(word in haystack for word in self.words)


def _short(run: str | None) -> str:
    text = str(run)
    return text if len(text) <= 12 else text[:3] + "…" + text[-8:]


def _attempt(ev: BatchEvent, full: bool = False) -> str:
    return f"{ev.run if full else _short(ev.run)} b{ev.batch}/a{ev.attempt}"


def _num(value: float, digits: int = 2) -> str:
    """Numbers short (318.77 ms -> 319 ms with digits=0)."""
    return f"{value:.{digits}f}"


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _period(period: float | None) -> str:
    return "?" if period is None else f"{period:g}s"


def _config(ev: ConfigChanged, faults: Mapping[str, object], limits: Mapping[str, tuple[object, float | None]]) -> str:
    """A live edit as `name old -> new`, from what the monitor knew before it."""
    if ev.what == "limits":
        name = ev.name or ev.rule or "?"
        new = f"{_value(ev.limit) if ev.limit is not None else '?'}/{_period(ev.period)}"
        old = limits.get(name)
        change = f"{old[0] if old[0] is not None else '?'}/{_period(old[1])} -> {new}" if old else f"-> {new}"
        extra = [ev.algorithm] if ev.algorithm else []
        if ev.enabled is False:
            extra.append("disabled")
        return f"limits: {name} {change}" + (f" ({', '.join(extra)})" if extra else "")
    values = ev.fault_values()
    names = [n for n in (ev.changed or values) if n in values]
    parts = []
    for name in names:
        before = faults.get(name)
        arrow = f"{_value(before)} -> " if before is not None else "-> "
        parts.append(f"{name} {arrow}{_value(values[name])}")
    return f"{ev.what}: {', '.join(parts) or 'no change'}"


def describe(
    ev: Received,
    full: bool = False,
    faults: Mapping[str, object] | None = None,
    limits: Mapping[str, tuple[object, float | None]] | None = None,
) -> tuple[str, str]:
    """(kind, text) of one event for the log; `full` keeps whole run ids, `faults`/`limits` what was before."""
    kind = KIND_INFO
    run = str if full else _short
    if isinstance(ev, BatchReceived):
        text = f"{_attempt(ev, full)} received {ev.records} records"
    elif isinstance(ev, BatchStored):
        text = f"{_attempt(ev, full)} stored {ev.stored} (+{ev.duplicates} dup) in {_num(ev.ms, 0)} ms"
    elif isinstance(ev, BatchRejected):
        kind = KIND_ERROR
        text = f"{_attempt(ev, full)} rejected {ev.status} {ev.error}"
    elif isinstance(ev, RequestThrottled):
        kind = KIND_THROTTLED
        text = f"{_attempt(ev, full)} 429 {ev.rule} key={ev.key} retry in {_num(ev.retry_after)} s"
    elif isinstance(ev, RunStarted):
        text = (
            f"{run(ev.run)} started by {ev.user}: {ev.total_records} records, "
            f"{ev.total_batches} batches, {ev.mode} x{ev.concurrency}"
        )
    elif isinstance(ev, RunFinished):
        if ev.status != "complete":
            kind = KIND_ERROR
        text = f"{run(ev.run)} {ev.status}: {ev.ok_batches} ok, {ev.failed_batches} failed in {_num(ev.seconds)} s"
    elif isinstance(ev, ConfigChanged):
        text = _config(ev, faults or {}, limits or {})
    elif isinstance(ev, StreamDropped):
        kind = KIND_ERROR
        text = f"stream dropped {ev.missed} events (monitor too slow)"
    elif isinstance(ev, StreamReset):
        kind = KIND_ERROR
        text = f"stream reset: event {ev.last_event_id} is gone, oldest held {ev.oldest_id}"
    elif isinstance(ev, LimiterStore):
        if ev.status != "up":
            kind = KIND_ERROR
        text = f"limiter store {ev.store}: {ev.status}"
    elif isinstance(ev, Undecodable):
        kind = KIND_ERROR
        text = f"unreadable {ev.type} event (from a newer or another server?): {ev.reason}"[:200]
    else:
        text = f"{event_type(ev)}"
    return kind, text


def make_entry(
    ev: Received,
    event_id: int | None,
    ts: float,
    faults: Mapping[str, object] | None = None,
    limits: Mapping[str, tuple[object, float | None]] | None = None,
) -> LogEntry:
    """The log's entry of one event; `faults` and `limits` are the settings before it (for config edits)."""
    kind, text = describe(ev, False, faults, limits)
    _, full = describe(ev, True, faults, limits)
    run = ev.run if isinstance(ev, RUN_EVENT_CLASSES) else None
    name = ev.type if isinstance(ev, Undecodable) else event_type(ev)
    status = 429 if isinstance(ev, RequestThrottled) else 200 if isinstance(ev, BatchStored) else None
    if isinstance(ev, BatchRejected):
        status = ev.status
    rule = None
    if isinstance(ev, RequestThrottled):
        rule = ev.rule
    elif isinstance(ev, ConfigChanged):
        rule = ev.name or ev.rule
    return LogEntry(event_id, ts, name, run, kind, text, full if full != text else "", status, rule)
