"""Following the server's event stream: SSE over httpx, resumed with Last-Event-ID after any break."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence

import httpx
import msgspec
from httpx_sse import SSEError, aconnect_sse

from syncbed import contract as c
from syncbed.events import Event, decode_event
from syncbed.wire import ascii_int

# Above the server's 15 s heartbeat, so a quiet stream is not taken for a dead one.
READ_TIMEOUT = 30.0
# How long a follower that never got through keeps trying: a wrong URL or a server that is not up
# says so in seconds instead of retrying forever. Once connected, it retries forever.
FIRST_CONTACT_S = 5.0
CONNECTING = "connecting"
CONNECTED = "connected"
RECONNECTING = "reconnecting"
UNAUTHORIZED = "unauthorized"
STOPPED = "stopped"
# The server answered and refused the token: a setting to fix, not a server to wait for.
REFUSED_STATUSES = frozenset({401, 403})
# `python -m monitor` exit codes when the stream could never be followed.
EXIT_UNREACHABLE = 1
EXIT_SETTINGS = 2  # like argparse's usage errors: the command line (or the token file) needs fixing

StateSink = Callable[[str, str], None]
_lenient = msgspec.json.Decoder()


class Backoff:
    """Exponential backoff with full jitter, reset after a connection that delivered events."""

    def __init__(self, base: float = 0.25, cap: float = 5.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return self.base / 2 + self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.failures = 0


class StreamFailed(Exception):
    """The stream could not be followed at all: never connected, and retrying cannot help (or did not)."""

    def __init__(self, detail: str, *, status: int | None = None, within: float = FIRST_CONTACT_S) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.within = within  # seconds of tries before giving up

    @property
    def refused(self) -> bool:
        """The server answered and refused the token (401/403): a setting to fix, not a server to wait for."""
        return self.status in REFUSED_STATUSES

    @property
    def exit_code(self) -> int:
        """What `python -m monitor` exits with: a setting to fix, or a server that was not there."""
        return EXIT_SETTINGS if self.refused else EXIT_UNREACHABLE


class Undecodable(msgspec.Struct):
    """Data that is none of our events (a newer or another server's): shown as such, never fatal."""

    type: str
    reason: str
    ts: float | None = None


Received = Event | Undecodable
EventSink = Callable[[Received, "int | None"], None]


def decode(data: str | bytes, name: str = "") -> Received:
    """One event from its JSON (an SSE `data:` or an export's line); `name` is its SSE `event:`, if any."""
    try:
        return decode_event(data)
    except msgspec.DecodeError as exc:
        return _unreadable(data, name, str(exc))


def _unreadable(data: str | bytes, name: str, reason: str) -> Undecodable:
    """What can still be told of data that is none of our events: its `type` and `ts`, if it has them."""
    try:
        obj = _lenient.decode(data)
    except msgspec.DecodeError:
        obj = None
    fields = obj if isinstance(obj, dict) else {}
    kind, ts = fields.get("type"), fields.get("ts")
    when = float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts) else None
    return Undecodable(kind if isinstance(kind, str) and kind else name or "?", reason, when)


parse_id = ascii_int  # an event id is a wire integer like any other


