"""A run's attempts as table rows: what the detail screen shows and the CSV export writes."""

from __future__ import annotations

from typing import Any

from monitor.runs import Run
from syncbed.runs import AttemptView, RunDetail

DETAIL_COLUMNS = ("batch", "attempt", "state", "status", "error", "records", "stored", "duplicates", "ms", "lane")
SERVER_COLUMNS = ("rule", "retry_after", "received", "finished")
TIME_COLUMNS = ("start_ts", "end_ts")


def attempt_row(att: AttemptView) -> dict[str, Any]:
    """One attempt of the fold (the monitor's or the server's) as a row."""
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
        "received": att.received,
        "finished": att.finished,
    }


def model_rows(run: Run, times: bool = False) -> list[dict[str, Any]]:
    """Every attempt the monitor saw for a run, batch by batch, with its bar's state and lane (and times)."""
    rows = []
    for batch in run.fold.batches():
        for att in batch.attempts:
            row = attempt_row(att)
            bar = run.bar(att)
            if bar is not None:
                row.update(state=bar.state, lane=bar.lane + 1)
            if times:
                row["start_ts"] = "" if bar is None else f"{bar.start:.6f}"
                row["end_ts"] = "" if bar is None or bar.end is None else f"{bar.end:.6f}"
            rows.append(row)
    return rows


def server_rows(detail: RunDetail) -> list[dict[str, Any]]:
    """Every attempt of GET /api/v1/runs/{id}, as the server's history has it."""
    return [attempt_row(att) for batch in detail.batches for att in batch.attempts]
