"""The fold of a run's events (syncbed/fold.py) on hand-made event lists."""

from __future__ import annotations

from typing import Any

import msgspec

from syncbed.events import (
    BatchReceived,
    BatchRejected,
    BatchStored,
    Event,
    RequestThrottled,
    RunFinished,
    RunStarted,
    ServerStats,
)
from syncbed.fold import RunFold, fold
from syncbed.runs import Announced, Reported, RunTotals

T = 1000.0


def started(ts: float, run: str = "r", user: str = "u") -> RunStarted:
    return RunStarted(
        ts=ts, run=run, user=user, total_records=20, total_batches=2, batch_size=10, mode="m", concurrency=2
    )


def received(ts: float, batch: int | None, attempt: int | None, records: int = 10, run: str = "r") -> BatchReceived:
    return BatchReceived(ts=ts, run=run, batch=batch, attempt=attempt, user="u", records=records)


def stored(ts: float, batch: int | None, attempt: int | None, records: int = 10, dup: int = 0) -> BatchStored:
    return BatchStored(
        ts=ts, run="r", batch=batch, attempt=attempt, user="u", records=records, stored=records - dup,
        duplicates=dup, ms=3.0,
    )  # fmt: skip


def rejected(ts: float, batch: int, attempt: int, status: int, error: str) -> BatchRejected:
    return BatchRejected(ts=ts, run="r", batch=batch, attempt=attempt, user="u", status=status, error=error)


def throttled(ts: float, batch: int, attempt: int) -> RequestThrottled:
    return RequestThrottled(
        ts=ts, run="r", batch=batch, attempt=attempt, user="u", ip="1.2.3.4", rule="sync/ip", key="ip:1.2.3.4",
        retry_after=0.5, dry_run=False,
    )  # fmt: skip


def finished(ts: float, status: str = "partial") -> RunFinished:
    return RunFinished(ts=ts, run="r", user="u", status=status, ok_batches=1, failed_batches=1, seconds=2.0)


def attempts(view: Any) -> list[list[tuple[int | None, str, int | None]]]:
    return [[(a.attempt, a.status, a.http_status) for a in b.attempts] for b in view.batches]


def test_attempts_totals_and_the_run_as_announced_and_reported() -> None:
    events: list[Event] = [
        started(T + 1),
        received(T + 2, 0, 1),
        throttled(T + 3, 1, 1),
        stored(T + 4, 0, 1),
        received(T + 5, 1, 2),
        rejected(T + 6, 1, 2, 503, "injected_fault"),
        received(T + 7, 1, 3),
        received(T + 8, 0, 1, run="other"),  # another run's: ignored
        ServerStats(ts=T + 8, records_per_s=0, requests_per_s=0, throttled_per_s=0, in_flight=0, limiter={}),
        finished(T + 9),
    ]
    view = fold("r", events)
    assert view.totals == RunTotals(
        batches_seen=2, batches_stored=1, attempts=4, records_stored=10, records_acked=10, duplicates=0,
        throttled=1, rejected=1, events=8,
    )  # fmt: skip
    assert (view.status, view.user, view.started, view.finished) == ("partial", "u", T + 1, T + 9)
    assert view.announced == Announced(20, 2, 10, "m", 2) and view.reported == Reported(1, 1, 2.0)
    assert [b.status for b in view.batches] == ["stored", "in_flight"]
    assert attempts(view) == [
        [(1, "stored", 200)],
        [(1, "throttled", 429), (2, "rejected", 503), (3, "in_flight", None)],
    ]
    first_try = view.batches[1].attempts[0]
    assert (first_try.rule, first_try.retry_after, first_try.received, first_try.finished) == (
        "sync/ip",
        0.5,
        T + 3,
        T + 3,
    )
    assert view.batches[1].attempts[1].error == "injected_fault"


