"""The client's HTTP against a real server behind raw loopback proxies that misbehave on cue."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from client import transport
from client.manager import SyncManager
from client.policy import RetryPolicy
from client.result import SyncResult
from client.transport import KEEPALIVE_EXPIRY, open_client, post_batch, post_json
from server.serving import UVICORN_OPTIONS
from syncbed.contract import SYNC_PATH
from tests.client.fakes import filled
from tests.client.proxies import CLOSE_DELIMITED_503, DROP, FrontProxy
from tests.conftest import LiveServer

QUICK = RetryPolicy(max_retries=3, base=0.05, cap=0.1)
SYNC_LINE = b"POST " + SYNC_PATH.encode() + b" HTTP/1.1"
UNASKED_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def counting() -> tuple[Callable[[], dict[str, str]], list[int]]:
    """A `headers` callable for post_batch that counts the sends it was asked for."""
    sends: list[int] = []

    def headers() -> dict[str, str]:
        sends.append(len(sends) + 1)
        return {}

    return headers, sends


async def sync_through(
    proxy: FrontProxy, server: LiveServer, tmp_path: Path, records: int, **kw: Any
) -> tuple[SyncResult, int]:
    """Sync `records` to `server` through `proxy`; (result, the server's count for the run's user)."""
    outbox = await filled(tmp_path / "outbox.db", records)
    token = server.token("proxied")
    try:
        manager = SyncManager(proxy.url, token, outbox, retry=QUICK, rng=random.Random(5), **kw)
        result = await manager.sync()
    finally:
        await outbox.close()
    return result, server.count(token)


async def test_a_close_delimited_503_is_read_whole_and_retried(live_server: LiveServer, tmp_path: Path) -> None:
    refused: list[bytes] = []

    def decide(nth: int, line: bytes) -> bytes | None:
        if line == SYNC_LINE and len(refused) < 3:  # no Content-Length: the body ends when the proxy closes
            refused.append(line)
            return CLOSE_DELIMITED_503
        return None

    async with FrontProxy(upstream=live_server.url, decide=decide) as proxy:
        result, stored = await sync_through(proxy, live_server, tmp_path, 3000, mode="conservative", batch_size=1000)
    assert result.complete and (result.ok_batches, result.total_batches) == (3, 3)
    assert result.retries == 3 and result.requests == 6 and not result.failed
    assert stored == 3000 and result.duplicates == 0
    assert proxy.lines.count(SYNC_LINE) == 6


async def test_a_reused_connection_closed_under_a_request_is_resent_at_once_on_a_fresh_one(
    live_server: LiveServer, tmp_path: Path
) -> None:
    dropped: list[int] = []

    def decide(nth: int, line: bytes) -> bytes | None:
        if line == SYNC_LINE and nth > 1:  # the server closed the kept-alive connection as the batch arrived
            dropped.append(nth)
            return DROP
        return None

    async with FrontProxy(upstream=live_server.url, decide=decide) as proxy:
        result, stored = await sync_through(proxy, live_server, tmp_path, 3000, mode="sequential", batch_size=500)
    assert dropped, "no batch went out on a reused connection"
    assert result.complete and result.ok_batches == 6
    assert result.retries == 0  # resent at once, no backoff: the server never answered
    assert result.requests == 6 + len(dropped) == proxy.lines.count(SYNC_LINE)
    assert stored == 3000 and result.stored == 3000 and result.duplicates == 0  # none lost, none twice


async def test_a_fresh_connection_closed_without_an_answer_is_the_policys_to_retry() -> None:
    async with FrontProxy(decide=lambda nth, line: DROP) as proxy, open_client(proxy.url, 1, 5.0) as http:
        headers, sends = counting()
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await post_batch(http, proxy.url + SYNC_PATH, "tok", b"{}", headers, 1)
    assert sends == [1] and proxy.connections == 1  # not resent: nothing says the server did not see it


async def test_an_unasked_101_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    # The proxy switches protocols and then waits for the client to close: only reading the head can end it.
    async with FrontProxy(decide=lambda nth, line: UNASKED_101, linger=True) as proxy:
        async with open_client(proxy.url, 1, 30.0) as http:
            with pytest.raises(httpx.RemoteProtocolError, match="without a pending proposal"):
                await post_json(http, proxy.url + SYNC_PATH, "tok", b"{}")
        outbox = await filled(tmp_path / "outbox.db", 100)
        try:
            retry = RetryPolicy(max_retries=2, base=0.01, cap=0.02)
            result = await SyncManager(proxy.url, "tok", outbox, mode="sequential", retry=retry, timeout=30.0).sync()
        finally:
            await outbox.close()
    assert result.status == "failed"
    [failed] = result.failed
    assert failed.reason.startswith("gave up after 2 retries: network error RemoteProtocolError")


async def test_batches_share_kept_alive_connections(live_server: LiveServer, tmp_path: Path) -> None:
    async with FrontProxy(upstream=live_server.url) as proxy:
        result, stored = await sync_through(proxy, live_server, tmp_path, 2500, mode="sequential", batch_size=500)
    assert result.complete and stored == 2500
    # Five batches, the announcement and the finish: one connection, and one more for the announcement
    # that goes out beside the second batch.
    assert len(proxy.lines) == 7 and proxy.connections <= 2


async def test_an_idle_connection_is_retired_before_the_server_would_close_it(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert UVICORN_OPTIONS["timeout_keep_alive"] > KEEPALIVE_EXPIRY
    monkeypatch.setattr(transport, "KEEPALIVE_EXPIRY", 0.2)  # the same rule, on a scale a test can wait out
    headers, sends = counting()
    async with FrontProxy(upstream=live_server.url) as proxy, open_client(proxy.url, 1, 5.0) as http:
        for pause in (0.0, 0.0, 0.4):
            await asyncio.sleep(pause)
            response = await post_batch(http, proxy.url + SYNC_PATH, "not-a-token", b"{}", headers, 1)
            assert response.status_code == 401  # any answer will do: it is the connection that counts
    assert sends == [1, 2, 3]
    assert proxy.connections == 2  # kept alive across the quick pair; a new one after the pause
