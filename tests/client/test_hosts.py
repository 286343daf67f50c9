"""The client against a cluster's workers: each send of a batch goes to the next, the run to the first that answers."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client.manager import SyncManager
from harness.access import served
from harness.cluster import Cluster
from harness.processes import free_port
from syncbed.contract import RUNS_PATH
from tests.client.fakes import filled
from tests.conftest import require_postgres, require_redis

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require_redis()
    require_postgres()
    with Cluster(groups=1, workers=2, args=["--no-limits", "--error-rate", "0.2"]) as c:
        yield c


def attempts_by_worker(c: Cluster, run: str) -> dict[tuple[int, int], int]:
    """(batch, attempt) -> the index of the worker whose access log holds it."""
    where: dict[tuple[int, int], int] = {}
    for i, srv in enumerate(c.servers):
        for s in served(srv.log()):
            if s.run == run and s.batch is not None and s.attempt is not None:
                assert (s.batch, s.attempt) not in where, f"{s} arrived twice"
                where[s.batch, s.attempt] = i
    return where


async def test_each_send_goes_to_the_next_worker_and_a_retry_to_another(cluster: Cluster, tmp_path: Path) -> None:
    token = cluster.token("hosts")
    async with await filled(tmp_path / "outbox.db", 10_000) as outbox:
        manager = SyncManager(cluster.urls, token, outbox, batch_size=250, max_retries=12)
        result = await manager.sync()
    assert result.complete, result.failed
    assert (result.synced_records, result.stored, result.duplicates) == (10_000, 10_000, 0)
    assert cluster.count(token) == 10_000
    where = attempts_by_worker(cluster, result.run)
    by_batch: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for (batch, attempt), worker in sorted(where.items()):
        by_batch[batch].append((attempt, worker))
    assert sorted(by_batch) == list(range(40))
    assert {w for _, w in where.items()} == {0, 1}
    for batch, seen in by_batch.items():
        if seen[0][0] == 1:
            assert seen[0][1] == batch % 2, (batch, seen)  # batch b's first send: servers[b % 2]
        for (a, w), (b, v) in itertools.pairwise(seen):
            if b == a + 1:
                assert v != w, (batch, seen)  # the next send went to the other worker
    # 40 batches at a 20% fault rate: retries happened (none at all has odds of 0.013%).
    assert result.retries > 0 and any(len(seen) > 1 for seen in by_batch.values())


async def test_a_dead_worker_in_the_list_costs_retries_not_records(cluster: Cluster, tmp_path: Path) -> None:
    token = cluster.token("dead-first")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with await filled(tmp_path / "outbox.db", 2_000) as outbox:
        manager = SyncManager([dead, cluster.urls[0]], token, outbox, batch_size=250, max_retries=12)
        result = await manager.sync()
    assert result.complete, result.failed
    assert cluster.count(token) == 2_000
    # The announcement went past the dead one to the first that answered: the run is known by its owner.
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        r = await http.get(f"{cluster.urls[1]}{RUNS_PATH}/{result.run}")
    assert r.status_code == 200 and r.json()["announced"] is not None, r.text
