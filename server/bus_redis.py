"""The event bus of a cluster: every worker's events on one Redis stream, read back by every worker in one order.

publish() stays synchronous and never waits: the event goes on a local outbox, a pusher task appends it to
the stream (server/stream_redis.py numbers it), and each worker's reader task hands what the stream holds to
its own subscribers, ring buffer and taps (the history). While Redis is away the bus is this worker's alone:
its subscribers get its events at once, without ids, and the outbox keeps them for the stream, which gets
them when Redis is back (its readers elsewhere see them then; here they are not sent twice).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import os
import random
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import msgspec

from server.cluster_stats import ClusterStats
from server.events import EventBus, Filter, Published, Subscriber, TooManySubscribers
from server.limiter_redis import RedisStore, redact
from server.stats import StatsMeter
from server.stream_redis import BACKOFF_S, REDIS_ERRORS, Entry, Stream
from syncbed.events import EV_STREAM_RESET, BusDown, BusUp, Event, StreamReset

if TYPE_CHECKING:
    from server.throttle import Limiter
    from syncbed.responses import WorkerStats

log = logging.getLogger("syncbed.events")

PUSH_BATCH = 500
OUTBOX_SIZE = 100_000  # events kept for the stream while it is away; beyond, the oldest are given up
SETTLE_S = 2.0


def share_hot_keys(bus: EventBus, limiter: Limiter) -> None:
    """On a shared limiter store, each worker's hottest keys go out with its stats share and come back merged."""
    store = limiter.store
    if isinstance(bus, RedisBus) and isinstance(store, RedisStore):
        bus.cluster.share_hot_keys(store.own_hot_keys, store.others_hot_keys)


