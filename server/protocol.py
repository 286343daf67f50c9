"""uvicorn's httptools protocol with the limits it lacks: header size, header and body read timeouts, a reset.

uvicorn buffers a request's header block without bound (one 50 MB header is 50 MB of memory) and
never times out a request whose headers or body stop arriving (slowloris). This subclass caps the
header block, closes connections that stall, and gives the app a way to reset its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Any

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from server.faults import RESET_EXTENSION
from syncbed.contract import E_HEADERS_TOO_LARGE, E_REQUEST_TIMEOUT, error_body

log = logging.getLogger("syncbed.http")

# Where the app finds its limits: the lifespan yields them as state (uvicorn hands that to every
# protocol instance as app_state), so one worker or many, in-process or not, read the same values.
LIMITS_STATE_KEY = "syncbed.http_limits"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per-request read limits; the defaults are what `python -m server` runs with."""

    # 32 KiB: twice what Node's http server and fetch accept (16 KiB) and nginx's largest default
    # buffers (4 x 8 KiB). syncbed's own headers are well under 1 KiB (a bearer token, three X-Sync-*).
    max_header_bytes: int = 32 * 1024
    max_header_fields: int = 100  # Apache's LimitRequestFields
    header_timeout: float = 10.0  # from connect (or a request's first byte) to its last header byte
    body_timeout: float = 10.0  # longest silence within a body


DEFAULT_LIMITS = HttpLimits()


def reset_connection(transport: asyncio.Transport) -> None:
    """Close with an RST, not a FIN: SO_LINGER on with a zero timeout, then abort (drops unsent bytes)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _HeadersTooLarge(Exception):
    """Raised in a parser callback to stop the parse; `_too_large` tells the refusal to answer 431."""


class SyncbedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus the limits of HttpLimits and the `syncbed.reset` scope extension."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = app_state.get(LIMITS_STATE_KEY)
        self.limits: HttpLimits = limits if isinstance(limits, HttpLimits) else DEFAULT_LIMITS
        self._awaiting_headers = True
        self._in_request = False  # between a request's first byte and its last
        self._header_bytes = 0  # of the current header block, as the parser's callbacks hand it over
        self._fed_bytes = 0  # of the current header block, as fed in chunks that lay wholly inside it
        self._header_fields = 0
        self._too_large = False  # the parser stopped because the header block crossed a cap
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a byte is closed too.
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_data = self.loop.time()
        was_awaiting, cycle = self._awaiting_headers, self.cycle
        super().data_received(data)  # a parser error ends in send_400_response, which answers 431 for a cap
        if self.transport.is_closing():
            return
        if self._awaiting_headers:
            # A header line still incomplete sits in the parser's own buffer, unseen by the callbacks:
            # a chunk that began and ended inside the header block counts whole. Every completed header
            # block gets a new cycle, so an unchanged one means no block ended in this chunk.
            if was_awaiting and self.cycle is cycle:
                self._fed_bytes += len(data)
                if self._fed_bytes > self.limits.max_header_bytes:
                    self._refuse(431, E_HEADERS_TOO_LARGE, self._too_large_message())
                    return
            # Armed only for a request that a chunk left incomplete (most fit in one): this chunk holds
            # the request's first byte, so the timeout still runs from that byte.
            if self._header_timer is None:
                at = self._last_data + self.limits.header_timeout
                self._header_timer = self.loop.call_at(at, self._header_timeout)
        elif self._in_request and self._body_timer is None and self._serving_this_request():
            # Mid-body: armed, like the header timer, only when a chunk leaves the request unfinished.
            self._body_timer = self.loop.call_at(self._last_data + self.limits.body_timeout, self._body_timeout)

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._refuse(431, E_HEADERS_TOO_LARGE, self._too_large_message())
        else:
            super().send_400_response(msg)

    # Parser callbacks: exact counts once the parser hands a piece over.
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_request = True
        self._new_header_block()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_fields += 1
        if self._header_fields > self.limits.max_header_fields:
            self._too_large = True
            raise _HeadersTooLarge
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_header_bytes:
            self._too_large = True
            raise _HeadersTooLarge

    def _new_header_block(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = self._fed_bytes = self._header_fields = 0

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()
        if self._serving_this_request():
            cycle, transport = self.cycle, self.transport

            def reset() -> None:
                # Marked gone first, so uvicorn neither answers 500 nor logs an unfinished response.
                cycle.disconnected = True
                reset_connection(transport)

            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[RESET_EXTENSION] = reset

    def _serving_this_request(self) -> bool:
        """The app runs for the current request: false for an upgrade, whose connection is no longer HTTP."""
        return self.cycle is not None and self.cycle.scope is self.scope

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        self._in_request = False
        self._new_header_block()
        super().on_message_complete()

    # Timers
    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # Bytes after a request still being answered (a pipelined request, a stray CRLF): that
            # request's answer comes first, so the next one's headers are judged after it.
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout)
            return
        if not self._in_request:
            self.transport.close()  # an idle connection that never began a request: nothing to answer
            return
        seconds = self.limits.header_timeout
        log.debug("closing a connection: request headers incomplete after %g s", seconds)
        message = f"The request's headers did not arrive within {seconds:g} s; send the whole request promptly."
        self._refuse(408, E_REQUEST_TIMEOUT, message)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        quiet = self.loop.time() - self._last_data
        # Reading is paused while the app has not taken what it has: that silence is not the client's.
        if self.flow.read_paused or quiet < self.limits.body_timeout:
            delay = self.limits.body_timeout if self.flow.read_paused else self.limits.body_timeout - quiet
            self._body_timer = self.loop.call_later(delay, self._body_timeout)
            return
        log.debug("closing a connection: no body bytes for %.0f s", self.limits.body_timeout)
        # The app is reading this body: it sees http.disconnect, and nothing is written mid-request.
        self.transport.close()

    def _cancel_timers(self) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()

    # Answers written by the protocol itself (no app runs for them)
    def _refuse(self, status: int, code: str, message: str) -> None:
        self._cancel_timers()
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            # A response still being written on this connection must not be cut by ours: then only close.
            body = msgspec.json.encode(error_body(code, message))
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _too_large_message(self) -> str:
        return (
            f"The request's header block is larger than {self.limits.max_header_bytes} bytes or has more than "
            f"{self.limits.max_header_fields} fields; send fewer or shorter headers."
        )


__all__ = [
    "LIMITS_STATE_KEY",
    "HttpLimits",
    "SyncbedHttpProtocol",
    "reset_connection",
]
