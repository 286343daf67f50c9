"""A run as its events tell it: totals and every batch attempt (pure; server history and replays share it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from syncbed.contract import (
    EV_BATCH_RECEIVED,
    EV_BATCH_REJECTED,
    EV_BATCH_STORED,
    EV_REQUEST_THROTTLED,
    EV_RUN_FINISHED,
    EV_RUN_STARTED,
)

BATCH_EVENTS = (EV_BATCH_RECEIVED, EV_BATCH_STORED, EV_BATCH_REJECTED, EV_REQUEST_THROTTLED)
ANNOUNCED = ("total_records", "total_batches", "batch_size", "mode", "concurrency")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@dataclass(slots=True)
class Attempt:
    """One request for one batch: its fate, when it came and went, and why it failed if it did."""

    batch: int | None
    attempt: int | None
    status: str = "in_flight"  # in_flight | stored | rejected | throttled
    http_status: int | None = None
    records: int | None = None
    stored: int | None = None
    duplicates: int | None = None
    ms: float | None = None
    error: str | None = None
    rule: str | None = None
    retry_after: float | None = None
    received: float | None = None
    finished: float | None = None


class RunView:
    """Fold a run's events, in id order, into its announcement, totals and attempts."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.user: str | None = None
        self.announced: dict[str, object] = {}
        self.status = "running"
        self.started: float | None = None
        self.finished: float | None = None
        self.reported: dict[str, object] = {}  # what the client said at finish
        self.attempts: dict[tuple[int | None, int | None], Attempt] = {}
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.records_stored = 0
        self.duplicates = 0
        self.records_acked = 0
        self.throttled = 0
        self.rejected = 0
        self.events = 0
        self._stored_batches: set[int] = set()

    @classmethod
    def of(cls, run: str, events: Iterable[Mapping[str, object]]) -> RunView:
        view = cls(run)
        for event in events:
            view.add(event)
        return view

    def add(self, event: Mapping[str, object]) -> None:
        if event.get("run") != self.run:
            return
        self.events += 1
        kind = event.get("type")
        ts = _num(event.get("ts"))
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        user = event.get("user")
        if isinstance(user, str) and (self.user is None or kind == EV_RUN_STARTED):
            self.user = user
        if kind == EV_RUN_STARTED:
            self.announced = {k: event.get(k) for k in ANNOUNCED}
            self.status, self.started, self.finished = "running", ts, None
        elif kind == EV_RUN_FINISHED:
            status = event.get("status")
            self.status = status if isinstance(status, str) else "complete"
            self.finished = ts
            self.reported = {k: event.get(k) for k in ("ok_batches", "failed_batches", "seconds")}
        elif kind in BATCH_EVENTS:
            self._attempt_event(str(kind), event, ts)

    def _attempt_event(self, kind: str, event: Mapping[str, object], ts: float) -> None:
        key = (_int(event.get("batch")), _int(event.get("attempt")))
        a = self.attempts.get(key)
        if a is None:
            a = self.attempts[key] = Attempt(batch=key[0], attempt=key[1], received=ts)
        records = _int(event.get("records"))
        if records is not None:
            a.records = records
        if kind == EV_BATCH_RECEIVED:
            a.received = ts
        elif kind == EV_BATCH_STORED:
            a.status, a.http_status, a.finished = "stored", 200, ts
            a.stored, a.duplicates = _int(event.get("stored")), _int(event.get("duplicates"))
            a.ms = _num(event.get("ms"))
            self.records_stored += a.stored or 0
            self.duplicates += a.duplicates or 0
            self.records_acked += a.records or 0
            if a.batch is not None:
                self._stored_batches.add(a.batch)
        elif kind == EV_BATCH_REJECTED:
            a.status, a.finished = "rejected", ts
            a.http_status, a.error = _int(event.get("status")), str(event.get("error"))
            self.rejected += 1
        else:
            a.status, a.http_status, a.finished = "throttled", 429, ts
            rule = event.get("rule")
            a.rule = rule if isinstance(rule, str) else None
            a.retry_after = _num(event.get("retry_after"))
            self.throttled += 1

    def totals(self) -> dict[str, object]:
        """The figures GET /api/v1/runs shows; the SQL in server/history.py computes the same ones."""
        batches = {b for b, _ in self.attempts if b is not None}
        return {
            "batches_seen": len(batches),
            "batches_stored": len(self._stored_batches),
            "attempts": len(self.attempts),
            "records_stored": self.records_stored,
            "records_acked": self.records_acked,
            "duplicates": self.duplicates,
            "throttled": self.throttled,
            "rejected": self.rejected,
            "events": self.events,
        }

    def batches(self) -> list[dict[str, object]]:
        """Every batch with every attempt, in batch then attempt order; a batch's status is its best."""
        grouped: dict[int | None, list[Attempt]] = {}
        for a in self.attempts.values():
            grouped.setdefault(a.batch, []).append(a)
        out: list[dict[str, object]] = []
        for batch in sorted(grouped, key=lambda b: (b is None, b or 0)):
            attempts = sorted(grouped[batch], key=lambda a: (a.attempt is None, a.attempt or 0))
            stored = any(a.status == "stored" for a in attempts)
            out.append(
                {
                    "batch": batch,
                    "status": "stored" if stored else attempts[-1].status,
                    "attempts": [asdict(a) for a in attempts],
                }
            )
        return out

    def summary(self) -> dict[str, object]:
        return {
            "run": self.run,
            "user": self.user,
            "status": self.status,
            "started": self.started if self.started is not None else self.first_ts,
            "finished": self.finished,
            "announced": self.announced or None,
            "reported": self.reported or None,
            "totals": self.totals(),
        }
