"""The plan's client, ported literally: one attempt and three retries, `retry_after || 1`, groups of five."""

from __future__ import annotations

import httpx
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.reference_client import ReferenceSyncManager
from client import generate
from harness.in_loop import serve_app, url_of
from syncbed.contract import RUNS_PATH, SYNC_PATH, SyncRequest
from syncbed.runs import RunDetail
from tests.conftest import ServerFactory
from tests.server.helpers import throttle


def bodies(batches: int, size: int = 10) -> list[bytes]:
    records = list(generate.visits(batches * size, seed=15))
    return [msgspec.json.encode(SyncRequest(records[i : i + size])) for i in range(0, len(records), size)]


async def test_a_batch_gets_one_attempt_and_three_retries_then_its_group_ends_the_sync(
    server_factory: ServerFactory,
) -> None:
    # One sync a window: of five batches sent together, one passes a window, and the four refused
    # wait for the next edge together. The fifth is refused in four windows running. The window is a
    # whole second so that on a loaded machine a 429 answered late still retries at the next edge
    # with the others (at 300 ms one came back after it, missed the crowd and passed alone).
    srv = server_factory(config=throttle("sync/user", 1, "1s", key="user", sync=True))
    token = srv.token("plan")
    async with ReferenceSyncManager(srv.url, token, run="plan-retries") as reference:
        await reference.announce(10, 10)
        result = await reference.sync_batches_concurrent(bodies(10))
        await reference.finish(result)
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{srv.url}{RUNS_PATH}/plan-retries", headers=srv.admin_headers())
        count = srv.count(token)
    detail = msgspec.convert(r.json(), RunDetail)
    attempts = {b.batch: [a.attempt for a in b.attempts] for b in detail.batches}
    # Only the first group was sent: a rejected batch rejects Promise.all and with it the sync.
    assert sorted(attempts) == [0, 1, 2, 3, 4]
    assert max(len(a) for a in attempts.values()) == 4, attempts  # 1 + maxRetries, never a fifth
    assert all(a == list(range(1, len(a) + 1)) for a in attempts.values()), attempts
    assert result.requests == sum(len(a) for a in attempts.values()) == detail.totals.attempts
    assert result.throttled == detail.totals.throttled == result.requests - result.ok_batches
    assert result.errors and all(e == "HTTP 429 after 3 retries" for e in result.errors)
    assert result.status == "partial" and count == result.ok_batches * 10 == detail.totals.records_stored
    assert result.ok_batches < 5 and len(result.waits) == result.throttled - len(result.errors)


def scripted(answers: list[Response]) -> Starlette:
    """A server that answers each sync with the next of `answers`: 429s with chosen bodies, then 200s."""

    async def sync(request: Request) -> Response:
        await request.body()
        return answers.pop(0) if answers else JSONResponse({"accepted": 10, "stored": 10, "duplicates": 0})

    return Starlette(routes=[Route(SYNC_PATH, sync, methods=["POST"])])


async def test_a_zero_missing_or_null_retry_after_waits_one_second_and_a_number_waits_itself() -> None:
    refusals: list[Response] = [
        JSONResponse({"error": "rate_limited", "retry_after": 0}, status_code=429),
        JSONResponse({"error": "rate_limited"}, status_code=429),
        JSONResponse({"error": "rate_limited", "retry_after": None}, status_code=429),
        JSONResponse({"error": "rate_limited", "retry_after": 0.25}, status_code=429),
    ]
    async with serve_app(scripted(refusals)) as server, ReferenceSyncManager(url_of(server), "t", max_retries=4) as ref:
        result = await ref.sync_batches_concurrent(bodies(1))
    assert result.waits == [1.0, 1.0, 1.0, 0.25]
    assert (result.requests, result.throttled, result.ok_batches, result.status) == (5, 4, 1, "complete")


async def test_a_fourth_429_fails_the_batch_without_waiting_and_no_later_group_is_sent() -> None:
    refusals: list[Response] = [JSONResponse({"retry_after": 0.01}, status_code=429) for _ in range(4)]
    async with serve_app(scripted(refusals)) as server, ReferenceSyncManager(url_of(server), "t") as reference:
        result = await reference.sync_batches_concurrent(bodies(6), concurrency=1)
    assert result.waits == [0.01] * 3 and result.requests == 4 and result.ok_batches == 0
    assert result.errors == ["HTTP 429 after 3 retries"] and result.status == "failed"
