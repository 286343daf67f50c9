"""An in-memory stand-in for the sync endpoint, for policy tests without a socket (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec

from client.generate import encoded, visits
from client.outbox import Outbox
from syncbed.contract import HEADER_ATTEMPT, HEADER_BATCH, HEADER_RUN, RUNS_PATH, SYNC_PATH

START = 1_000_000.5  # a fake clock's start: half way through a one-second window


class Clock:
    """Wall-clock time that moves only when slept on; `sleep` still yields, so other tasks run."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Seen:
    """One sync request as the fake server saw it."""

    run: str
    batch: int
    attempt: int
    ids: list[str]
    urls: list[str]
    at: float
    status: int = 0


Hook = Callable[[Seen], httpx.Response | Exception | None]


@dataclass
class FakeServer:
    latency: float = 0.0
    limit: int | None = None  # fixed window of `limit` per `window` seconds, epoch-aligned like the server's
    window: float = 1.0
    fields: bool = True  # send RateLimit / RateLimit-Policy
    runs_status: int = 201
    hook: Hook | None = None
    clock: Callable[[], float] = time.time  # the manager's, when a test gives it a fake one
    seen: list[Seen] = field(default_factory=list)
    stored: dict[str, bytes] = field(default_factory=dict)
    announced: list[dict[str, object]] = field(default_factory=list)
    finished: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _win: int = -1
    _count: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _limit(self, now: float) -> tuple[bool, list[tuple[str, str]], float]:
        assert self.limit is not None
        w = math.floor(now / self.window)
        if w != self._win:
            self._win, self._count = w, 0
        self._count += 1
        reset = self.window - now % self.window
        headers = []
        if self.fields:
            headers = [
                ("RateLimit-Policy", f'"sync/user";q={self.limit};w={self.window:g}'),
                ("RateLimit", f'"sync/user";r={max(0, self.limit - self._count)};t={math.ceil(reset)}'),
            ]
        return self._count <= self.limit, headers, reset

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == RUNS_PATH:
            body = msgspec.json.decode(request.content)
            self.announced.append(body)
            if self.runs_status >= 400:
                return httpx.Response(self.runs_status, json={"error": "not_found", "message": "no such path"})
            return httpx.Response(self.runs_status, json={"run": body.get("run") or "srv-run-1"})
        if path.startswith(RUNS_PATH + "/") and path.endswith("/finish"):
            self.finished.append((path.split("/")[-2], msgspec.json.decode(request.content)))
            return httpx.Response(200, json={"ok": True})
        assert path == SYNC_PATH
        records = msgspec.json.decode(request.content)["pageVisits"]
        seen = Seen(
            request.headers[HEADER_RUN],
            int(request.headers[HEADER_BATCH]),
            int(request.headers[HEADER_ATTEMPT]),
            [r["id"] for r in records],
            [r["url"] for r in records],
            self.clock(),
        )
        self.seen.append(seen)
        headers: list[tuple[str, str]] = []
        if self.limit is not None:
            ok, headers, reset = self._limit(seen.at)
            if not ok:
                seen.status = 429
                body = {"error": "rate_limited", "message": "slow down", "rule": "sync/user", "retry_after": reset}
                return httpx.Response(429, json=body, headers=headers)
        if self.hook is not None:
            answer = self.hook(seen)
            if isinstance(answer, Exception):
                seen.status = -1
                raise answer
            if answer is not None:
                seen.status = answer.status_code
                return answer
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        dup = sum(1 for r in records if r["id"] in self.stored)
        for r in records:
            self.stored[r["id"]] = msgspec.json.encode(r)
        seen.status = 200
        body = {"accepted": len(records), "stored": len(records) - dup, "duplicates": dup}
        return httpx.Response(200, json=body, headers=headers)


async def filled(path: Path, n: int, seed: int = 1) -> Outbox:
    outbox = await Outbox(path).open()
    for chunk in encoded(visits(n, seed)):
        await outbox.put(chunk)
    return outbox
