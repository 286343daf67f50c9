"""The in-process event bus: a ring buffer for resume, one bounded queue per subscriber, 1 Hz stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from syncbed.events import RUN_EVENT_CLASSES, Event, ServerStats, StreamDropped, StreamReset, encode_event, event_type

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

    def offer(self, event: Published) -> None:
        if not self.filter.matches(event):
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


class Stats:
    """Counters the request path bumps cheaply; the bus turns them into a 1 Hz `stats` event."""

    __slots__ = ("_reader", "_sources", "in_flight", "records", "requests", "throttled")

    def __init__(self) -> None:
        self.records = 0
        self.requests = 0
        self.throttled = 0
        self.in_flight = 0
        self._sources: dict[str, Callable[[], object]] = {}
        self._reader: Callable[[], tuple[int, int, int, int]] | None = None

    def count_request(self, records: int = 0, throttled: bool = False) -> None:
        """One sync request answered: `records` stored by it, or `throttled` if a rule refused it."""
        self.requests += 1
        self.records += records
        if throttled:
            self.throttled += 1

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1

    def read_from(self, reader: Callable[[], tuple[int, int, int, int]] | None) -> None:
        """Take (records, requests, throttled, in_flight) totals from counters kept elsewhere instead."""
        self._reader = reader

    def totals(self) -> tuple[int, int, int, int]:
        """(records, requests, throttled, in_flight), cumulative except in_flight."""
        if self._reader is not None:
            try:
                return self._reader()
            except Exception:
                log.exception("stats counters failed")
        return self.records, self.requests, self.throttled, self.in_flight

    def add_source(self, field: str, source: Callable[[], object] | None) -> None:
        """Another field for the stats event, read at each tick (e.g. "limiter": rule -> top keys)."""
        if source is None:
            self._sources.pop(field, None)
        else:
            self._sources[field] = source

    def extras(self) -> dict[str, object]:
        out: dict[str, object] = {"limiter": {}}
        for field, source in self._sources.items():
            try:
                out[field] = source()
            except Exception:
                log.exception("stats field %s failed", field)
        return out


class StatsMeter:
    """Turns cumulative counters into per-second rates between two ticks (pure; clock injected)."""

    def __init__(self, stats: Stats, now: float) -> None:
        self._stats = stats
        self._last = (now, *stats.totals()[:3])

    def tick(self, now: float) -> ServerStats:
        """The stats event since the last tick; msgspec.ValidationError if a source gave a wrong shape."""
        s = self._stats
        then, records, requests, throttled = self._last
        dt = max(now - then, 1e-6)
        r, q, t, in_flight = s.totals()
        self._last = (now, r, q, t)
        fields = {
            "records_per_s": round((r - records) / dt, 1),
            "requests_per_s": round((q - requests) / dt, 2),
            "throttled_per_s": round((t - throttled) / dt, 2),
            "in_flight": max(in_flight, 0),
            **s.extras(),
        }
        return msgspec.convert(fields, ServerStats)


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

    def continue_after(self, last_id: int) -> None:
        """Make ids keep rising across restarts (history knows the last one it stored)."""
        self._next_id = max(self._next_id, last_id + 1)

    def publish(self, event: Event) -> None:
        """Give the event the next id, keep it for resume, hand it to every subscriber and tap."""
        try:
            if self._loop is not None and threading.get_ident() != self._loop_thread:
                self._loop.call_soon_threadsafe(self._publish, event)
            else:
                self._publish(event)
        except Exception:
            log.exception("publishing %s failed", event_type(event))

    def _publish(self, event: Event) -> None:
        event.id = self._next_id
        published = Published(event)  # encodes it: an event that cannot be is refused before anyone has it
        self._next_id += 1
        self.buffer.append(published)
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
