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
    """Puts each attempt on the lowest lane whose previous attempt ended by its start."""

    def __init__(self) -> None:
        self._ends: list[float | None] = []  # None: the lane's attempt is still open

    def assign(self, start: float) -> int:
        for lane, end in enumerate(self._ends):
            if end is not None and end <= start:
                self._ends[lane] = None
                return lane
        self._ends.append(None)
        return len(self._ends) - 1

    def release(self, lane: int, end: float) -> None:
        self._ends[lane] = end

    @property
    def count(self) -> int:
        return len(self._ends)

    def busy(self) -> int:
        return sum(1 for end in self._ends if end is None)
