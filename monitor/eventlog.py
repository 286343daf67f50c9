"""Event log lines: one short text per event, with a kind for filtering."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

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

LOG_FILTERS = ("all", "throttled", "errors")
KIND_INFO = "info"
KIND_THROTTLED = "throttled"
KIND_ERROR = "error"


@dataclass(slots=True, frozen=True)
class LogEntry:
    id: int | None
    ts: float
    type: str
    run: str | None
    kind: str
    text: str

    def matches(self, kind_filter: str, run: str | None) -> bool:
        if run is not None and self.run != run:
            return False
        if kind_filter == "throttled":
            return self.kind == KIND_THROTTLED
        if kind_filter == "errors":
            return self.kind == KIND_ERROR
        return True


def _short(run: str | None) -> str:
    text = str(run)
    return text if len(text) <= 12 else text[:3] + "…" + text[-8:]


def _attempt(ev: BatchEvent) -> str:
    return f"{_short(ev.run)} #{ev.batch}.{ev.attempt}"


def _num(value: float, digits: int = 2) -> str:
    """Numbers short (318.77 ms -> 319 ms with digits=0)."""
    return f"{value:.{digits}f}"


def _values(ev: ConfigChanged) -> str:
    """The edit's values as `name=value`, in the order the server sent them."""
    values = msgspec.structs.asdict(ev)
    return " ".join(f"{k}={v}" for k, v in values.items() if k not in ("id", "ts", "what") and v is not None)


def describe(ev: Received) -> tuple[str, str]:
    """(kind, text) of one event for the log."""
    kind = KIND_INFO
    if isinstance(ev, BatchReceived):
        text = f"{_attempt(ev)} received {ev.records} records"
    elif isinstance(ev, BatchStored):
        text = f"{_attempt(ev)} stored {ev.stored} (+{ev.duplicates} dup) in {_num(ev.ms, 0)} ms"
    elif isinstance(ev, BatchRejected):
        kind = KIND_ERROR
        text = f"{_attempt(ev)} rejected {ev.status} {ev.error}"
    elif isinstance(ev, RequestThrottled):
        kind = KIND_THROTTLED
        text = f"{_attempt(ev)} 429 {ev.rule} key={ev.key} retry in {_num(ev.retry_after)} s"
    elif isinstance(ev, RunStarted):
        text = (
            f"{_short(ev.run)} started by {ev.user}: {ev.total_records} records, "
            f"{ev.total_batches} batches, {ev.mode} x{ev.concurrency}"
        )
    elif isinstance(ev, RunFinished):
        if ev.status != "complete":
            kind = KIND_ERROR
        text = f"{_short(ev.run)} {ev.status}: {ev.ok_batches} ok, {ev.failed_batches} failed in {_num(ev.seconds)} s"
    elif isinstance(ev, ConfigChanged):
        text = f"config {ev.what}: {_values(ev)}"
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


def make_entry(ev: Received, event_id: int | None, ts: float) -> LogEntry:
    kind, text = describe(ev)
    run = ev.run if isinstance(ev, RUN_EVENT_CLASSES) else None
    name = ev.type if isinstance(ev, Undecodable) else event_type(ev)
    return LogEntry(event_id, ts, name, run, kind, text)
