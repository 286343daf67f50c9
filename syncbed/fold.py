"""A run's events folded into its totals and batches: pure, one event at a time.

The server's run view (GET /api/v1/runs/{id}) and the monitor's run rows are both this fold, so
they count the same way; the SQL totals of the run list are tested against it.
"""

from __future__ import annotations

from collections.abc import Iterable

from syncbed.contract import is_temporary
from syncbed.events import (
    RUN_EVENT_CLASSES,
    BatchEvent,
    BatchReceived,
    BatchRejected,
    BatchStored,
    Event,
    RequestThrottled,
    RunFinished,
    RunStarted,
)
from syncbed.runs import (
    IN_FLIGHT,
    REJECTED,
    STORED,
    THROTTLED,
    Announced,
    AttemptView,
    BatchView,
    Reported,
    RunDetail,
    RunTotals,
)

Key = tuple[int | None, int | None]  # (batch, attempt), as the trace headers gave them


def _attempt_order(a: AttemptView) -> tuple[bool, int]:
    return a.attempt is None, a.attempt or 0


def _batch_order(batch: int | None) -> tuple[bool, int]:
    return batch is None, batch or 0


class RunFold:
    """One run's announcement, status, totals and attempts, kept up to date event by event."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.user: str | None = None
        self.status = "running"
        self.started: float | None = None  # run.started's time
        self.finished: float | None = None
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.announced: Announced | None = None
        self.reported: Reported | None = None
        self.attempts: dict[Key, AttemptView] = {}
        self.retries = 0  # distinct attempts after a batch's first
        self._by_batch: dict[int | None, list[AttemptView]] = {}
        self._stored_batches: set[int] = set()
        self._totals = RunTotals()

    def add(self, event: Event) -> None:
        """Take one event; another run's, and events of no run, are ignored."""
        if not isinstance(event, RUN_EVENT_CLASSES) or event.run != self.run:
            return
        ts = event.ts
        self._totals.events += 1
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        if event.user is not None and (self.user is None or isinstance(event, RunStarted)):
            self.user = event.user
        if isinstance(event, RunStarted):
            self.announced = Announced(
                event.total_records, event.total_batches, event.batch_size, event.mode, event.concurrency
            )
            self.status, self.started, self.finished = "running", ts, None
        elif isinstance(event, RunFinished):
            self.status, self.finished = event.status, ts
            self.reported = Reported(event.ok_batches, event.failed_batches, event.seconds)
        else:
            self._batch_event(event, ts)

    def _attempt(self, key: Key, ts: float) -> AttemptView:
        a = self.attempts.get(key)
        if a is None:
            a = self.attempts[key] = AttemptView(batch=key[0], attempt=key[1], received=ts)
            self._by_batch.setdefault(key[0], []).append(a)
            self._totals.attempts += 1
            if key[1] is not None and key[1] > 1:
                self.retries += 1
        return a

    def _batch_event(self, event: BatchEvent, ts: float) -> None:
        t = self._totals
        if event.batch is not None and event.batch not in self._by_batch:
            t.batches_seen += 1
        a = self._attempt((event.batch, event.attempt), ts)
        if isinstance(event, BatchReceived):
            a.received, a.records = ts, event.records
        elif isinstance(event, BatchStored):
            a.status, a.http_status, a.finished, a.ms = STORED, 200, ts, event.ms
            a.records, a.stored, a.duplicates = event.records, event.stored, event.duplicates
            t.records_stored += event.stored
            t.duplicates += event.duplicates
            t.records_acked += event.records
            if event.batch is not None and event.batch not in self._stored_batches:
                self._stored_batches.add(event.batch)
                t.batches_stored += 1
        elif isinstance(event, BatchRejected):
            a.status, a.http_status, a.error, a.finished = REJECTED, event.status, event.error, ts
            if event.records is not None:
                a.records = event.records
            t.rejected += 1
        elif isinstance(event, RequestThrottled):
            a.status, a.http_status, a.finished = THROTTLED, 429, ts
            a.rule, a.retry_after = event.rule, event.retry_after
            t.throttled += 1

    def totals(self) -> RunTotals:
        t = self._totals
        return RunTotals(
            t.batches_seen,
            t.batches_stored,
            t.attempts,
            t.records_stored,
            t.records_acked,
            t.duplicates,
            t.throttled,
            t.rejected,
            t.events,
        )

    def batches(self) -> list[BatchView]:
        """Every batch with every attempt, in batch then attempt order."""
        out = []
        for batch in sorted(self._by_batch, key=_batch_order):
            attempts = sorted(self._by_batch[batch], key=_attempt_order)
            stored = any(a.status == STORED for a in attempts)
            out.append(BatchView(batch, STORED if stored else attempts[-1].status, attempts))
        return out

    def is_stored(self, batch: int | None) -> bool:
        return batch in self._stored_batches

    def failed_batches(self) -> int:
        """Batches not stored whose last attempt failed for good; once the run finished, every refused one."""
        count = 0
        for attempts in self._by_batch.values():
            last = max(attempts, key=_attempt_order)
            if any(a.status == STORED for a in attempts) or last.status == IN_FLIGHT:
                continue
            temporary = last.status == THROTTLED or is_temporary(last.http_status or None)  # 0: no answer
            if self.finished is not None or not temporary:
                count += 1
        return count

    def view(self) -> RunDetail:
        started = self.started if self.started is not None else self.first_ts
        return RunDetail(
            self.run,
            self.user,
            self.status,
            started,
            self.finished,
            self.announced,
            self.reported,
            self.totals(),
            self.batches(),
        )


def fold(run: str, events: Iterable[Event]) -> RunDetail:
    """The run `run` as `events` (in id order) tell it."""
    folded = RunFold(run)
    for event in events:
        folded.add(event)
    return folded.view()
