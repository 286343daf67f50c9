"""The aiohttp transport against real loopback sockets: answers come back whole, failures as httpx errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from client.transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    return head, await reader.readexactly(length)


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport(verify=False)
    yield t
    await t.aclose()


def _post(url: str, body: bytes = b"{}", timeout: float = 5.0) -> httpx.Request:
    return httpx.Request(
        "POST",
        url + "/api/v1/data/sync",
        content=body,
        headers={"Content-Type": "application/json", "X-Sync-Batch": "7"},
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )


async def test_round_trip_keeps_status_repeated_headers_and_body(transport: AiohttpTransport) -> None:
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
        writer.close()

    server, url = await _serve(handler)
    async with server:
        payload = b'{"pageVisits":[' + b",".join([b'{"id":"x"}'] * 2000) + b"]}"
        for _ in range(2):  # the second request reuses the kept-alive connection
            response = await transport.handle_async_request(_post(url, payload))
            assert response.status_code == 429
            assert response.headers.get_list("ratelimit-policy") == ['"a";q=5;w=1', '"b";q=10;w=1']
            assert response.json() == {"error": "rate_limited", "retry_after": 0.5}
    assert len(seen) == 2
    head, body = seen[0]
    assert body == payload
    assert b"x-sync-batch: 7" in head.lower()
    assert head.lower().count(b"\r\nhost:") == 1


async def test_refused_connection_is_connect_error(transport: AiohttpTransport) -> None:
    server, url = await _serve(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(_post(url))


async def test_dropped_connection_is_remote_protocol_error(transport: AiohttpTransport) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.transport.abort()  # a reset, as the server's reset fault does

    server, url = await _serve(handler)
    async with server:
        with pytest.raises(httpx.TransportError) as caught:
            await transport.handle_async_request(_post(url))
    assert isinstance(caught.value, httpx.RemoteProtocolError)


async def test_silent_server_is_read_timeout(transport: AiohttpTransport) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await release.wait()  # never answers while the client waits
        writer.close()

    server, url = await _serve(handler)
    async with server:
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(_post(url, timeout=0.2))
        release.set()
