"""The default HTTP transport: keep-alive HTTP/1.1 on asyncio, parsed by httptools, behind httpx's interface.

Written for the client's one job, so a burst of batches leaves as fast as the
sockets allow: request bodies are bytes in memory, answers are read whole, and
`connect_ahead` opens a burst's connections while the outbox is still being read.
httpx's own transport spent about 2 ms of CPU per request here and aiohttp about
1 ms; this one about half of that, most of it the kernel's (docs/client.md). The
manager speaks only `httpx.Request` and `httpx.Response`, so tests still swap in
any httpx transport. No proxies, no redirects, no HTTP/2: the client needs none.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass, field

import httptools
import httpx

Origin = tuple[str, str, int]  # (scheme, host, port)


async def post_json(
    http: httpx.AsyncBaseTransport,
    url: str,
    token: str,
    body: bytes,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One JSON POST straight through a transport, its answer read whole.

    No httpx.AsyncClient: its cookies, redirects and hooks cost ~0.5 ms of CPU a request and are
    never used by the client; the transport is still any httpx transport.
    """
    request = httpx.Request(
        "POST",
        url,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})},
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    response = await http.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


@dataclass(slots=True)
class _Answer:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    keep_alive: bool = False


class _Connection(asyncio.Protocol):
    """One connection, one request at a time; httptools calls the `on_*` methods as the answer arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer = _Answer()
        self._waiter: asyncio.Future[_Answer] | None = None
        self._received = False  # any byte of the current answer
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: otherwise the body runs until the server closes

    # asyncio.Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for (an idle timeout's 408, say): retire the connection
            self.close()
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"the server's answer is not valid HTTP/1.1: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._framed:  # a body delimited by the close: complete now
            self._answer.keep_alive = False
            self._waiter.set_result(self._answer)
        elif exc is not None:
            self._fail(httpx.ReadError(f"the connection failed: {exc}"))
        elif self._received:
            self._fail(httpx.RemoteProtocolError("the server closed the connection in the middle of its answer"))
        else:
            self._fail(httpx.RemoteProtocolError("the server closed the connection without answering"))

    # httptools callbacks ---------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._answer.headers.append((name, value))
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._answer.body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._answer, self._headers_done, self._framed = _Answer(), False, False
            return
        self._answer.status = status
        self._answer.keep_alive = self._parser.should_keep_alive()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._answer)

    # use -------------------------------------------------------------------------------------------
    async def exchange(self, head: bytes, body: bytes, timeout: float | None) -> _Answer:
        """Send one request and wait for its whole answer."""
        if self.transport is None or not self.reusable:
            raise httpx.RemoteProtocolError("the connection closed before the request was sent")
        self._answer, self._received, self._headers_done, self._framed = _Answer(), False, False, False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head)
        if body:
            self.transport.write(body)
        try:
            async with asyncio.timeout(timeout):
                return await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout(f"no complete answer within {timeout} s") from None
        finally:
            self._waiter = None

    def _fail(self, exc: httpx.TransportError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    @property
    def reusable(self) -> bool:
        """Open at both ends: asyncio marks a transport closing on our close, the peer's, or a failure."""
        return self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Http1Transport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connections per origin; at most `max_connections` requests at once."""

    def __init__(self, *, max_connections: int = 100, verify: bool = True) -> None:
        self.max_connections = max_connections
        self.verify = verify
        self._idle: dict[Origin, list[_Connection]] = {}
        self._opening: dict[Origin, list[asyncio.Future[_Connection]]] = {}  # `connect_ahead`'s, not yet taken
        self._slots: asyncio.Semaphore | None = None
        self._ssl: ssl.SSLContext | None = None

    # public ----------------------------------------------------------------------------------------
    def connect_ahead(self, url: str, count: int, timeout: float = 10.0) -> None:
        """Start opening up to `count` connections to `url`'s origin, for the requests about to come.

        Requests take them as they open; one that fails is simply not there (the request that would
        have used it opens its own and reports what goes wrong).
        """
        origin = _origin(httpx.URL(url))
        opening = self._opening.setdefault(origin, [])
        for _ in range(count - len(self._idle.get(origin, ())) - len(opening)):
            future = asyncio.ensure_future(self._connect(origin, timeout))
            future.add_done_callback(functools.partial(self._opened, origin))
            opening.append(future)

    def _opened(self, origin: Origin, future: asyncio.Future[_Connection]) -> None:
        """A connection opened ahead that no request has taken yet joins the idle ones."""
        opening = self._opening.get(origin, [])
        if future not in opening:
            return  # a request is waiting for it
        opening.remove(future)
        if future.cancelled() or future.exception() is not None:
            return
        conn = future.result()
        if conn.reusable:
            self._idle.setdefault(origin, []).append(conn)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        origin = _origin(request.url)
        body = await request.aread()
        head = _head(request)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection slot in time", request=request) from None
        try:
            conn = await self._checkout(origin, timeouts.get("connect"))
            try:
                answer = await conn.exchange(head, body, timeouts.get("read"))
            except BaseException:
                conn.close()  # its state is unknown: never reuse it
                raise
            if answer.keep_alive and conn.reusable:
                self._idle.setdefault(origin, []).append(conn)
            else:
                conn.close()
        except httpx.TransportError as exc:
            exc.request = request
            raise
        finally:
            self._slots.release()
        return httpx.Response(answer.status, headers=answer.headers, content=b"".join(answer.body), request=request)

    async def aclose(self) -> None:
        opening = [future for futures in self._opening.values() for future in futures]
        self._opening.clear()  # so `_opened` leaves them to us
        for future in opening:
            future.cancel()
        for done in await asyncio.gather(*opening, return_exceptions=True):
            if isinstance(done, _Connection):  # it opened before the cancel arrived
                done.close()
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    # connections -----------------------------------------------------------------------------------
    async def _checkout(self, origin: Origin, timeout: float | None) -> _Connection:
        idle = self._idle.get(origin, [])
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have been closed by the server
            if conn.reusable:
                return conn
            conn.close()
        opening = self._opening.get(origin, [])
        while opening:
            future = opening.pop(0)
            try:
                conn = await future
            except httpx.TransportError:
                continue
            if conn.reusable:
                return conn
        return await self._connect(origin, timeout)

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = self._context() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"could not connect to {host}:{port} within {timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"could not connect to {host}:{port}: {exc}") from exc
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
            if not self.verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        return self._ssl


def _origin(url: httpx.URL) -> Origin:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host, port


def _head(request: httpx.Request) -> bytes:
    """The request line and headers; httpx has already set Host and Content-Length."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw]
    lines.append(b"\r\n")
    return b"".join(lines)