class StreamFollower:
    """Reads GET /api/v1/events forever: hands each event to `on_event`, reports its state to `on_state`.

    `base_url` may be several (the workers of one cluster, whose stream has one id sequence): after a
    break the next is tried, resumed from the last id, so a worker that dies is not waited for.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        token: str | None,
        on_event: EventSink,
        on_state: StateSink,
        *,
        last_id: int | None = None,
        backoff: Backoff | None = None,
        read_timeout: float = READ_TIMEOUT,
        params: dict[str, str] | None = None,
        first_contact: float | None = FIRST_CONTACT_S,
    ) -> None:
        self.base_urls = [u.rstrip("/") for u in ([base_url] if isinstance(base_url, str) else base_url)]
        if not self.base_urls:
            raise ValueError("no server to follow")
        self._turn = 0
        self._misses = 0  # connections that failed in a row
        self.token = token
        self.on_event = on_event
        self.on_state = on_state
        self.last_id = last_id
        self.backoff = backoff or Backoff()
        self.timeout = httpx.Timeout(10.0, read=read_timeout)
        self.params = params or {}
        self.connections = 0
        self.first_contact = first_contact  # None: retry forever even when never connected

    @property
    def base_url(self) -> str:
        """The server followed now (or tried next)."""
        return self.base_urls[self._turn]

    @property
    def url(self) -> str:
        return self.base_url + c.EVENTS_PATH

    def _next_server(self) -> None:
        self._turn = (self._turn + 1) % len(self.base_urls)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.last_id is not None:
            headers[c.HEADER_LAST_EVENT_ID] = str(self.last_id)
        return headers

    async def run(self) -> None:
        """Connect, read, and on any break wait a backoff and resume from the last id; never returns.

        Before the first connection, a refused token raises StreamFailed at once and anything else does
        after `first_contact` seconds of retries.
        """
        deadline = None if self.first_contact is None else time.monotonic() + self.first_contact
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                self.on_state(CONNECTING if self.connections == 0 else RECONNECTING, self.url)
                status: int | None = None
                try:
                    status, detail = await self._read(client, None if self.connections else deadline)
                except (httpx.HTTPError, SSEError, OSError) as exc:
                    detail = f"{exc.__class__.__name__}: {exc}".rstrip(": ")
                delay = self.backoff.next_delay()
                if self.connections == 0 and deadline is not None:
                    if status in REFUSED_STATUSES:
                        raise StreamFailed(detail, status=status)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise StreamFailed(detail, status=status, within=self.first_contact or 0.0)
                    delay = min(delay, left)  # the last try comes at the deadline, so "within N s" is N s of tries
                state = UNAUTHORIZED if status in REFUSED_STATUSES else RECONNECTING
                if state == UNAUTHORIZED:
                    delay = max(delay, 2.0)
                self._misses += 1
                self._next_server()
                # The other workers of a cluster are tried at once (they serve the same stream); the
                # backoff comes once every one of them has failed.
                delay = delay if self._misses % len(self.base_urls) == 0 else 0.0
                then = f"retry in {delay:.1f} s" if delay else f"trying {self.base_url}"
                self.on_state(state, f"{detail}; {then}")
                await asyncio.sleep(delay)

    async def _read(self, client: httpx.AsyncClient, deadline: float | None) -> tuple[int | None, str]:
        """One connection; returns its status (None once it streamed) and why it ended.

        With a deadline, the answer's headers must come before it (a port that accepts and never
        answers is no server).
        """
        async with contextlib.AsyncExitStack() as stack:
            opening = aconnect_sse(client, "GET", self.url, headers=self._headers(), params=self.params)
            # The stack keeps the stream open past the timeout block, which covers the headers only.
            try:
                async with asyncio.timeout(None if deadline is None else max(0.1, deadline - time.monotonic())):
                    source = await stack.enter_async_context(opening)
            except TimeoutError:
                return None, "no answer (timed out)"
            response = source.response
            if response.status_code != 200:
                await response.aread()
                return response.status_code, f"{response.status_code} {response.text[:200]}".strip()
            self.connections += 1
            self._misses = 0
            self.on_state(CONNECTED, self.url)
            async for sse in source.aiter_sse():
                if not sse.data:
                    # A block with no data (a bare `retry:` field) is no event: the SSE spec says not to
                    # dispatch it, but httpx-sse hands it over as a "message" all the same.
                    continue
                data = decode(sse.data, sse.event)
                event_id = parse_id(sse.id) if sse.id else None
                if event_id is not None:
                    self.last_id = event_id
                    self.backoff.reset()
                self.on_event(data, event_id)
        return None, "stream ended"
