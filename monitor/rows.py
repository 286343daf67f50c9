"""A run's attempts as table rows: what the detail screen shows and the CSV export writes."""

from __future__ import annotations

from typing import Any

from monitor.runs import Run

DETAIL_COLUMNS = ("batch", "attempt", "state", "status", "error", "records", "stored", "duplicates", "ms", "lane")


def model_rows(run: Run) -> list[dict[str, Any]]:
    """Every attempt the monitor saw for a run, batch by batch."""
    rows = []
    for batch, history in run.batches.items():
        for att in history:
            rows.append(
                {
                    "batch": batch,
                    "attempt": att.attempt,
                    "state": att.state,
                    "status": att.status,
                    "error": att.error or "",
                    "records": att.records,
                    "stored": att.stored,
                    "duplicates": att.duplicates,
                    "ms": att.ms if att.ms is not None else "",
                    "lane": att.lane + 1,
                }
            )
    return rows
