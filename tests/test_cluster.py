"""The cluster end to end: 2 hosts x 2 workers on one Redis and one PostgreSQL, 4 clients that alternate hosts.

Real everything on 127.0.0.1: four `python -m server` workers, four `python -m client sync` subprocesses
(50,000 records each, in 1,000-record batches under the seed's 5 syncs/s per user), injected 503s set on
one worker and applied by all, the monitor's StreamFollower on one worker, and a kill -9 of that worker
mid-run. Which worker served an attempt is read from each worker's access log (`trace=run/batch/attempt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from harness.access import served
from harness.cluster import Cluster
from harness.processes import ROOT
from harness.server import LiveServer
from monitor.stream import StreamFollower
from syncbed.contract import FAULTS_PATH, RUNS_PATH
from syncbed.events import BatchReceived, BatchStored, ConfigChanged, decode_event
from syncbed.runs import RunDetail
from tests.conftest import require_postgres, require_redis
from tests.server.helpers import throttle

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 4
RECORDS = 50_000
BATCH = 1_000
PER_USER = 5  # the seed's sync/user: 5 per 1 s
ERROR_RATE = 0.1
KILL_AFTER = 60  # batches stored (of 200) before the followed worker is killed
# Per-IP rules raised: every client is 127.0.0.1 here; sync/user is the rule under test.
LIMITS = (
    throttle("req/ip", 1_000_000, "5m")
    + throttle("sync/ip", 1_000, "1s", sync=True)
    + throttle("sync/user", PER_USER, "1s", key="user", sync=True)
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require_redis()
    require_postgres()
    with Cluster(groups=2, workers=2, limits=LIMITS) as c:
        yield c


async def cli(*args: str, timeout: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


async def faults_everywhere(http: httpx.AsyncClient, urls: list[str], error_rate: float) -> list[float]:
    """Seconds from the PUT's answer until each worker's GET shows the new error_rate (bounded: 5 s)."""

    async def seen(url: str, t0: float) -> float:
        for _ in range(5_000):
            if (await http.get(url + FAULTS_PATH)).json()["error_rate"] == error_rate:
                return time.perf_counter() - t0
            await asyncio.sleep(0.001)
        raise AssertionError(f"{url} never showed error_rate {error_rate}")

    for url in urls:  # a connection to each worker first: the 100 ms is the edit's, not a TCP handshake's
        assert (await http.get(url + FAULTS_PATH)).status_code == 200
    r = await http.put(urls[1] + FAULTS_PATH, json={"error_rate": error_rate})
    assert r.status_code == 200, r.text
    t0 = time.perf_counter()
    return list(await asyncio.gather(*(seen(u, t0) for u in urls)))


class Follow:
    """The monitor's StreamFollower, on the first URL with the others for failover: each event and its own id."""

    def __init__(self, urls: list[str], token: str) -> None:
        self.got: list[tuple[object, int | None]] = []
        self.follower = StreamFollower(
            urls, token, lambda e, _i: self.got.append((e, getattr(e, "id", None))), self._state
        )
        self.connected = asyncio.Event()

    def _state(self, state: str, _detail: str) -> None:
        if state == "connected":
            self.connected.set()

    def stored(self) -> list[BatchStored]:
        return [e for e, _ in self.got if isinstance(e, BatchStored)]


