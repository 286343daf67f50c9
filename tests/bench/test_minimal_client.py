"""The benchmark's floor client against a real server: every batch sent once, exact counts, errors kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.minimal_client import MinimalClient, outbox_bodies
from tests.client.fakes import filled
from tests.conftest import LiveServer


async def test_sends_every_outbox_batch_once_over_its_connections(
    shared_unlimited_server: LiveServer, tmp_path: Path
) -> None:
    token = shared_unlimited_server.token("floor")
    outbox = await filled(tmp_path / "outbox.db", 2_500)
    await outbox.close()
    async with MinimalClient(shared_unlimited_server.url, token, 2) as client:
        seconds, ok = await client.run(outbox_bodies(outbox.path, 1_000, 10))
    assert (ok, client.errors) == (3, [])  # 1,000 + 1,000 + 500, then the outbox ran dry
    assert seconds > 0
    assert shared_unlimited_server.count(token) == 2_500


async def test_refusals_are_counted_not_ok_and_their_status_kept(shared_unlimited_server: LiveServer) -> None:
    async with MinimalClient(shared_unlimited_server.url, "not-a-token", 1) as client:
        _, ok = await client.run(iter([b'{"pageVisits":[]}']))
    assert ok == 0
    assert client.errors == ["HTTP/1.1 401 Unauthorized"]


def test_only_plain_http_to_loopback() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        MinimalClient("http://example.com:80", "t", 1)
