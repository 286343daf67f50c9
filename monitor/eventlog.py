"""Event log lines: one short text per event, with a kind for filtering."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncbed import contract as c

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


def _short(run: Any) -> str:
    text = str(run)
    return text if len(text) <= 12 else text[:3] + "…" + text[-8:]


def _attempt(ev: Mapping[str, Any]) -> str:
    return f"{_short(ev.get('run'))} #{ev.get('batch')}.{ev.get('attempt')}"


def _num(value: Any, digits: int = 2) -> str:
    """Numbers short (318.77 ms -> 319 ms with digits=0), anything else as it is."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def describe(ev: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, text) of one event for the log."""
    kind = KIND_INFO
    t = ev.get("type")
    g = ev.get
    if t == c.EV_BATCH_RECEIVED:
        text = f"{_attempt(ev)} received {g('records')} records"
    elif t == c.EV_BATCH_STORED:
        text = f"{_attempt(ev)} stored {g('stored')} (+{g('duplicates')} dup) in {_num(g('ms'), 0)} ms"
    elif t == c.EV_BATCH_REJECTED:
        kind = KIND_ERROR
        text = f"{_attempt(ev)} rejected {g('status')} {g('error')}"
    elif t == c.EV_REQUEST_THROTTLED:
        kind = KIND_THROTTLED
        text = f"{_attempt(ev)} 429 {g('rule')} key={g('key')} retry in {_num(g('retry_after'))} s"
    elif t == c.EV_RUN_STARTED:
        text = (
            f"{_short(g('run'))} started by {g('user')}: {g('total_records')} records, "
            f"{g('total_batches')} batches, {g('mode')} x{g('concurrency')}"
        )
    elif t == c.EV_RUN_FINISHED:
        if g("status") != "complete":
            kind = KIND_ERROR
        ok, failed, seconds = g("ok_batches"), g("failed_batches"), _num(g("seconds"))
        text = f"{_short(g('run'))} {g('status')}: {ok} ok, {failed} failed in {seconds} s"
    elif t == c.EV_CONFIG_CHANGED:
        rest = {k: v for k, v in ev.items() if k not in ("ts", "type", "what")}
        text = f"config {g('what')}: " + " ".join(f"{k}={v}" for k, v in rest.items())
    elif t == c.EV_STREAM_DROPPED:
        kind = KIND_ERROR
        text = f"stream dropped {g('missed')} events (monitor too slow)"
    elif t == c.EV_STREAM_RESET:
        kind = KIND_ERROR
        text = f"stream reset: event {g('last_event_id')} is gone, oldest held {g('oldest_id')}"
    elif t == c.EV_LIMITER_STORE:
        if g("status") not in ("ok", "up", "connected"):
            kind = KIND_ERROR
        text = f"limiter store {g('store')}: {g('status')}"
    else:
        rest = {k: v for k, v in ev.items() if k not in ("ts", "type")}
        text = f"{t} {json.dumps(rest, default=str)[:200]}"
    return kind, text


def make_entry(ev: Mapping[str, Any], event_id: int | None, ts: float) -> LogEntry:
    kind, text = describe(ev)
    run = ev.get("run")
    return LogEntry(event_id, ts, str(ev.get("type")), None if run is None else str(run), kind, text)
