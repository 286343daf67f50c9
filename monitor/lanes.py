"""Batch attempts and their placement on lanes (one lane = one concurrency slot)."""

from __future__ import annotations

from dataclasses import dataclass

from syncbed.contract import is_temporary

IN_FLIGHT = "in_flight"
STORED = "stored"
THROTTLED = "throttled"
FAILED = "failed"
WAITING = "waiting"  # not an attempt state: the gap before a batch's next attempt

STATES = (IN_FLIGHT, STORED, THROTTLED, WAITING, FAILED)
STATE_LABELS = {
    IN_FLIGHT: "in flight",
    STORED: "stored",
    THROTTLED: "throttled (429)",
    WAITING: "waiting to retry",
    FAILED: "failed",
}


@dataclass(slots=True)
class Attempt:
    """One try at sending one batch: a bar on a lane from `start` to `end` (its figures are the run's fold's)."""

    batch: int | None
    attempt: int | None
    start: float
    lane: int = 0
    end: float | None = None
    state: str = IN_FLIGHT
    status: int | None = None  # the HTTP status; None while in flight or when no answer came
    next_start: float | None = None  # start of this batch's next attempt, once known

    @property
    def open(self) -> bool:
        return self.end is None

    def retryable(self) -> bool:
        """Whether a client would try this batch again after this attempt."""
        if self.state == THROTTLED:
            return True
        return self.state == FAILED and is_temporary(self.status)


class LaneAllocator:
    """Puts each attempt on the lowest lane whose previous attempt ended by its start.

    A batch refused with a 429 keeps its slot while it waits, as the client's worker does: its lane
    is held for that batch until its retry (or until the wait is over), so every 429 of a burst
    lands on a lane of its own and the retry follows on the same lane.
    """

    def __init__(self) -> None:
        self._ends: list[float | None] = []  # None: the lane's attempt is still open
        self._held: dict[int | None, int] = {}  # batch -> the lane it waits on

    def assign(self, start: float, batch: int | None = None) -> int:
        lane = self._held.pop(batch, None) if batch is not None else None
        if lane is not None:
            self._ends[lane] = None
            return lane
        for lane, end in enumerate(self._ends):
            if end is not None and end <= start and lane not in self._held.values():
                self._ends[lane] = None
                return lane
        self._ends.append(None)
        return len(self._ends) - 1

    def release(self, lane: int, end: float) -> None:
        self._ends[lane] = end

    def hold(self, lane: int, batch: int | None, until: float) -> None:
        """Keep `lane` for `batch`'s retry; after `until` anyone may have it."""
        self._ends[lane] = until
        if batch is not None:
            self._held[batch] = lane

    def expire(self, now: float) -> None:
        """Give back the lanes of waits that are over without a retry (a client that gave up)."""
        for batch, lane in list(self._held.items()):
            end = self._ends[lane]
            if end is not None and end < now:
                del self._held[batch]

    @property
    def count(self) -> int:
        return len(self._ends)

    def busy(self) -> int:
        return sum(1 for end in self._ends if end is None)
