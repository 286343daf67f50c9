"""Small raw-socket HTTP/1.1 servers and proxies on 127.0.0.1, for what a real server never does on cue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# What a front proxy does with the nth request (1-based) on a connection: forward it (None), answer
# these bytes and close the connection, or close it without answering (DROP).
DROP = b""
Decide = Callable[[int, bytes], bytes | None]
CLOSE_DELIMITED_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n"
    b"the upstream is busy; try again"
)


def content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(head, body) of the next request, or None once the peer closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        return head, await reader.readexactly(content_length(head) or 0)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def relay_response(upstream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Copy one answer; False when it had no length (chunked, an event stream): then it runs until the close."""
    head = await upstream.readuntil(b"\r\n\r\n")
    writer.write(head)
    length = content_length(head)
    if length is None:
        while chunk := await upstream.read(65536):
            writer.write(chunk)
            await writer.drain()
        return False
    writer.write(await upstream.readexactly(length))
    await writer.drain()
    return True


@dataclass
class Loopback:
    """A raw asyncio server on 127.0.0.1; `async with` it. Subclasses answer in `serve`."""

    connections: int = 0
    lines: list[bytes] = field(default_factory=list)  # every request line, in order
    url: str = ""
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._open.discard(writer)

    async def connect(self, url: str) -> Streams:
        """A connection onward to a loopback server, closed with this one."""
        host, _, port = url.removeprefix("http://").partition(":")
        assert host == "127.0.0.1", "loopback only"
        streams = await asyncio.open_connection(host, int(port))
        self._open.add(streams[1])
        return streams

    async def __aenter__(self) -> Loopback:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):  # pending reads end with the close, so every handler returns
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=10)


@dataclass
class FrontProxy(Loopback):
    """A reverse proxy in front of `upstream` that lets `decide` answer or drop any request itself.

    After its own answer it closes the connection, or with `linger` leaves it open until the client closes.
    """

    upstream: str = ""
    decide: Decide = lambda nth, line: None
    linger: bool = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up: Streams | None = None
        try:
            nth = 0
            while (request := await read_request(reader)) is not None:
                nth += 1
                head, body = request
                self.lines.append(head.split(b"\r\n", 1)[0])
                answer = self.decide(nth, self.lines[-1])
                if answer is not None:
                    writer.write(answer)  # DROP writes nothing: the close is all the client gets
                    await writer.drain()
                    if self.linger:
                        await reader.read()
                    return
                up = up or await self.connect(self.upstream)
                up[1].write(head + body)
                if not await relay_response(up[0], writer):
                    return
        finally:
            if up is not None:
                up[1].close()
                self._open.discard(up[1])


@dataclass
class ForwardProxy(Loopback):
    """A plain HTTP forward proxy (absolute-form request lines) to loopback servers; records each line."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ups: dict[str, Streams] = {}
        try:
            while (request := await read_request(reader)) is not None:
                head, body = request
                line, _, rest = head.partition(b"\r\n")
                self.lines.append(line)
                method, target, version = line.split(b" ")
                assert target.startswith(b"http://"), f"not a proxy request: {line!r}"
                origin, _, path = target.removeprefix(b"http://").partition(b"/")
                key = "http://" + origin.decode()
                if key not in ups:
                    ups[key] = await self.connect(key)
                ups[key][1].write(b"%s /%s %s\r\n%s%s" % (method, path, version, rest, body))
                if not await relay_response(ups[key][0], writer):
                    return
        finally:
            for _, up in ups.values():
                up.close()
                self._open.discard(up)
