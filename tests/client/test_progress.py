from __future__ import annotations

from client.progress import clock, status_line, summary
from client.result import FailedBatch, Progress, SyncResult
from client.stats import render, summarize


def result(**kw: object) -> SyncResult:
    base: dict[str, object] = dict(
        run="r1", mode="adaptive", concurrency=5, total_records=10_000, total_batches=10, ok_batches=10,
        synced_records=10_000, requests=12, throttled=2, duration=2.0,
    )  # fmt: skip
    base.update(kw)
    return SyncResult(**base)  # type: ignore[arg-type]


def test_complete_headline() -> None:
    [line] = summary(result())
    assert line.startswith("Sync complete (10/10 batches): 10,000 records in 2.00s (5,000 rec/s)")
    assert "2 429s" in line


def test_the_headline_says_which_limits_refused() -> None:
    r = result(throttled=0)
    for rule in ("sync/user", None, "sync/user", "sync/ip", "sync/user"):
        r.met(rule)
    assert r.throttled == 5 and r.throttled_by == {"sync/user": 3, "the server's limit": 1, "sync/ip": 1}
    [line] = summary(r)
    assert "5 429s (sync/user 3, sync/ip 1, the server's limit 1), 0 retries" in line
    assert r.to_json()["throttled_by"] == {"sync/user": 3, "the server's limit": 1, "sync/ip": 1}
    assert "429s (" not in summary(result())[0]  # no 429 met by the manager: nothing to name


def test_partial_lists_each_failure_and_how_to_retry() -> None:
    failed = [FailedBatch(7, 1000, "HTTP 422 invalid_records: bad url", 422, 1), FailedBatch(2, 500, "x", None, 9)]
    lines = summary(result(ok_batches=8, synced_records=8_500, failed=failed))
    assert lines[0].startswith("Sync partially complete (8/10 batches)")
    assert lines[1] == "  batch 2 (500 records, 9 attempts): x"
    assert lines[2] == "  batch 7 (1,000 records, 1 attempts): HTTP 422 invalid_records: bad url"
    assert "python -m client sync" in lines[3]


def test_many_failures_are_summarised() -> None:
    failed = [FailedBatch(i, 1, "r") for i in range(30)]
    lines = summary(result(ok_batches=0, total_batches=30, failed=failed))
    assert "… and 10 more failed batches" in lines[-2]
    assert result(ok_batches=0, failed=failed).status == "failed"


def test_nothing_to_sync() -> None:
    assert summary(result(total_records=0, total_batches=0, ok_batches=0))[0].startswith("Sync complete (0/0 batches)")


def test_status_line_and_clock() -> None:
    p = Progress(2500, 10_000, 2, 0, 10, 5, 1, 0, 1.0, 2500.0, 3.0)
    line = status_line(p)
    assert "2,500/10,000 records" in line and "ETA 0:00:03" in line and "in flight 5" in line
    assert clock(None) == "-:--:--" and clock(3725) == "1:02:05"


def test_stats_last_and_average() -> None:
    runs = [
        {"run": "b", "status": "partial", "seconds": 4.0, "records": 2000, "synced": 1000, "batches": 2,
         "ok_batches": 1, "throttled": 3, "retries": 1, "mode": "adaptive", "concurrency": 5},
        {"run": "a", "status": "complete", "seconds": 2.0, "records": 1000, "synced": 1000, "batches": 1,
         "ok_batches": 1, "throttled": 1, "retries": 0, "mode": "sequential", "concurrency": 1},
    ]  # fmt: skip
    stats = summarize(runs)
    assert (stats.avg_seconds, stats.avg_records, stats.avg_throttled, stats.complete) == (3.0, 1500.0, 2.0, 1)
    lines = render(stats, pending=1000)
    assert lines[0] == "Outbox: 1,000 records waiting to sync."
    assert lines[1].startswith("Last sync: partial, 4.00s, 1,000/2,000 records")
    assert "Average of the last 2 runs: 3.00s" in lines[2]


def test_plain_progress_prints_whole_lines_at_most_every_few_seconds() -> None:
    import io

    from rich.console import Console

    from client.progress import PlainProgress

    t = [100.0]
    buf = io.StringIO()
    plain = PlainProgress(Console(file=buf, width=40), every=5.0, now=lambda: t[0])
    p = Progress(2_500, 10_000, 2, 0, 10, in_flight=5, throttled=0, retries=0, elapsed=1.0, rate=2500.0, eta=3.0)
    for step in (1.0, 2.0, 4.0, 1.0, 3.0, 3.0):  # 1, 3, 7 (print), 8, 11, 14 (print)
        t[0] += step
        plain(p)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[0] == status_line(p)  # whole, not cropped to the 40 columns
