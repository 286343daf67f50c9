"""A run's attempts as table rows: what the detail screen shows and the CSV export writes."""

from __future__ import annotations

import math
from typing import Any

from monitor.runs import Run
from syncbed.runs import AttemptView, RunDetail

DETAIL_COLUMNS = ("batch", "attempt", "state", "status", "error", "records", "stored", "duplicates", "ms", "lane")
SERVER_COLUMNS = ("rule", "retry_after", "received", "finished")
TIME_COLUMNS = ("start_ts", "end_ts")


def since(ts: float | None, origin: float | None) -> str | float | None:
    """A time as seconds after the run's start (`+0.312 s`), or as it is when there is no start to count from."""
    if ts is None or origin is None:
        return ts
    return f"{ts - origin:+.3f} s"


def attempt_row(att: AttemptView, origin: float | None = None) -> dict[str, Any]:
    """One attempt of the fold (the monitor's or the server's) as a row; times after `origin` when given."""
    return {
        "batch": att.batch,
        "attempt": att.attempt,
        "state": att.status,
        "status": att.http_status,
        "error": att.error or "",
        "records": att.records,
        "stored": att.stored,
        "duplicates": att.duplicates,
        "ms": att.ms if att.ms is not None else "",
        "rule": att.rule,
        "retry_after": att.retry_after,
        "received": since(att.received, origin),
        "finished": since(att.finished, origin),
    }


def model_rows(run: Run, times: bool = False) -> list[dict[str, Any]]:
    """Every attempt the monitor saw for a run, batch by batch, with its bar's state and lane.

    On screen, times count from the run's start; with `times` (the CSV) they stay epoch seconds, beside
    the bar's own start_ts and end_ts.
    """
    rows = []
    origin = None if times else run.started_at
    for batch in run.fold.batches():
        for att in batch.attempts:
            row = attempt_row(att, origin)
            bar = run.bar(att)
            if bar is not None:
                row.update(state=bar.state, lane=bar.lane + 1)
            if times:
                row["start_ts"] = "" if bar is None else f"{bar.start:.6f}"
                row["end_ts"] = "" if bar is None or bar.end is None else f"{bar.end:.6f}"
            rows.append(row)
    return rows


def server_rows(detail: RunDetail, origin: float | None = None) -> list[dict[str, Any]]:
    """Every attempt of GET /api/v1/runs/{id}, as the server's history has it; times after `origin`."""
    return [attempt_row(att, origin) for batch in detail.batches for att in batch.attempts]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of non-empty `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summary(run: Run, bound_line: str | None, now: float) -> str:
    """The details screen's head: time, batches, 429s, service-time percentiles and the bound."""
    end = run.finished_at if run.finished_at is not None else now
    parts = [
        f"{max(0.0, end - run.started_at):.2f} s",
        f"{run.batches_done()} batches stored",
        f"{run.throttled} x 429",
    ]
    if run.service_ms:
        ms = list(run.service_ms)
        parts.append(
            "service ms p50 {:.0f} · p95 {:.0f} · p99 {:.0f}".format(*(percentile(ms, q) for q in (50, 95, 99)))
        )
    text = " · ".join(parts)
    return f"{text}\n{bound_line}" if bound_line else text
