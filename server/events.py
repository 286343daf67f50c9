"""The in-process event bus: a ring buffer for resume, one bounded queue per subscriber, 1 Hz stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from server.stats import Stats, StatsMeter
from syncbed.events import RUN_EVENT_CLASSES, Event, StreamDropped, StreamReset, encode_event, event_type

if TYPE_CHECKING:
    from server.config import Settings
    from syncbed.responses import WorkerStats

__all__ = [  # Stats and StatsMeter live in server/stats.py; they are the bus's, and were here first
    "EventBus",
    "Filter",
    "Published",
    "Stats",
    "StatsMeter",
    "Subscriber",
    "TooManySubscribers",
    "bus_url",
    "open_bus",
]

log = logging.getLogger("syncbed.events")


class TooManySubscribers(Exception):
    """The bus already serves its maximum number of subscribers."""


class Published:
    """One event on the bus: the struct, its id, type and run, and its JSON and SSE frame, encoded once."""

    __slots__ = ("_frame", "event", "id", "json", "run", "type")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.id = event.id
        self.type = event_type(event)
        self.run = event.run if isinstance(event, RUN_EVENT_CLASSES) else None
        self.json = encode_event(event)  # TypeError for a value that is not JSON
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The SSE frame, encoded once however many subscribers send it."""
        if self._frame is None:
            head = f"id: {self.id}\n" if self.id is not None else ""
            self._frame = f"{head}event: {self.type}\ndata: ".encode() + self.json + b"\n\n"
        return self._frame


@dataclass(frozen=True, slots=True)
class Filter:
    """Which events a subscriber wants: by run and by type (both must match when given)."""

    run: str | None = None
    types: frozenset[str] | None = None

    def matches(self, event: Published) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        return self.run is None or event.run == self.run


class Subscriber:
    """A bounded queue fed by publish(); when full it counts what it missed and says so in order."""

    def __init__(self, bus: EventBus, filter: Filter, maxsize: int) -> None:
        self._bus = bus
        self.filter = filter
        self._maxsize = maxsize
        self._queue: deque[Published] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._missed = 0
        self._missed_first: int | None = None
        self._missed_last: int | None = None
        self.closed = False
        self.floor = 0  # ids up to this one it has (a resume fetched them): a later copy is not sent again
        self._held: list[Published] | None = None

    def offer(self, event: Published) -> None:
        if not self.filter.matches(event):
            return
        if event.id is not None and event.id <= self.floor:
            return
        if self._held is not None:
            self._held.append(event)
            return
        if len(self._queue) >= self._maxsize:
            if self._missed == 0:
                self._missed_first = event.id
            self._missed += 1
            self._missed_last = event.id
            return
        self._flush_missed()
        self._queue.append(event)
        self._wake()

    def put_control(self, event: Published) -> None:
        self._queue.append(event)
        self._wake()

    def missed(self, first_id: int, last_id: int) -> None:
        """Events it never got from the bus (ids first_id to last_id): a stream.dropped where they would be."""
        if last_id <= self.floor:
            return
        if self._missed == 0:
            self._missed_first = first_id
        self._missed += last_id - first_id + 1
        self._missed_last = last_id

    def hold(self) -> None:
        """Keep live events aside while a resume is fetched from elsewhere (release() sends them after it)."""
        self._held = []

    def release(self, floor: int) -> None:
        """The resume is in (ids up to `floor`): send what was held after it, then go live."""
        held, self._held = self._held or [], None
        self.floor = max(self.floor, floor)
        for event in held:
            self.offer(event)

    def _flush_missed(self) -> None:
        # The gap marker goes exactly where the gap is: after what was queued, before what comes next.
        # It has no id (it is this subscriber's alone), so a client's resume point stays put.
        if self._missed:
            marker = StreamDropped(missed=self._missed, first_id=self._missed_first, last_id=self._missed_last)
            self._queue.append(Published(marker))
            self._missed = 0

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def drain(self, limit: int = 1000) -> list[Published]:
        """Take up to `limit` queued events without waiting."""
        if not self._queue:
            self._flush_missed()
        out: list[Published] = []
        queue = self._queue
        while queue and len(out) < limit:
            out.append(queue.popleft())
        return out

    async def get_many(self, limit: int = 1000, timeout: float | None = None) -> list[Published]:
        """Wait for at least one event (or `timeout`), then take what is queued, up to `limit`."""
        if not self._queue and not self._missed and not self.closed:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            try:
                if timeout is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                pass
            finally:
                self._waiter = None
        return self.drain(limit)

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self.closed = True
        self._bus._unsubscribe(self)
        self._wake()


