"""Small builders shared by the server tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import msgspec
from httpx_sse import ServerSentEvent, aconnect_sse

from harness.limits import throttle  # noqa: F401  (the tests' name for it)
from harness.server import LiveServer
from syncbed import contract

_seq = itertools.count()
# Generous: a test that waits this long has failed, whatever the machine's load.
TIMEOUT = httpx.Timeout(30.0)


def visit(i: int | None = None, prefix: str = "v", **over: object) -> dict[str, object]:
    n = next(_seq) if i is None else i
    rec: dict[str, object] = {
        "id": f"{prefix}-{n}",
        "url": f"https://example.com/page/{n}",
        "visitedAt": 1_700_000_000_000 + n,
        "title": f"Page {n}",
        "durationMs": 1500,
        "tabId": 7,
    }
    rec.update(over)
    return rec


def batch(n: int, prefix: str = "v", start: int = 0) -> bytes:
    return msgspec.json.encode({"pageVisits": [visit(start + i, prefix) for i in range(n)]})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


class Reader:
    """An SSE subscription read in a background task into a list.

    The server subscribes before it answers, so once entered the reader gets every later event.
    """

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.events: list[ServerSentEvent] = []
        self.status: int | None = None
        self._client, self._url, self._headers = client, url, headers
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def __aenter__(self) -> Reader:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._connected.wait(), 30)
        return self

    async def _read(self) -> None:
        try:
            async with aconnect_sse(self._client, "GET", self._url, headers=self._headers) as source:
                self.status = source.response.status_code
                self._connected.set()
                async for event in source.aiter_sse():
                    self.events.append(event)
        finally:
            self._connected.set()

    async def wait_for(self, check: Any, timeout: float = 30.0) -> None:
        for _ in range(int(timeout / 0.02)):
            if check(self.events):
                return
            if self._task is not None and self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"events so far: {[e.event for e in self.events]}")

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def data(event: ServerSentEvent) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(event.data)
    return value


def rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every row a query reads from the SQLite file at `path`, on a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def config_changes(client: httpx.AsyncClient, server: LiveServer) -> Reader:
    """A reader of the server's config.changed events, as the admin sees them."""
    return Reader(client, server.url + contract.EVENTS_PATH + "?types=config.changed", server.admin_headers())
