"""The client's HTTP: one httpx.AsyncClient per sync, its pool sized to the concurrency.

httpx does the HTTP/1.1 (framing by length, chunked or close; interim answers; a 101
it did not ask for is a protocol error, not a hang), the pool (keep-alive, idle
expiry, a closed idle connection noticed before reuse) and the environment
(HTTP(S)_PROXY, NO_PROXY, SSL_CERT_FILE), as for the monitor. What it leaves to us is
the one race a pool cannot see: the server closing a kept-alive connection just as a
request goes out on it. `Route` tells that case apart, and `post_batch` sends the
batch again at once on another connection instead of leaving it to a backoff
(docs/client.md#http).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import httpx

log = logging.getLogger("client.sync")

# Below the server's 5 s (uvicorn's timeout_keep_alive), so the client retires an idle connection
# before the server would close it under the next request.
KEEPALIVE_EXPIRY = 4.0
# The sync's requests beside its workers' batches: the run's announcement and its finish.
SPARE_CONNECTIONS = 2
# A request that failed this way before any answer came may be resent when its connection was a reused one.
CLOSED_UNDER = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def servers_of(server: str | Sequence[str]) -> list[str]:
    """A cluster's server URLs, from a list or one comma-separated string, without trailing slashes."""
    parts = server.split(",") if isinstance(server, str) else list(server)
    urls = [url.strip().rstrip("/") for url in parts if url.strip()]
    if not urls:
        raise ValueError("give at least one server URL")
    return urls


def open_client(
    server: str | Sequence[str], concurrency: int, timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The client for one sync with `server` (or a cluster's workers): `concurrency` requests in flight in all.

    `timeout` is seconds for each step. With a `transport` (tests, benchmarks), requests go there and the
    environment's proxies do not apply. One pool serves every worker: httpx keeps connections per origin.
    """
    size = concurrency + SPARE_CONNECTIONS
    urls = servers_of(server)
    return httpx.AsyncClient(
        verify=_verify(next((u for u in urls if httpx.URL(u).scheme == "https"), urls[0])),
        transport=transport,
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=KEEPALIVE_EXPIRY),
        timeout=httpx.Timeout(timeout),
        trust_env=True,
        follow_redirects=False,
    )


def _verify(server: str) -> ssl.SSLContext:
    """The CA bundle (or SSL_CERT_FILE / SSL_CERT_DIR) for an https server; for http, a context that trusts nothing.

    Loading the bundle takes 30-50 ms, which a plain-http sync would spend before its first batch for
    nothing; the empty context still verifies, so a TLS connection it is ever used for fails closed.
    """
    if httpx.URL(server).scheme == "https":
        return httpx.create_ssl_context(trust_env=True)
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class Route:
    """What httpx's transport reported about one request's connection (its `trace` extension)."""

    __slots__ = ("answered", "connected", "sent")

    def __init__(self) -> None:
        self.connected = False  # a new connection was opened for it
        self.sent = False  # it went out on a connection (absent for transports that do not trace)
        self.answered = False  # the answer's head arrived

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.started":
            self.connected = True
        elif event == "http11.send_request_headers.started":
            self.sent = True
        elif event == "http11.receive_response_headers.complete":
            self.answered = True

    def stale(self, exc: Exception) -> bool:
        """The request went out on a reused connection that closed before any answer: safe to resend at once."""
        return isinstance(exc, CLOSED_UNDER) and self.sent and not self.connected and not self.answered


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    body: bytes,
    *,
    timeout: float | None = None,
    headers: dict[str, str] | None = None,
    route: Route | None = None,
) -> httpx.Response:
    """One JSON POST, its answer read whole; `timeout` overrides the client's for this request."""
    return await http.post(
        url,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})},
        timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        extensions={"trace": route} if route is not None else None,
    )


async def post_batch(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    body: bytes,
    headers: Callable[[], dict[str, str]],
    concurrency: int,
) -> httpx.Response:
    """POST a batch, resent at once while it went out on a reused connection that closed before any answer.

    Each such failure retires one pooled connection, so within the pool's size the batch goes out on a
    fresh connection, whose failure is raised for the retry policy. `headers()` is called for each send.
    """
    for _ in range(concurrency + SPARE_CONNECTIONS):
        route = Route()
        try:
            return await post_json(http, url, token, body, headers=headers(), route=route)
        except CLOSED_UNDER as exc:
            if not route.stale(exc):
                raise
            log.info("%s on a reused connection: sending again on another", exc)
    raise httpx.RemoteProtocolError(f"every connection to {url} closed before the server answered")
