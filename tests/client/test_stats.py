"""`python -m client stats`: averages over the recent runs and the lines it prints."""

from __future__ import annotations

from typing import Any

from client.outbox import RUN_INTERRUPTED
from client.stats import render, summarize


def run(name: str, status: str = "complete", seconds: float = 2.0, records: int = 1000, **over: Any) -> dict[str, Any]:
    base = {
        "run": name,
        "status": status,
        "seconds": seconds,
        "records": records,
        "synced": records,
        "batches": 1,
        "ok_batches": 1,
        "throttled": 0,
        "retries": 0,
        "mode": "adaptive",
        "concurrency": 5,
    }
    return {**base, **over}


def test_no_runs_yet() -> None:
    stats = summarize([])
    assert (stats.runs, stats.last, stats.avg_seconds, stats.complete, stats.interrupted) == (0, None, 0.0, 0, 0)
    assert render(stats, pending=0) == ["Outbox: 0 records waiting to sync.", "No sync runs recorded yet."]


def test_one_run_is_the_last_and_the_average_without_a_list() -> None:
    stats = summarize([run("a", throttled=3, retries=1)])
    lines = render(stats, pending=12_345)
    assert lines == [
        "Outbox: 12,345 records waiting to sync.",
        "Last sync: complete, 2.00s, 1,000/1,000 records, 1/1 batches, 3 429s, 1 retries "
        "(mode adaptive, up to 5 in flight, run a)",
        "Average of the last 1 runs: 2.00s, 1,000 records, 3.0 429s, 1.0 retries; 1/1 complete",
    ]


def test_interrupted_runs_are_counted_and_said() -> None:
    runs = [run("c", RUN_INTERRUPTED, 1.0, 400), run("b", "partial", 3.0, 2000), run("a", seconds=2.0, records=600)]
    stats = summarize(runs)
    assert stats.last is runs[0]
    assert (stats.avg_seconds, stats.avg_records) == (2.0, 1000.0)
    assert (stats.complete, stats.interrupted) == (1, 1)
    lines = render(stats, pending=0)
    assert lines[2].endswith("; 1/3 complete, 1 interrupted")
    assert lines[3] == "Recent runs, newest first:"
    assert [line.split(":")[0] for line in lines[4:]] == ["  run c", "  run b", "  run a"]
