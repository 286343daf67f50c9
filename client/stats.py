"""`python -m client stats`: durations, records, 429s and retries of recent runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.outbox import RUN_INTERRUPTED


@dataclass(frozen=True, slots=True)
class RunStats:
    runs: int
    last: dict[str, Any] | None
    avg_seconds: float
    avg_records: float
    avg_throttled: float
    avg_retries: float
    complete: int
    interrupted: int  # runs killed before they finished (their figures are what they had done by then)
    recent: list[dict[str, Any]]


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
        interrupted=sum(1 for run in runs if run["status"] == RUN_INTERRUPTED),
        recent=runs,
    )


def render(stats: RunStats, pending: int) -> list[str]:
    lines = [f"Outbox: {pending:,} records waiting to sync."]
    if stats.last is None:
        lines.append("No sync runs recorded yet.")
        return lines
    last = stats.last
    lines.append(
        f"Last sync: {_figures(last)} (mode {last['mode']}, up to {last['concurrency']} in flight, run {last['run']})"
    )
    interrupted = f", {stats.interrupted} interrupted" if stats.interrupted else ""
    lines.append(
        f"Average of the last {stats.runs} runs: {stats.avg_seconds:.2f}s, {stats.avg_records:,.0f} records, "
        f"{stats.avg_throttled:.1f} 429s, {stats.avg_retries:.1f} retries; "
        f"{stats.complete}/{stats.runs} complete{interrupted}"
    )
    if stats.runs > 1:
        lines.append("Recent runs, newest first:")
        lines.extend(f"  run {run['run']}: {_figures(run)}" for run in stats.recent)
    return lines


def _figures(run: dict[str, Any]) -> str:
    return (
        f"{run['status']}, {run['seconds']:.2f}s, {run['synced']:,}/{run['records']:,} records, "
        f"{run['ok_batches']}/{run['batches']} batches, {run['throttled']} 429s, {run['retries']} retries"
    )