async def test_four_clients_on_two_hosts_store_everything_once(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    urls = c.urls
    tokens = [c.token(f"user{i}") for i in range(CLIENTS)]
    dbs = [tmp_path / f"outbox{i}.db" for i in range(CLIENTS)]
    made = await asyncio.gather(
        *(
            cli("generate", str(RECORDS), "--db", str(db), "--user-seed", str(i + 1), timeout=60)
            for i, db in enumerate(dbs)
        )
    )
    assert all(rc == 0 for rc, _, _ in made), made

    follow = Follow(urls, c.admin_token)
    task = asyncio.create_task(follow.follower.run())
    async with httpx.AsyncClient(headers=c.admin_headers(), timeout=10) as http:
        try:
            await asyncio.wait_for(follow.connected.wait(), 30)
            # A fault edit on one worker: seen by all four within 100 ms, as one config.changed event.
            delays = await faults_everywhere(http, urls, ERROR_RATE)
            print(f"\nerror_rate {ERROR_RATE} set on worker 2, seen by workers 1-4 after (ms): "
                  + ", ".join(f"{d * 1000:.1f}" for d in delays))  # fmt: skip
            assert max(delays) < 0.1, delays
            # A worker started afterwards reads the current settings.
            (c.root / "late").mkdir(exist_ok=True)
            late = LiveServer.at(c.root / "late", config=c.config()).start(timeout=60)
            try:
                assert (await http.get(late.url + FAULTS_PATH)).json()["error_rate"] == ERROR_RATE
            finally:
                late.stop()

            # The four clients, each its own user, each with all four workers.
            server = ",".join(urls)
            syncs = [
                asyncio.create_task(
                    cli(
                        "sync",
                        "--server",
                        server,
                        "--db",
                        str(db),
                        "--token",
                        token,
                        "--batch-size",
                        str(BATCH),
                        "--max-retries",
                        "20",
                        "--json",
                        timeout=90,
                    )
                )
                for db, token in zip(dbs, tokens, strict=True)
            ]
            # Mid-run, kill -9 the worker the follower is attached to: it goes on from another.
            for _ in range(6_000):
                if len(follow.stored()) >= KILL_AFTER or all(s.done() for s in syncs):
                    break
                await asyncio.sleep(0.01)
            assert follow.follower.base_url == urls[0]
            c.servers[0].kill()
            finished = await asyncio.gather(*syncs)
            results = []
            for rc, out, err in finished:
                assert rc == 0, err[-2000:]
                results.append(json.loads(out))
            runs = {r["run"] for r in results}
            assert len(runs) == CLIENTS
            assert follow.follower.base_url != urls[0]

            # Exactly 200,000 records stored, none twice.
            for token in tokens:
                assert c.count(token) == RECORDS
            # Every batch.stored reaches the follower: a killed worker's, pushed by nobody before it died, is
            # published by another worker from its note in the database, some 5 to 7 s later.
            every = {(r, b) for r in runs for b in range(RECORDS // BATCH)}
            for _ in range(2_000):
                if {(e.run, e.batch) for e in follow.stored()} >= every:
                    break
                await asyncio.sleep(0.01)
            live = urls[1]
            details = []
            for run in runs:
                r = await http.get(f"{live}{RUNS_PATH}/{run}")
                assert r.status_code == 200, r.text
                details.append(msgspec.json.decode(r.content, type=RunDetail))
            for d in details:
                t = d.totals
                print(f"{d.user}: {t.attempts} attempts, {t.rejected} 503s, {t.throttled} 429s, "
                      f"{t.records_stored} stored + {t.duplicates} duplicates in the history")  # fmt: skip
                assert t.records_stored == RECORDS, t  # the history has every stored batch's event too
            exported = {}
            for run in runs:
                r = await http.get(f"{live}{RUNS_PATH}/{run}/events")
                assert r.status_code == 200, r.text
                exported[run] = [decode_event(line) for line in r.text.splitlines()]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # sync/user exact across the cluster, counted from the server's own history: each batch.received says
    # when the throttles counted it (`admitted`), so the epoch-aligned 1 s window it was counted in is
    # floor(admitted). Never more than 5 in one. (A killed worker's last batch.received may be gone with it:
    # fewer counted, never more.)
    for d in details:
        admitted = [e.admitted for e in exported[d.run] if isinstance(e, BatchReceived)]
        assert admitted and None not in admitted
        windows = Counter(math.floor(t) for t in admitted if t is not None)
        print(f"{d.user}: {len(admitted)} admitted in {len(windows)} windows, at most {max(windows.values())} in one")
        assert max(windows.values()) <= PER_USER, (d.user, sorted(windows.items()))

    # The follower saw every batch.stored, ids strictly increasing with no gap.
    seen = {(e.run, e.batch) for e in follow.stored() if e.run in runs}
    assert seen == every, sorted(every - seen)
    republished = sum(
        int(line.split("published the events of ")[1].split()[0])
        for srv in c.servers
        for line in srv.log().splitlines()
        if "published the events of " in line
    )
    print(f"notes the killed worker left, published again by another (the stream kept the new ones): {republished}")
    ids = [i for _, i in follow.got if i is not None]
    assert all(b == a + 1 for a, b in itertools.pairwise(ids)), "a gap or a repeat in the ids"
    assert sum(isinstance(e, ConfigChanged) for e, _ in follow.got) == 1

    # Batches spread over all four workers, and a retry that landed on another worker than the attempt before.
    where: dict[tuple[str, int, int], tuple[int, int]] = {}
    for i, srv in enumerate(c.servers):
        for s in served(srv.log()):
            if s.run in runs and s.batch is not None and s.attempt is not None:
                where[s.run, s.batch, s.attempt] = (i, s.status)
    per_worker = Counter(w for w, status in where.values() if status == 200)
    print("batches stored per worker:", dict(sorted(per_worker.items())))
    assert set(per_worker) == {0, 1, 2, 3}, per_worker
    moved = [
        (key, w, where[key[0], key[1], key[2] + 1][0])
        for key, (w, status) in where.items()
        if status == 503 and (key[0], key[1], key[2] + 1) in where and where[key[0], key[1], key[2] + 1][0] != w
    ]
    print(f"retries after a 503 that went to another worker: {len(moved)}")
    assert moved
