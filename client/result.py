"""What a sync run reports: live progress snapshots and the final result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FailedBatch:
    """A batch that did not make it, and why (its records stay in the outbox)."""

    batch: int
    records: int
    reason: str
    status: int | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """A live snapshot, passed to `on_progress`."""

    records_done: int
    records_total: int
    batches_done: int
    batches_failed: int
    batches_total: int
    in_flight: int
    throttled: int
    retries: int
    elapsed: float
    rate: float  # records per second so far
    eta: float | None  # seconds left: the bound for what is left at the run's pace; None until an answer
    bound: float | None = None  # seconds the batches left need at least (syncbed.physics), from now
    pace: float | None = None  # how much slower than its bound the run has gone so far (>= 1)

    @property
    def fraction(self) -> float:
        return 1.0 if self.records_total == 0 else self.records_done / self.records_total


UNNAMED_LIMIT = "the server's limit"  # a 429 that names no rule (Rack::Attack's plain text)


@dataclass(slots=True)
class SyncResult:
    """The outcome of `SyncManager.sync()`."""

    run: str
    mode: str
    concurrency: int  # the most requests that were in flight at once
    total_records: int = 0
    total_batches: int = 0
    ok_batches: int = 0
    synced_records: int = 0
    stored: int = 0
    duplicates: int = 0
    requests: int = 0
    throttled: int = 0  # 429 answers (resent without using up an attempt)
    # The 429s by the limit that refused them: the rule the server named, else UNNAMED_LIMIT.
    throttled_by: dict[str, int] = field(default_factory=dict)
    retries: int = 0  # resends after a 5xx, timeout or network error
    splits: int = 0  # 413 answers that split a batch in two
    duration: float = 0.0
    started_at: float = 0.0
    failed: list[FailedBatch] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed and self.ok_batches == self.total_batches

    @property
    def status(self) -> str:
        """`complete`, `partial` (some batches stored) or `failed` (none)."""
        if self.complete:
            return "complete"
        return "partial" if self.ok_batches > 0 else "failed"

    def met(self, rule: str | None) -> None:
        """One 429, from `rule` (None: the answer named none)."""
        self.throttled += 1
        name = rule or UNNAMED_LIMIT
        self.throttled_by[name] = self.throttled_by.get(name, 0) + 1

    @property
    def limits_met(self) -> str:
        """'sync/user 4, sync/ip 1', most first; '' when nothing was refused."""
        ranked = sorted(self.throttled_by.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{name} {n}" for name, n in ranked)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["complete"] = self.complete
        data["failed_batches"] = len(self.failed)
        return data