class EventBus:
    """Publish is synchronous and O(subscribers): no awaits, no I/O, never raises."""

    def __init__(
        self,
        buffer_size: int = 10_000,
        max_subscribers: int = 16,
        subscriber_queue: int = 5_000,
        stats_interval: float = 1.0,
    ) -> None:
        self.buffer: deque[Published] = deque(maxlen=max(buffer_size, 1))
        self.max_subscribers = max_subscribers
        self.subscriber_queue = max(subscriber_queue, 1)
        self.stats = Stats()
        self.stats_interval = stats_interval
        self._subscribers: list[Subscriber] = []
        self._taps: list[Callable[[Published], None]] = []
        self._next_id = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._stats_task: asyncio.Task[None] | None = None

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # One process feeds its history alone; a shared bus (Redis) feeds every worker's, so the history must
    # skip what another worker wrote (server/history.py asks).
    shared = False

    def history_mark(self, chunk: Sequence[Published]) -> int | None:
        """What the history stores as its `last_id` with this chunk: here the bus's last id."""
        return self.last_id

    def worker_shares(self) -> list[WorkerStats] | None:
        """Each worker's share of the figures, on a cluster; None for one process's bus."""
        return None

    async def settled(self) -> None:
        """Return once every event published so far has reached the taps (at once here: publish does it)."""

    def continue_after(self, last_id: int) -> None:
        """Make ids keep rising across restarts (history knows the last one it stored)."""
        self._next_id = max(self._next_id, last_id + 1)

    def publish(self, event: Event, once: str | None = None) -> None:
        """Give the event the next id, keep it for resume, hand it to every subscriber and tap.

        `once` names an event that more than one worker may publish (a stored batch's): a shared stream
        takes the first and drops the others."""
        try:
            if self._loop is not None and threading.get_ident() != self._loop_thread:
                self._loop.call_soon_threadsafe(self._publish, event, once)
            else:
                self._publish(event, once)
        except Exception:
            log.exception("publishing %s failed", event_type(event))

    def _publish(self, event: Event, once: str | None = None) -> None:
        event.id = self._next_id
        published = Published(event)  # encodes it: an event that cannot be is refused before anyone has it
        self._next_id += 1
        self._deliver(published)

    def _deliver(self, published: Published, live: bool = True) -> None:
        """Keep it for resume, hand it to every subscriber (unless they had it already) and tap."""
        self.buffer.append(published)
        if live:
            for sub in self._subscribers:
                sub.offer(published)
        for tap in self._taps:
            try:
                tap(published)
            except Exception:
                log.exception("event tap failed")

    def add_tap(self, tap: Callable[[Published], None]) -> None:
        """A synchronous sink that sees every event (history uses one); it must not block."""
        self._taps.append(tap)

    def remove_tap(self, tap: Callable[[Published], None]) -> None:
        with contextlib.suppress(ValueError):
            self._taps.remove(tap)

    def subscribe(self, filter: Filter | None = None, last_event_id: int | None = None) -> Subscriber:
        """A new subscriber, pre-loaded with what it missed after `last_event_id` (atomic: no gap)."""
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(f"the event stream already has {self.max_subscribers} subscribers")
        sub = Subscriber(self, filter or Filter(), self.subscriber_queue)
        if last_event_id is not None:
            for event in self.replay(sub, last_event_id):
                sub.put_control(event)
        self._subscribers.append(sub)
        return sub

    async def open_subscription(self, filter: Filter | None = None, last_event_id: int | None = None) -> Subscriber:
        """subscribe() for the SSE endpoint: a bus whose history is elsewhere (Redis) fetches it here."""
        return self.subscribe(filter, last_event_id)

    def replay(self, sub: Subscriber, last_event_id: int) -> Iterable[Published]:
        """A reconnect after `last_event_id`: stream.reset if the buffer lost some, then the rest."""
        buffer = self.buffer
        oldest = buffer[0].id if buffer else self._next_id
        assert oldest is not None
        if last_event_id + 1 < oldest or last_event_id > self.last_id:
            # Too old (evicted) or from another server life (ids restarted): say so, send all we have.
            yield Published(StreamReset(last_event_id=last_event_id, oldest_id=oldest))
            start = 0
        else:
            start = last_event_id + 1 - oldest
        for i in range(start, len(buffer)):
            event = buffer[i]
            if sub.filter.matches(event):
                yield event

    def _unsubscribe(self, sub: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(sub)

    async def start(self) -> None:
        """Bind to the running loop and start the 1 Hz stats ticker."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._stats_task is None and self.stats_interval > 0:
            self._stats_task = asyncio.create_task(self._tick_stats(), name="syncbed-stats")

    async def _tick_stats(self) -> None:
        meter = StatsMeter(self.stats, time.monotonic())
        while True:
            await asyncio.sleep(self.stats_interval)
            try:
                stats = meter.tick(time.monotonic())
            except msgspec.ValidationError:
                log.exception("stats event not published")
                continue
            self.publish(stats)

    async def close(self) -> None:
        """Stop the ticker and wake every subscriber so its stream can end."""
        task, self._stats_task = self._stats_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in list(self._subscribers):
            sub.close()


def bus_url(settings: Settings) -> str:
    """server.bus, or by default the limiter's store when that is Redis: one Redis serves the whole cluster."""
    bus = settings.server.bus
    if bus is None:
        return settings.limits.store
    return bus


def open_bus(url: str, maxlen: int = 10_000) -> EventBus:
    """'memory': this process's bus; a redis:// URL: the cluster's (server/bus_redis.py, loaded when used)."""
    if url == "memory":
        return EventBus(buffer_size=maxlen)
    from server.bus_redis import RedisBus

    return RedisBus(url, maxlen=maxlen)
