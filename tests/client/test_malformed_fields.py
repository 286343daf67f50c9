"""A real loopback server that answers every sync with malformed RateLimit fields: the sync still completes."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from client.manager import SyncManager
from syncbed.contract import SYNC_PATH
from tests.client.fakes import filled
from tests.client.malformed_fields import MALFORMED_POLICY, MALFORMED_REMAINING
from tests.monitor.servers import serve, url_of


def _sendable(value: str) -> bool:
    return all(ch >= " " for ch in value)  # uvicorn itself refuses control characters in a header


# Each answer's (RateLimit-Policy, RateLimit), cycled: first the values that crashed the client.
ANSWERS = [
    ('"sync/user";q=nan;w=1', '"sync/user";r=nan;t=1'),
    ('"sync/user";q=inf;w=1', '"sync/user";r=inf;t=1'),
    ('"sync/user";q=5;w=0', '"sync/user";r=4;t=nan'),
    *itertools.zip_longest(
        filter(_sendable, MALFORMED_POLICY), filter(_sendable, MALFORMED_REMAINING), fillvalue='"sync/user";r=1;t=1'
    ),
]


class MalformedFields:
    """Stores every batch and answers each with the next pair of malformed fields."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.answers = itertools.cycle(ANSWERS)
        self.sent = 0
        self.app = Starlette(routes=[Route(SYNC_PATH, self.sync, methods=["POST"])])

    async def sync(self, request: Request) -> Response:
        visits = msgspec.json.decode(await request.body())["pageVisits"]
        fresh = {v["id"] for v in visits} - self.ids
        self.ids |= fresh
        policy, remaining = next(self.answers)
        self.sent += 1
        # Raw bytes: a header value may hold what Starlette's str headers would refuse to encode.
        response = JSONResponse({"accepted": len(visits), "stored": len(fresh), "duplicates": len(visits) - len(fresh)})
        response.raw_headers += [
            (b"ratelimit-policy", policy.encode("utf-8")),
            (b"ratelimit", remaining.encode("utf-8")),
        ]
        return response


async def test_a_sync_through_malformed_ratelimit_fields_completes(tmp_path: Path) -> None:
    server = MalformedFields()
    batches = len(ANSWERS) + 3
    async with serve(server.app) as uv, await filled(tmp_path / "outbox.db", batches * 20) as outbox:
        manager = SyncManager(url_of(uv), "t", outbox, mode="adaptive", batch_size=20, max_retries=0)
        result = await manager.sync()
        assert await outbox.pending() == (0, 0)
    assert result.complete and result.failed == [], result.failed
    assert len(server.ids) == batches * 20 and server.sent == batches
    assert not manager.scheduler.windows.known  # nothing it could not read was taken for a policy


async def test_limits_remembered_from_misread_fields_do_not_stall_the_next_sync(tmp_path: Path) -> None:
    server = MalformedFields()
    async with serve(server.app) as uv, await filled(tmp_path / "outbox.db", 60) as outbox:
        url = url_of(uv)
        # What an older client stored from `w=inf`, `w=0` and `q=0`: each would hold the pacer forever.
        await outbox.remember_limits(url, [("sync/user", 5, float("inf")), ("sync/ip", 5, 0.0), ("req/ip", 0, 1.0)])
        manager = SyncManager(url, "t", outbox, mode="conservative", batch_size=20, max_retries=0)
        result = await asyncio.wait_for(manager.sync(), 30)
    assert result.complete and len(server.ids) == 60
