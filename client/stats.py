"""`python -m client stats`: durations, records, 429s and retries of recent runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RunStats:
    runs: int
    last: dict[str, Any] | None
    avg_seconds: float
    avg_records: float
    avg_throttled: float
    avg_retries: float
    complete: int


def summarize(runs: list[dict[str, Any]]) -> RunStats:
    """Pure: `runs` newest first, as `Outbox.recent_runs` returns them."""
    n = len(runs)

    def avg(key: str) -> float:
        return sum(float(run[key]) for run in runs) / n if n else 0.0

    return RunStats(
        runs=n,
        last=runs[0] if runs else None,
        avg_seconds=avg("seconds"),
        avg_records=avg("records"),
        avg_throttled=avg("throttled"),
        avg_retries=avg("retries"),
        complete=sum(1 for run in runs if run["status"] == "complete"),
    )


def render(stats: RunStats, pending: int) -> list[str]:
    lines = [f"Outbox: {pending:,} records waiting to sync."]
    if stats.last is None:
        lines.append("No sync runs recorded yet.")
        return lines
    last = stats.last
    lines.append(
        f"Last sync: {last['status']}, {last['seconds']:.2f}s, {last['synced']:,}/{last['records']:,} records, "
        f"{last['ok_batches']}/{last['batches']} batches, {last['throttled']} 429s, {last['retries']} retries "
        f"(mode {last['mode']}, up to {last['concurrency']} in flight, run {last['run']})"
    )
    lines.append(
        f"Average of the last {stats.runs} runs: {stats.avg_seconds:.2f}s, {stats.avg_records:,.0f} records, "
        f"{stats.avg_throttled:.1f} 429s, {stats.avg_retries:.1f} retries; {stats.complete}/{stats.runs} complete"
    )
    return lines