def worker_id() -> str:
    """This process among the cluster's: host, pid and a random tag (a restarted container may reuse both)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RedisBus(EventBus):
    """EventBus's interface over a Redis stream: one id sequence for the cluster, resume from any worker."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        maxlen: int = 10_000,
        worker: str | None = None,
        max_subscribers: int = 16,
        subscriber_queue: int = 5_000,
        stats_interval: float = 1.0,
        outbox_size: int = OUTBOX_SIZE,
    ) -> None:
        super().__init__(maxlen, max_subscribers, subscriber_queue, stats_interval)
        self.url = url
        self.name = redact(url)
        self.worker = worker or worker_id()
        self.maxlen = maxlen
        self.up = True  # until a command fails: events published before start() wait on the outbox
        self.stream = Stream(url, self.worker, maxlen)
        self.cluster = ClusterStats(self.stream.redis, self.worker)
        self._outbox: deque[tuple[int, Published, str | None]] = deque()
        self.on_pushed: Callable[[list[str]], None] | None = None  # told the `once` names now on the stream
        self.outbox_size = outbox_size
        self.given_up = 0  # events the outbox had no room for while the stream was away
        self._seq = 0  # this worker's own count of what it published: the stream's dedup key
        self._local: deque[list[int]] = deque()  # [first, last] seqs its subscribers already had, locally
        self._local_count = 0
        self._down_since = 0.0
        self._read_after: int | None = None  # the last stream id read; None: the stream's end, at start
        self._floor = 0
        self._pushed_id = 0
        self._closing = False
        self._wake_push = asyncio.Event()
        self._is_up = asyncio.Event()
        self._is_up.set()
        self._is_down = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def last_id(self) -> int:
        return self._read_after or 0

    def continue_after(self, last_id: int) -> None:
        """The history has stored up to `last_id`: read the stream from there, and never number below it."""
        self._floor = max(self._floor, last_id)
        self._read_after = max(self._read_after or 0, last_id)

    def history_mark(self, chunk: Sequence[Published]) -> int | None:
        # Exactly what the chunk covers: a worker that stops with events unwritten reads them again at start.
        return max((e.id for e in chunk if e.id is not None), default=None)

    # --- publishing --------------------------------------------------------------------------------

    def _publish(self, event: Event, once: str | None = None) -> None:
        published = Published(event)  # encodes it: an event that cannot be is refused before anyone has it
        self._seq += 1
        if len(self._outbox) >= self.outbox_size:
            self._outbox.popleft()
            self.given_up += 1
            if self.given_up % 1000 == 1:
                log.warning("event stream %s away: %d events will never reach it", self.name, self.given_up)
        self._outbox.append((self._seq, published, once))
        if self.up:
            self._wake_push.set()
        else:
            self._deliver_local(self._seq, published)

    def _deliver_local(self, seq: int | None, published: Published) -> None:
        """To this worker's subscribers only, now (no id: the stream numbers it later)."""
        if seq is not None:
            if self._local and self._local[-1][1] == seq - 1:
                self._local[-1][1] = seq
            else:
                self._local.append([seq, seq])
            self._local_count += 1
        for sub in self._subscribers:
            sub.offer(published)

    def _had_locally(self, seq: int) -> bool:
        # Own entries come back in seq order, so ranges behind this one are done with.
        local = self._local
        while local and local[0][1] < seq:
            local.popleft()
        return bool(local) and local[0][0] <= seq

    async def _push_loop(self) -> None:
        while not self._closing:
            await self._wake_push.wait()
            self._wake_push.clear()
            while self._outbox and self.up:
                batch = list(itertools.islice(self._outbox, PUSH_BATCH))
                try:
                    self._pushed_id = await self.stream.push(self._floor_now(), [(s, o, p.json) for s, p, o in batch])
                except REDIS_ERRORS as exc:
                    self._go_down(exc)
                    break
                names = [o for _, _, o in batch if o is not None]
                if names and self.on_pushed is not None:
                    self.on_pushed(names)
                last = batch[-1][0]
                while self._outbox and self._outbox[0][0] <= last:  # the outbox may have shed some meanwhile
                    self._outbox.popleft()

    def _floor_now(self) -> int:
        return max(self._floor, self.last_id)

    # --- reading ------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while not self._closing:
            if not self.up:
                await self._is_up.wait()
                continue
            after = self.last_id
            try:
                entries = await self.stream.read(after)
                for entry in entries:
                    self._take(entry)
            except REDIS_ERRORS as exc:
                self._go_down(exc)
            except Exception:  # a bug must not end the reader for good: say so, go on after a pause
                log.exception("event stream reader failed")
                await asyncio.sleep(BACKOFF_S[1])

    def _take(self, entry: Entry) -> None:
        after = self.last_id
        if entry.id <= after:
            return
        if entry.id > after + 1 and after > 0:
            # Trimmed (MAXLEN) before this worker read it, or lost with a Redis that lost its data.
            log.warning("event stream: ids %d to %d were gone before this worker read them", after + 1, entry.id - 1)
            for sub in self._subscribers:
                sub.missed(after + 1, entry.id - 1)
        self._read_after = entry.id
        if entry.published is None:
            return
        live = not (entry.worker == self.worker and self._had_locally(entry.seq))
        self._deliver(entry.published, live)

    # --- down and up --------------------------------------------------------------------------------

    def _go_down(self, exc: BaseException) -> None:
        if not self.up or self._closing:
            return
        self.up = False
        self._down_since = time.monotonic()
        self._local_count = 0
        self._is_up.clear()
        self._is_down.set()
        log.warning(
            "event stream %s is down (%s): this worker's subscribers get its own events only, until it is back",
            self.name,
            exc.__class__.__name__,
        )
        self._deliver_local(None, Published(BusDown(bus=self.name, worker=self.worker, error=exc.__class__.__name__)))
        # What waits for the stream goes to this worker's subscribers now (unless an earlier outage sent it),
        # and stays queued for the stream.
        for seq, published, _ in self._outbox:
            if not any(first <= seq <= last for first, last in self._local):
                self._deliver_local(seq, published)

    async def _watch(self) -> None:
        """While down: try again with backoff; back up once Redis takes the floor (a push of nothing)."""
        delay = BACKOFF_S[0]
        while not self._closing:
            await self._is_down.wait()
            await asyncio.sleep(delay * (0.5 + random.random()))
            try:
                self._pushed_id = await self.stream.push(self._floor_now(), [])
            except REDIS_ERRORS:
                delay = min(delay * 2, BACKOFF_S[1])
                continue
            delay = BACKOFF_S[0]
            self._come_up()

    def _come_up(self) -> None:
        down_s = round(time.monotonic() - self._down_since, 3)
        self.up = True
        self._is_down.clear()
        self._is_up.set()
        self._wake_push.set()
        log.warning(
            "event stream %s is back after %.1f s: %d events go to it late", self.name, down_s, len(self._outbox)
        )
        up = BusUp(bus=self.name, worker=self.worker, down_s=down_s, local=self._local_count)
        self._deliver_local(None, Published(up))

    # --- subscribing and resuming -------------------------------------------------------------------

    def _covers(self, last_event_id: int) -> bool:
        buffer = self.buffer
        return bool(buffer) and buffer[0].id is not None and buffer[0].id <= last_event_id + 1 <= self.last_id + 1

    def replay(self, sub: Subscriber, last_event_id: int) -> Iterable[Published]:
        """From the ring buffer, which here may skip ids (entries trimmed before they were read)."""
        buffer = self.buffer
        start = bisect.bisect_right(buffer, last_event_id, key=lambda p: p.id or 0)
        for i in range(start, len(buffer)):
            if sub.filter.matches(buffer[i]):
                yield buffer[i]

    async def open_subscription(self, filter: Filter | None = None, last_event_id: int | None = None) -> Subscriber:
        """A resume this worker's buffer holds is served as on one process; else from the stream."""
        if last_event_id is None or self._covers(last_event_id):
            return self.subscribe(filter, last_event_id)
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(f"the event stream already has {self.max_subscribers} subscribers")
        sub = Subscriber(self, filter or Filter(), self.subscriber_queue)
        sub.hold()  # live events wait until the fetched ones are in: one order, nothing twice
        self._subscribers.append(sub)
        try:
            events, floor = await self._resume(last_event_id)
        except REDIS_ERRORS as exc:
            log.warning("resume from the event stream failed (%s): from this worker's buffer", exc.__class__.__name__)
            events, floor = self._reset(last_event_id, list(self.buffer))
        except BaseException:
            sub.close()
            raise
        for event in events:
            if event.type == EV_STREAM_RESET or sub.filter.matches(event):
                sub.put_control(event)
        sub.release(floor)
        return sub

    async def _resume(self, last_event_id: int) -> tuple[list[Published], int]:
        """The events after `last_event_id` and the id they reach; a stream.reset first when some are gone."""
        newest = max(self.last_id, await self.stream.counter())
        if last_event_id > newest:  # from another life of the cluster: say so, send all there is
            return self._reset(last_event_id, await self._held(0))
        if last_event_id >= self.last_id:  # given out, not read here yet: the reader brings them
            return [], last_event_id
        held = await self._held(last_event_id + 1)
        if not held or (held[0].id or 0) > last_event_id + 1:
            return self._reset(last_event_id, held)
        return held, held[-1].id or last_event_id

    def _reset(self, last_event_id: int, held: list[Published]) -> tuple[list[Published], int]:
        oldest = held[0].id if held and held[0].id is not None else self.last_id + 1
        reset = Published(StreamReset(last_event_id=last_event_id, oldest_id=oldest))
        return [reset, *held], max((e.id or 0 for e in held), default=0)

    async def _held(self, first: int) -> list[Published]:
        """What the stream and this worker's buffer hold from id `first` on, one of each, oldest first."""
        entries = await self.stream.fetch(first, 2 * self.maxlen + 1000)
        by_id = {e.id: e.published for e in entries if e.published is not None}
        by_id.update({p.id: p for p in self.buffer if p.id is not None and p.id >= first})
        return [by_id[i] for i in sorted(by_id)]

    def worker_shares(self) -> list[WorkerStats] | None:
        return self.cluster.shares

    # --- life -----------------------------------------------------------------------------------------

    async def settled(self) -> None:
        """Until what this worker published so far is back from the stream (bounded; at once while down)."""
        target_seq = self._seq
        deadline = time.monotonic() + SETTLE_S
        while self.up and not self._closing and time.monotonic() < deadline:
            if not (self._outbox and self._outbox[0][0] <= target_seq) and self.last_id >= self._pushed_id:
                return
            await asyncio.sleep(0.005)

    async def start(self) -> None:
        """Join the stream (its counter taken past every id the history has), then push, read and watch."""
        await super().start()
        try:
            self._pushed_id = await self.stream.push(self._floor_now(), [])
        except REDIS_ERRORS as exc:
            self._go_down(exc)
        if self._read_after is None:
            self._read_after = self._pushed_id  # no history to catch up: from the stream's end
        for name, job in (("push", self._push_loop()), ("read", self._read_loop()), ("watch", self._watch())):
            self._tasks.append(asyncio.create_task(job, name=f"syncbed-bus-{name}"))
        if self.up:
            self._wake_push.set()

    async def _tick_stats(self) -> None:
        """Each worker's share to Redis every tick; the lease holder publishes the cluster's sums."""
        meter = StatsMeter(self.stats, time.monotonic())
        while True:
            await asyncio.sleep(self.stats_interval)
            try:
                local = meter.tick(time.monotonic())
            except msgspec.ValidationError:
                log.exception("stats event not published")
                continue
            if not self.up:
                self._deliver_local(None, Published(local))  # this worker's figures, while it is on its own
                continue
            try:
                combined = await self.cluster.tick(local)
            except REDIS_ERRORS as exc:
                self._go_down(exc)
                self._deliver_local(None, Published(local))
                continue
            except Exception:
                log.exception("cluster stats failed")
                continue
            if combined is not None:
                self.publish(combined)

    async def close(self) -> None:
        """Send what is queued (a second at most), stop the tasks, end every subscriber's stream."""
        deadline = time.monotonic() + 1.0
        while self._outbox and self.up and time.monotonic() < deadline:
            self._wake_push.set()
            await asyncio.sleep(0.01)
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await super().close()
        if self._outbox:
            log.warning("event stream %s: %d events published here never reached it", self.name, len(self._outbox))
        with contextlib.suppress(*REDIS_ERRORS):
            await self.stream.aclose()
