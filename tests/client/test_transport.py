"""The HTTP/1.1 transport against real loopback sockets: answers come back whole, failures as httpx errors."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from client.transport import Http1Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Served:
    """A raw asyncio server on 127.0.0.1 that counts the connections it accepted."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.url = ""
        self.server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    async def __aenter__(self) -> Served:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    return head, await reader.readexactly(length)


def _answering(*answers: bytes) -> Handler:
    """Answer each request on a connection with the next of `answers` (the last one repeats)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in range(100):
            try:
                await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(answers[min(i, len(answers) - 1)])
            await writer.drain()

    return handler


OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


@pytest.fixture
async def transport() -> AsyncIterator[Http1Transport]:
    t = Http1Transport()
    yield t
    await t.aclose()


def _post(url: str, body: bytes = b"{}", timeout: float = 5.0) -> httpx.Request:
    return httpx.Request(
        "POST",
        url + "/api/v1/data/sync?x=1",
        content=body,
        headers={"Content-Type": "application/json", "X-Sync-Batch": "7"},
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )


async def test_round_trip_keeps_status_repeated_headers_and_body(transport: Http1Transport) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                seen.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                break
            body = b'{"error":"rate_limited","retry_after":0.5}'
            writer.write(
                b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
                b'ratelimit-policy: "a";q=5;w=1\r\nratelimit-policy: "b";q=10;w=1\r\n'
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    async with Served(handler) as served:
        payload = b'{"pageVisits":[' + b",".join([b'{"id":"x"}'] * 20000) + b"]}"
        for _ in range(2):  # the second request reuses the kept-alive connection
            response = await transport.handle_async_request(_post(served.url, payload))
            assert response.status_code == 429
            assert response.headers.get_list("ratelimit-policy") == ['"a";q=5;w=1', '"b";q=10;w=1']
            assert response.json() == {"error": "rate_limited", "retry_after": 0.5}
    assert served.connections == 1 and len(seen) == 2
    head, body = seen[0]
    assert body == payload
    assert head.startswith(b"POST /api/v1/data/sync?x=1 HTTP/1.1\r\n")
    assert b"x-sync-batch: 7" in head.lower()
    assert head.lower().count(b"\r\nhost:") == 1


async def test_chunked_and_close_delimited_answers_are_read_whole(transport: Http1Transport) -> None:
    chunked = b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n'
    async with Served(_answering(chunked)) as served:
        response = await transport.handle_async_request(_post(served.url))
        assert response.json() == {"a": 1}

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"b":2}')
        await writer.drain()

    async with Served(until_close) as served:
        for _ in range(2):  # the closed connection is not reused: the second request opens another
            response = await transport.handle_async_request(_post(served.url))
            assert response.json() == {"b": 2}
        assert served.connections == 2


async def test_an_interim_100_continue_is_skipped(transport: Http1Transport) -> None:
    async with Served(_answering(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)) as served:
        response = await transport.handle_async_request(_post(served.url))
    assert (response.status_code, response.json()) == (200, {"ok": True})


async def test_an_idle_connection_the_server_closed_is_replaced(transport: Http1Transport) -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(OK)
        await writer.drain()  # then closes, as a server's keep-alive timeout does

    async with Served(once) as served:
        assert (await transport.handle_async_request(_post(served.url))).status_code == 200
        await asyncio.sleep(0.05)
        assert (await transport.handle_async_request(_post(served.url))).status_code == 200
        assert served.connections == 2


async def test_connections_opened_ahead_carry_the_burst(transport: Http1Transport) -> None:
    async with Served(_answering(OK)) as served:
        transport.connect_ahead(served.url, 3)
        # Asked for at once, the requests take the connections still opening instead of opening more.
        responses = await asyncio.gather(*(transport.handle_async_request(_post(served.url)) for _ in range(3)))
        assert [r.status_code for r in responses] == [200] * 3
        assert served.connections == 3
        transport.connect_ahead(served.url, 5)  # three are open and idle: two more
        await asyncio.sleep(0.05)
        assert served.connections == 5
        await asyncio.gather(*(transport.handle_async_request(_post(served.url)) for _ in range(5)))
        assert served.connections == 5


async def test_closing_closes_connections_opened_ahead_or_still_opening() -> None:
    ends: list[bytes] = []

    async def wait_for_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ends.append(await reader.read())  # b"" once the client closes its end

    async with Served(wait_for_end) as served:
        transport = Http1Transport()
        transport.connect_ahead(served.url, 2)
        await asyncio.sleep(0.05)  # both open and idle
        transport.connect_ahead(served.url, 4)  # two more, still opening when the transport closes
        await transport.aclose()
        for _ in range(100):
            if len(ends) == served.connections:
                break
            await asyncio.sleep(0.01)
    assert served.connections >= 2
    assert ends == [b""] * served.connections


async def test_at_most_max_connections_requests_at_once() -> None:
    busy = peak = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal busy, peak
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            busy += 1
            peak = max(peak, busy)
            await asyncio.sleep(0.02)
            busy -= 1
            writer.write(OK)
            await writer.drain()

    transport = Http1Transport(max_connections=2)
    try:
        async with Served(slow) as served:
            await asyncio.gather(*(transport.handle_async_request(_post(served.url)) for _ in range(6)))
    finally:
        await transport.aclose()
    assert peak == 2


async def test_refused_connection_is_connect_error(transport: Http1Transport) -> None:
    async with Served(_answering(OK)) as served:
        url = served.url
    transport.connect_ahead(url, 2)  # fails quietly: the request reports it
    with pytest.raises(httpx.ConnectError) as caught:
        await transport.handle_async_request(_post(url))
    assert caught.value.request.url.path == "/api/v1/data/sync"


async def test_dropped_connection_is_remote_protocol_error_and_a_reset_a_read_error(
    transport: Http1Transport,
) -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.transport.abort()

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with an RST
        writer.transport.abort()

    async with Served(close) as served:
        with pytest.raises(httpx.RemoteProtocolError, match="without answering"):
            await transport.handle_async_request(_post(served.url))
    async with Served(reset) as served:
        with pytest.raises(httpx.ReadError, match="the connection failed"):
            await transport.handle_async_request(_post(served.url))


async def test_an_answer_cut_short_or_not_http_is_remote_protocol_error(transport: Http1Transport) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{")
        await writer.drain()

    async with Served(cut) as served:
        with pytest.raises(httpx.RemoteProtocolError, match="middle of its answer"):
            await transport.handle_async_request(_post(served.url))
    async with Served(_answering(b"SMTP ready\r\n\r\n")) as served:
        with pytest.raises(httpx.RemoteProtocolError, match="not valid HTTP"):
            await transport.handle_async_request(_post(served.url))


async def test_silent_server_is_read_timeout(transport: Http1Transport) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await release.wait()  # never answers while the client waits

    async with Served(handler) as served:
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(_post(served.url, timeout=0.2))
        release.set()
