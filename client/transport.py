"""The default HTTP transport: aiohttp behind httpx's transport interface.

httpx's own transport (httpcore over anyio and h11) spends about 2 ms of CPU per
request here, a burst of ten batches 20 ms of the client's single thread before
the last one leaves; aiohttp's C parser and lighter connection pool need about a
quarter of that (docs/client.md). The manager speaks only `httpx.Request` and
`httpx.Response`, so tests still swap in any httpx transport.
"""

from __future__ import annotations

import aiohttp
import httpx


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    t = request.extensions.get("timeout") or {}
    return aiohttp.ClientTimeout(connect=t.get("pool"), sock_connect=t.get("connect"), sock_read=t.get("read"))


def _translate(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """aiohttp's error as the httpx error a caller of an httpx transport expects."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message or "timed out", request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(f"the server closed the connection: {message}", request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.NetworkError(message, request=request)


def server_url_problem(server: str) -> str | None:
    """Why `server` cannot be synced to (a sentence), or None when it is an http(s) URL with a host."""
    try:
        url = httpx.URL(server)
    except httpx.InvalidURL as exc:
        return f"the server URL {server!r} is not valid ({exc})"
    if url.scheme not in ("http", "https") or not url.host:
        return f"the server URL must look like http://HOST:PORT or https://HOST, got {server!r}"
    return None


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


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 through one aiohttp session, opened on first use; bodies are read whole."""

    def __init__(self, *, max_connections: int = 100, verify: bool = True) -> None:
        self.max_connections = max_connections
        self.verify = verify
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=self.verify)
        # No cookie jar, no default headers and no decompression: the manager sends exactly what it means.
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=_timeout(request),
            ) as response:
                content = await response.read()
                status, headers = response.status, response.raw_headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc, request) from exc
        return httpx.Response(status, headers=list(headers), content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
