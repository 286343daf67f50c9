"""One sync run as the monitor sees it: its batches, attempts, lanes, progress and rates."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from monitor.lanes import FAILED, IN_FLIGHT, STORED, THROTTLED, Attempt, LaneAllocator

RATE_WINDOW = 5.0  # seconds of stored records behind the live records/s and ETA
IDLE_AFTER = 30.0  # an unfinished run with no event for this long shows as idle


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _batch_id(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return "?" if value is None else str(value)


class Run:
    """Everything seen of one run id; fed event by event by the model."""

    def __init__(self, run: str, ts: float) -> None:
        self.run = run
        self.user: str | None = None
        self.mode: str | None = None
        self.concurrency: int | None = None
        self.total_records: int | None = None
        self.total_batches: int | None = None
        self.batch_size: int | None = None
        self.announced = False
        self.started_at = ts
        self.last_ts = ts
        self.finished_at: float | None = None
        self.status = "running"
        self.final: dict[str, Any] = {}
        self.attempts: list[Attempt] = []
        self.batches: dict[int | str, list[Attempt]] = {}
        self.stored_batches: set[int | str] = set()
        self.records_done = 0
        self.throttled = 0
        self.retries = 0
        self.rejected = 0
        self.events: list[dict[str, Any]] = []
        self.lanes = LaneAllocator()
        self._open: dict[tuple[int | str, int], Attempt] = {}
        self._recent: deque[tuple[float, int]] = deque()
        self._attempt_keys: set[tuple[int | str, int]] = set()

    # --- feeding ---------------------------------------------------------
    def on_started(self, ev: Mapping[str, Any], ts: float) -> None:
        self.announced = True
        self.started_at = min(self.started_at, ts)
        self.user = ev.get("user") or self.user
        self.mode = ev.get("mode") or self.mode
        self.concurrency = _int(ev.get("concurrency"), 0) or None
        self.total_records = _int(ev.get("total_records"), -1)
        self.total_batches = _int(ev.get("total_batches"), -1)
        self.batch_size = _int(ev.get("batch_size"), 0) or None
        if self.total_records < 0:
            self.total_records = None
        if self.total_batches < 0:
            self.total_batches = None

    def on_received(self, ev: Mapping[str, Any], ts: float) -> None:
        att = self._new_attempt(ev, ts)
        att.records = _int(ev.get("records"))
        self._open[(att.batch, att.attempt)] = att

    def on_stored(self, ev: Mapping[str, Any], ts: float) -> None:
        att = self._close(ev, ts, STORED)
        att.records = _int(ev.get("records"), att.records)
        att.stored = _int(ev.get("stored"))
        att.duplicates = _int(ev.get("duplicates"))
        att.ms = _float(ev.get("ms"))
        att.status = 200
        if att.batch not in self.stored_batches:
            self.stored_batches.add(att.batch)
            self.records_done += att.records
            self._recent.append((ts, att.records))

    def on_rejected(self, ev: Mapping[str, Any], ts: float) -> None:
        att = self._close(ev, ts, FAILED)
        att.status = _int(ev.get("status")) or None
        att.error = ev.get("error")
        self.rejected += 1

    def on_throttled(self, ev: Mapping[str, Any], ts: float) -> None:
        att = self._new_attempt(ev, ts)
        self._end(att, ts, THROTTLED)
        att.status = 429
        att.rule = ev.get("rule")
        att.retry_after = _float(ev.get("retry_after"))
        self.throttled += 1

    def on_finished(self, ev: Mapping[str, Any], ts: float) -> None:
        self.finished_at = ts
        self.status = str(ev.get("status") or "complete")
        self.final = dict(ev)
        seconds = _float(ev.get("seconds"))
        if seconds and seconds > 0 and not self.announced:
            self.started_at = min(self.started_at, ts - seconds)

    # --- attempts and lanes ---------------------------------------------
    def _key(self, ev: Mapping[str, Any]) -> tuple[int | str, int]:
        return _batch_id(ev.get("batch")), _int(ev.get("attempt"), 1)

    def _new_attempt(self, ev: Mapping[str, Any], start: float) -> Attempt:
        batch, attempt = self._key(ev)
        att = Attempt(batch=batch, attempt=attempt, start=start, lane=self.lanes.assign(start))
        if attempt > 1 and (batch, attempt) not in self._attempt_keys:
            self.retries += 1
        self._attempt_keys.add((batch, attempt))
        history = self.batches.setdefault(batch, [])
        if history and history[-1].next_start is None:
            history[-1].next_start = start
        history.append(att)
        self.attempts.append(att)
        return att

    def _close(self, ev: Mapping[str, Any], ts: float, state: str) -> Attempt:
        att = self._open.pop(self._key(ev), None)
        if att is None:
            # Its start was not seen (missed, or refused before processing): draw it from `ms` back.
            ms = _float(ev.get("ms")) or 0.0
            att = self._new_attempt(ev, min(ts, ts - ms / 1000.0))
        self._end(att, ts, state)
        return att

    def _end(self, att: Attempt, ts: float, state: str) -> None:
        att.end = max(ts, att.start)
        att.state = state
        self.lanes.release(att.lane, att.end)

    # --- derived ---------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def in_flight(self) -> int:
        return len(self._open)

    def batches_done(self) -> int:
        return len(self.stored_batches)

    def failed_batches(self) -> int:
        """Batches whose latest attempt failed for good (or at all, once the run ended)."""
        if self.finished and "failed_batches" in self.final:
            return _int(self.final.get("failed_batches"))
        count = 0
        for batch, history in self.batches.items():
            last = history[-1]
            if batch in self.stored_batches or last.state in (IN_FLIGHT, STORED):
                continue
            if self.finished or (last.state == FAILED and not last.retryable()):
                count += 1
        return count

    def progress(self) -> float | None:
        """Fraction of records acknowledged, when the run announced its total."""
        if self.total_records:
            return min(1.0, self.records_done / self.total_records)
        if self.total_records == 0:
            return 1.0
        return None

    def elapsed(self, now: float) -> float:
        end = self.finished_at if self.finished_at is not None else max(now, self.last_ts)
        return max(0.0, end - self.started_at)

    def records_per_s(self, now: float) -> float:
        """Recent rate while running, the average once finished."""
        if self.finished:
            seconds = _float(self.final.get("seconds")) or self.elapsed(now)
            return self.records_done / seconds if seconds > 0 else 0.0
        while self._recent and self._recent[0][0] < now - RATE_WINDOW:
            self._recent.popleft()
        window = min(RATE_WINDOW, self.elapsed(now))
        if window <= 0:
            return 0.0
        return sum(n for t, n in self._recent if t <= now) / window

    def eta(self, now: float) -> float | None:
        """Seconds left at the recent rate; 0 when done, None when unknown."""
        if self.finished:
            return 0.0
        if self.total_records is None:
            return None
        left = self.total_records - self.records_done
        if left <= 0:
            return 0.0
        rate = self.records_per_s(now)
        return left / rate if rate > 0 else None

    def display_status(self, now: float) -> str:
        if not self.finished and now - self.last_ts > IDLE_AFTER:
            return "idle"
        return self.status

    def waiting_until(self, att: Attempt, now: float) -> float | None:
        """End of the gap after `att` before its batch's next attempt, or None when no gap."""
        if att.state not in (THROTTLED, FAILED) or att.end is None:
            return None
        if att.next_start is not None:
            return att.next_start
        if self.finished or not att.retryable() or att.batch in self.stored_batches:
            return None
        return max(now, att.end)
