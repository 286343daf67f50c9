"""GET /api/v1/events: the bus as Server-Sent Events, with resume, filters and a subscriber cap."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from server.admin import app_state, require_admin
from server.events import Filter, Subscriber, TooManySubscribers
from server.responses import ApiError
from syncbed.contract import (
    E_INVALID_REQUEST,
    E_TOO_MANY_SUBSCRIBERS,
    EVENTS_PATH,
    HEADER_LAST_EVENT_ID,
    HEADER_RETRY_AFTER,
)
from syncbed.events import EVENT_TYPES
from syncbed.wire import ascii_int, run_id_problem

log = logging.getLogger("syncbed.sse")

HEARTBEAT_S = 15.0  # a comment line at least this often, so proxies and clients know the stream is alive
SHUTDOWN_GRACE_S = 2.0
SHUTDOWN_POLL_S = 0.5
COALESCE_S = 0.05
MAX_EVENTS_PER_WRITE = 2000  # a backlog goes out in a few large writes, not one write per event


class EventStream(EventSourceResponse):
    """An SSE response that always releases its subscriber, and ends cleanly when the server stops."""

    def __init__(self, sub: Subscriber, ping: float) -> None:
        shutdown = anyio.Event()
        super().__init__(
            self._frames(sub, shutdown),
            ping=ping,
            headers={"Cache-Control": "no-store"},
            # On shutdown sse-starlette sets the event and waits this long for the generator to end, so the
            # response is completed (terminating chunk) instead of cancelled mid-stream.
            shutdown_event=shutdown,
            shutdown_grace_period=SHUTDOWN_GRACE_S,
        )
        self._sub = sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._sub.close()

    @staticmethod
    async def _frames(sub: Subscriber, shutdown: anyio.Event) -> AsyncIterator[bytes]:
        try:
            while not sub.closed and not shutdown.is_set():
                events = await sub.get_many(MAX_EVENTS_PER_WRITE, timeout=SHUTDOWN_POLL_S)
                if events:
                    yield b"".join(e.frame for e in events)
                    # Let a burst gather: a few large writes per second instead of one per event keeps
                    # subscribers from taking event-loop time away from ingest.
                    await asyncio.sleep(COALESCE_S)
        finally:
            sub.close()


def parse_filter(request: Request) -> Filter:
    """?run=ID&types=a,b -> Filter, or a 422 naming the bad parameter."""
    run = request.query_params.get("run")
    problem = None if run is None else run_id_problem(run)
    if problem is not None:
        raise ApiError(422, E_INVALID_REQUEST, f"run: {problem}", field="run")
    types: frozenset[str] | None = None
    raw = request.query_params.get("types")
    if raw:
        wanted = frozenset(t.strip() for t in raw.split(",") if t.strip())
        unknown = sorted(wanted - set(EVENT_TYPES))
        if unknown:
            raise ApiError(
                422,
                E_INVALID_REQUEST,
                f"types: unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}",
                field="types",
            )
        types = wanted
    return Filter(run=run, types=types)


def parse_last_event_id(request: Request) -> int | None:
    """Last-Event-ID header (or ?last_event_id= for clients that cannot set headers)."""
    raw = request.headers.get(HEADER_LAST_EVENT_ID) or request.query_params.get("last_event_id")
    if raw is None or not (raw := raw.strip()):
        return None
    last_id = ascii_int(raw)
    if last_id is None:
        raise ApiError(
            422,
            E_INVALID_REQUEST,
            f"{HEADER_LAST_EVENT_ID}: expected an event id (a non-negative integer in ASCII digits), got {raw[:32]!r}",
            field=HEADER_LAST_EVENT_ID,
        )
    return last_id


async def events(request: Request) -> Response:
    await require_admin(request)
    filt = parse_filter(request)
    last_id = parse_last_event_id(request)
    bus = app_state(request).bus
    try:
        sub = await bus.open_subscription(filt, last_id)
    except TooManySubscribers as exc:
        raise ApiError(
            503,
            E_TOO_MANY_SUBSCRIBERS,
            f"{exc}; close one or retry later.",
            max_subscribers=bus.max_subscribers,
            headers={HEADER_RETRY_AFTER: "5"},
        ) from None
    log.info("event subscriber joined (%d now); filter %s, after id %s", bus.subscriber_count, filt, last_id)
    return EventStream(sub, HEARTBEAT_S)


def routes() -> list[Route]:
    return [Route(EVENTS_PATH, events, methods=["GET"])]
