"""The run history on a Redis bus: every event once in a database that two workers share, complete in each
worker's own database, and a worker that was stopped catches up without writing anything twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from harness.server import LiveServer
from syncbed import contract as c
from syncbed.paths import SERVER_DB_FILE
from tests.conftest import RedisServer, ServerFactory, wait_until
from tests.server.helpers import TIMEOUT, auth, rows
from tests.server.test_bus_redis_cluster import cluster_config, start, sync

pytestmark = pytest.mark.redis


async def announce(client: httpx.AsyncClient, srv: LiveServer, token: str, run: str, batches: int) -> None:
    body = {"run": run, "total_records": batches * 5, "total_batches": batches, "batch_size": 5, "mode": "sequential"}
    r = await client.post(srv.url + c.RUNS_PATH, headers=auth(token), json=body)
    assert r.status_code == 201, r.text


async def finish(client: httpx.AsyncClient, srv: LiveServer, token: str, run: str, batches: int) -> None:
    body = {"status": "complete", "ok_batches": batches, "failed_batches": 0, "seconds": 1.0}
    r = await client.post(f"{srv.url}{c.RUNS_PATH}/{run}/finish", headers=auth(token), json=body)
    assert r.status_code == 200, r.text


def stored(db: Path, run: str) -> tuple[int, int, int]:
    """(events of the run, distinct ids among them, batches with a batch.stored)."""
    [(n, distinct, batches)] = rows(
        db,
        "SELECT count(*), count(DISTINCT id), count(DISTINCT CASE WHEN type = 'batch.stored' THEN batch END) "
        "FROM events WHERE run = ?",
        (run,),
    )
    return int(n), int(distinct), int(batches)  # type: ignore[call-overload]


async def test_two_workers_on_one_database_write_each_event_once_and_a_restarted_one_catches_up(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    config = cluster_config(redis_server.url)
    data = tmp_path / "shared"
    data.mkdir()
    a, b = (LiveServer.at(data, config=config) for _ in range(2))  # --workers 2 on one data directory
    try:
        await asyncio.to_thread(a.start)
        await asyncio.to_thread(b.start)
        token = a.token("alice")
        db = data / SERVER_DB_FILE
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            await announce(client, a, token, "shared-1", 20)
            for i in range(20):
                await sync(client, (a, b)[i % 2], token, i, "shared-1")
            await finish(client, b, token, "shared-1", 20)
            # Read your writes: the worker that took the last request answers with it at once.
            detail = (await client.get(f"{b.url}{c.RUNS_PATH}/shared-1", headers=b.admin_headers())).json()
            assert detail["status"] == "complete" and detail["totals"]["batches_stored"] == 20
            await asyncio.sleep(0.5)  # both workers' histories have had their turn
            assert stored(db, "shared-1") == (42, 42, 20)  # started, 20 received and stored, finished: once each

            await asyncio.to_thread(b.stop)
            for i in range(20, 25):  # while b is away
                await sync(client, a, token, i, "shared-1")
            await asyncio.to_thread(b.start)  # reads the stream from the database's last_id: all written already
            await sync(client, b, token, 25, "shared-1")
            await asyncio.to_thread(wait_until, lambda: stored(db, "shared-1")[2] == 26, 15, "batch 25 stored")
            await asyncio.sleep(0.5)  # time for a second copy to land, were there one
            assert stored(db, "shared-1") == (54, 54, 26)
    finally:
        a.stop()
        b.stop()


async def test_each_worker_s_own_database_holds_the_whole_cluster_s_runs(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    a, b = await start(server_factory, cluster_config(redis_server.url), 2)
    token = a.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        await announce(client, a, token, "only-on-a", 6)
        for i in range(6):
            await sync(client, a, token, i, "only-on-a")
        await finish(client, a, token, "only-on-a", 6)
        await asyncio.to_thread(b.stop)  # b stops, a goes on; b catches up from its last_id when it starts
        await announce(client, a, token, "while-b-was-away", 2)
        for i in range(2):
            await sync(client, a, token, i, "while-b-was-away")
        await asyncio.to_thread(b.start)
        db_b = b.data_dir / SERVER_DB_FILE
        await asyncio.to_thread(
            wait_until, lambda: stored(db_b, "while-b-was-away")[2] == 2, 15, "b to catch up on what it missed"
        )
        view = (await client.get(f"{b.url}{c.RUNS_PATH}/only-on-a", headers=b.admin_headers())).json()
    assert view["status"] == "complete" and view["user"] == "alice" and view["totals"]["batches_stored"] == 6
    assert stored(db_b, "only-on-a") == (14, 14, 6)
    assert stored(db_b, "while-b-was-away") == (5, 5, 2)
