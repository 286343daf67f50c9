"""Stored batches whose batch.stored may not be on the cluster's stream: a killed worker's are published by another.

A worker publishes off the request path, from memory, so a kill -9 between a batch's commit and its event's
push loses the event, though the batch (and maybe its 200) stands. With a shared stream the batch's row is
therefore noted in `unpublished` in the batch's own transaction; the note is deleted once the event is on
the stream. Every worker looks for notes older than AGE_S and publishes them again from the batches row,
under the name drawn for it at the commit (its `once`), so the stream keeps the first of the two and drops the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING

from server.storage import RecordStore, StorageUnavailable, StoredBatch
from syncbed.events import BatchStored

if TYPE_CHECKING:
    from server.bus_redis import RedisBus

log = logging.getLogger("syncbed.events")

AGE_S = 5.0  # a note this old was left by a worker that died, or that has lost Redis, before publishing
SWEEP_S = 2.0
FORGET_S = 0.5  # published notes are deleted in bulk this often: one small write, not one per batch
SWEEP_LIMIT = 500


def stored_event(row: StoredBatch) -> BatchStored:
    """The batch.stored its worker would have published (ms as at its commit: the hold after it is unknown)."""
    return BatchStored(
        ts=row.received,
        run=row.run,
        batch=row.batch,
        attempt=row.attempt,
        user=row.user,
        records=row.records,
        stored=row.stored,
        duplicates=row.duplicates,
        ms=round(row.ms, 2),
    )


class Unpublished:
    """Notes each stored batch until its event is on the stream, and publishes the ones left behind."""

    def __init__(self, storage: RecordStore, bus: RedisBus, *, age_s: float = AGE_S, sweep_s: float = SWEEP_S) -> None:
        self.storage = storage
        self.bus = bus
        self.age_s = age_s
        self.sweep_s = sweep_s
        self.republished = 0  # events this worker published for batches stored by another (or an earlier self)
        self._done: list[str] = []
        self._sent: set[str] = set()  # swept and queued, not yet known on the stream
        self._task: asyncio.Task[None] | None = None
        storage.note_unpublished = True
        bus.on_pushed = self._pushed

    def _pushed(self, names: list[str]) -> None:
        self._done += names

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="syncbed-unpublished")

    async def _run(self) -> None:
        next_sweep = time.monotonic() + self.sweep_s * random.random()  # workers started together spread out
        while True:
            await asyncio.sleep(FORGET_S)
            try:
                await self.forget()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_s
                    await self.sweep()
            except StorageUnavailable as exc:
                log.warning("unpublished batches: %s (tried again in %.1f s)", exc, self.sweep_s)
            except Exception:  # a bug must not end the sweeper for good
                log.exception("unpublished batches: sweep failed")

    async def forget(self) -> None:
        """Delete the notes of batches whose events are on the stream."""
        done, self._done = self._done, []
        if done:
            try:
                await self.storage.published(done)
            except BaseException:
                self._done[:0] = done  # kept for the next round: a note left over is only published twice
                raise
            self._sent.difference_update(done)

    async def sweep(self) -> int:
        """Publish the events of notes older than age_s (while the stream is up); how many."""
        if not self.bus.up:
            return 0
        rows = await self.storage.unpublished(time.time() - self.age_s, SWEEP_LIMIT)
        fresh = [r for r in rows if r.once not in self._sent]
        for row in fresh:
            self._sent.add(row.once)
            self.bus.publish(stored_event(row), row.once)
        if fresh:
            self.republished += len(fresh)
            log.warning("published the events of %d stored batches another worker left unpublished", len(fresh))
        return len(fresh)

    async def aclose(self) -> None:
        """Stop sweeping; delete the notes the stream has confirmed so far."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StorageUnavailable):
            await self.forget()
