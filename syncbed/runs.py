"""A run as the server answers it: GET /api/v1/runs (the list) and GET /api/v1/runs/{id} (one run)."""

from __future__ import annotations

import msgspec

from syncbed.contract import E_BATCH_TOO_LARGE

# An attempt's status (and so a batch's): in_flight until its answer, then stored, rejected or throttled.
IN_FLIGHT = "in_flight"
STORED = "stored"
REJECTED = "rejected"
THROTTLED = "throttled"


class RunTotals(msgspec.Struct):
    """What the server counts from a run's events (the same in the list, by SQL, and in one run, by the fold)."""

    batches_seen: int = 0  # distinct batch indexes
    batches_stored: int = 0  # distinct batch indexes with a stored attempt
    attempts: int = 0  # distinct (batch, attempt) pairs
    records_stored: int = 0  # new records
    records_acked: int = 0  # records in stored attempts, duplicates included
    duplicates: int = 0
    throttled: int = 0
    rejected: int = 0
    events: int = 0


class AttemptView(msgspec.Struct):
    """One request for one batch: its fate, when it came and went, and why it failed if it did."""

    batch: int | None
    attempt: int | None
    status: str = IN_FLIGHT
    http_status: int | None = None  # 0: the connection was dropped, no answer
    records: int | None = None
    stored: int | None = None
    duplicates: int | None = None
    ms: float | None = None
    error: str | None = None  # a rejection's code
    rule: str | None = None  # the throttle that refused it
    retry_after: float | None = None
    received: float | None = None
    finished: float | None = None


class BatchView(msgspec.Struct):
    """A batch with every attempt, in attempt order; its status is `stored` if any attempt stored it."""

    batch: int | None
    status: str
    attempts: list[AttemptView]

    @property
    def records(self) -> int:
        """Records acknowledged for this batch: every stored attempt's (the halves of a split add up)."""
        return sum(a.records or 0 for a in self.attempts if a.status == STORED)

    @property
    def split(self) -> bool:
        """The server refused it as too large and the client sent it again (in parts)."""
        return any(a.error == E_BATCH_TOO_LARGE for a in self.attempts[:-1])


class Announced(msgspec.Struct):
    """What the client announced (POST /api/v1/runs)."""

    total_records: int
    total_batches: int
    batch_size: int
    mode: str
    concurrency: int


class Reported(msgspec.Struct):
    """What the client reported at the end (POST /api/v1/runs/{id}/finish)."""

    ok_batches: int
    failed_batches: int
    seconds: float


class RunDetail(msgspec.Struct):
    """GET /api/v1/runs/{id}: the run, its totals and every batch with every attempt."""

    run: str
    user: str | None
    status: str  # running until finished, then the client's complete / partial / failed
    started: float | None
    finished: float | None
    announced: Announced | None
    reported: Reported | None
    totals: RunTotals
    batches: list[BatchView]


class RunSummary(msgspec.Struct):
    """One run of GET /api/v1/runs: its row in the history, with its totals."""

    run: str
    user: str | None
    status: str
    announced: bool
    started: float
    finished: float | None
    last_ts: float
    total_records: int | None
    total_batches: int | None
    batch_size: int | None
    mode: str | None
    concurrency: int | None
    ok_batches: int | None
    failed_batches: int | None
    seconds: float | None
    totals: RunTotals


class RunList(msgspec.Struct):
    """GET /api/v1/runs: recent runs, newest first."""

    runs: list[RunSummary]