def test_a_batch_refused_as_too_large_and_sent_in_halves_counts_both_halves() -> None:
    view = fold(
        "r",
        [
            rejected(T, 0, 1, 413, "batch_too_large"),  # refused before its body was read: no records
            received(T + 1, 0, 2, records=5),
            stored(T + 2, 0, 2, records=5),
            received(T + 3, 0, 3, records=5),
            stored(T + 4, 0, 3, records=5, dup=1),
            received(T + 5, 1, 1),
            stored(T + 6, 1, 1),
        ],
    )
    split, whole = view.batches
    assert (split.status, split.split, split.records) == ("stored", True, 10)
    assert (whole.split, whole.records) == (False, 10)
    t = view.totals
    assert (t.batches_stored, t.attempts, t.records_acked, t.records_stored, t.duplicates) == (2, 4, 20, 19, 1)
    assert fold("r", [rejected(T, 0, 1, 413, "batch_too_large")]).batches[0].split is False  # never sent again


def test_a_retry_that_stores_again_counts_as_acked_twice_and_new_once() -> None:
    view = fold("r", [stored(T, 0, 1), stored(T + 1, 0, 2, dup=10)])
    assert (view.totals.records_acked, view.totals.records_stored, view.totals.duplicates) == (20, 10, 10)
    assert view.totals.batches_stored == 1


def test_failed_batches_are_those_that_failed_for_good_and_every_refused_one_once_finished() -> None:
    folded = RunFold("r")
    for event in (
        rejected(T, 0, 1, 422, "invalid_records"),  # permanent
        rejected(T, 1, 1, 503, "injected_fault"),  # the client retries it
        rejected(T, 2, 1, 0, "connection_reset"),  # no answer: retried too
        throttled(T, 3, 1),
        received(T, 4, 1),  # in flight
        rejected(T, 5, 1, 503, "injected_fault"),
        stored(T + 1, 5, 2),  # stored on the retry
    ):
        folded.add(event)
    assert folded.failed_batches() == 1 and folded.retries == 1
    folded.add(finished(T + 2))
    assert folded.failed_batches() == 4  # the run is over: every batch not stored whose last try was refused
    assert folded.is_stored(5) and not folded.is_stored(1)


def test_missing_trace_headers_make_one_batch_of_no_index_listed_last() -> None:
    view = fold("r", [stored(T, None, None), stored(T + 1, 3, 1), received(T + 2, None, 2)])
    assert [b.batch for b in view.batches] == [3, None]
    assert [a.attempt for a in view.batches[1].attempts] == [2, None]
    assert view.totals.batches_seen == 1 and view.totals.batches_stored == 1 and view.totals.attempts == 3


def test_an_unannounced_run_starts_at_its_first_event_and_keeps_its_first_user() -> None:
    late = RunStarted(
        ts=T + 5, run="r", user="owner", total_records=1, total_batches=1, batch_size=1, mode="m", concurrency=1
    )
    view = fold("r", [received(T + 1, 0, 1), late])
    assert view.started == T + 5 and view.user == "owner"  # run.started names the run's user
    bare = fold(
        "r", [received(T + 1, 0, 1), BatchReceived(ts=T + 2, run="r", batch=1, attempt=1, user=None, records=1)]
    )
    assert (bare.started, bare.user, bare.announced, bare.reported, bare.status) == (T + 1, "u", None, None, "running")


def test_a_run_announced_again_runs_again() -> None:
    view = fold("r", [started(T), finished(T + 1, "complete"), started(T + 2)])
    assert (view.status, view.started, view.finished) == ("running", T + 2, None)


def test_the_view_is_the_documented_wire_shape() -> None:
    wire = msgspec.to_builtins(fold("r", [started(T), throttled(T + 1, 0, 1)]))
    assert list(wire) == ["run", "user", "status", "started", "finished", "announced", "reported", "totals", "batches"]
    assert list(wire["batches"][0]) == ["batch", "status", "attempts"]
    assert list(wire["batches"][0]["attempts"][0]) == [
        "batch", "attempt", "status", "http_status", "records", "stored", "duplicates", "ms", "error", "rule",
        "retry_after", "received", "finished",
    ]  # fmt: skip
