"""What a sync reports: its status from its batches, and the JSON the CLI prints."""

from __future__ import annotations

import json

from client.result import FailedBatch, Progress, SyncResult


def result(**over: object) -> SyncResult:
    base: dict[str, object] = {"run": "r1", "mode": "adaptive", "concurrency": 4, "total_batches": 3}
    return SyncResult(**{**base, **over})  # type: ignore[arg-type]


def test_every_batch_stored_is_complete() -> None:
    r = result(ok_batches=3)
    assert r.complete and r.status == "complete"


def test_some_batches_stored_is_partial() -> None:
    r = result(ok_batches=2, failed=[FailedBatch(2, 1000, "HTTP 422 invalid_records", 422, 1)])
    assert not r.complete and r.status == "partial"


def test_no_batch_stored_is_failed() -> None:
    r = result(ok_batches=0, failed=[FailedBatch(i, 1000, "network error") for i in range(3)])
    assert r.status == "failed"


def test_an_interrupted_run_without_failures_is_not_complete() -> None:
    assert result(ok_batches=2).status == "partial"  # a batch neither stored nor failed (cancelled)
    assert result(ok_batches=0).status == "failed"


def test_nothing_to_send_is_complete() -> None:
    assert result(total_batches=0).status == "complete"


def test_to_json_adds_the_derived_fields_and_is_json() -> None:
    failed = [FailedBatch(1, 500, "HTTP 503 injected_fault", 503, 9)]
    data = result(ok_batches=2, total_batches=4, total_records=2500, failed=failed).to_json()  # one never ended
    assert (data["status"], data["complete"], data["failed_batches"]) == ("partial", False, 1)
    assert data["failed"] == [
        {"batch": 1, "records": 500, "reason": "HTTP 503 injected_fault", "status": 503, "attempts": 9}
    ]
    assert data["total_records"] == 2500 and data["run"] == "r1"
    assert json.loads(json.dumps(data)) == data


def test_progress_fraction() -> None:
    def progress(done: int, total: int) -> Progress:
        return Progress(done, total, 0, 0, 0, 0, 0, 0, 0.0, 0.0, None)

    assert progress(250, 1000).fraction == 0.25
    assert progress(1000, 1000).fraction == 1.0
    assert progress(0, 0).fraction == 1.0  # nothing to do is done
