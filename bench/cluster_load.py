"""bench/cluster.py's load: a configuration's servers, the pushers spread over its workers, SSE subscribers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from httpx_sse import aconnect_sse

from bench.common import post_batch
from bench.ingest import make_bodies
from harness.postgres import PostgresServer
from harness.processes import ROOT, RedisServer
from harness.server import LiveServer
from server.tokens import create_token_at
from syncbed import contract
from syncbed.events import EV_BATCH_STORED, EV_RUN_FINISHED, EV_STREAM_DROPPED

IN_FLIGHT = 4  # requests in flight per worker, whatever the configuration
READ_TIMEOUT = 120.0  # a subscriber that has not seen its run end by then gives up (and the bench says so)


@dataclass
class Setup:
    """One configuration's running servers: where to send, whose CPU is the server's, a user's token."""

    urls: list[str]
    roots: list[int]  # pids whose CPU time, with their children's, is the servers'
    token: str
    admin: str

    def cpu_seconds(self) -> float:
        """User and system CPU of every server process so far."""
        total = 0.0
        for pid in self.roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(pid)
                for p in (proc, *proc.children(recursive=True)):  # --workers N: uvicorn's spawned workers
                    with contextlib.suppress(psutil.NoSuchProcess):
                        t = p.cpu_times()
                        total += t.user + t.system
        return total

    def count(self) -> int:
        """The records the cluster holds for the token's user."""
        r = httpx.get(self.urls[0] + contract.COUNT_PATH, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        r.raise_for_status()
        return int(r.json()["count"])


def config_text(admin: str, redis_url: str | None, workers: int = 1, database: str | None = None) -> str:
    """Limits off; the limiter store and the bus on `redis_url`, or both in memory when None."""
    store = redis_url or "memory"
    bus = redis_url or "memory"
    db = f'database = "{database}"\n' if database else ""
    return (
        f'[server]\nadmin_token = "{admin}"\nworkers = {workers}\nbus = "{bus}"\n{db}\n'
        f'[limits]\nenabled = false\nstore = "{store}"\n'
    )


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for each configuration: no stream, counter or history left by the one before."""
    with tempfile.TemporaryDirectory(prefix="syncbed-bench-redis-") as tmp:
        redis = RedisServer(data_dir=Path(tmp)).start()
        try:
            yield redis
        finally:
            redis.kill()


@contextlib.contextmanager
def sqlite_setup(workers: int, bus: str) -> Iterator[Setup]:
    """`--workers N` of one process group on one data directory (SQLite is one host's); `bus` redis or memory."""
    admin = secrets.token_urlsafe(24)
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server()).url if bus == "redis" else None
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="syncbed-bench-")))
        srv = LiveServer.at(tmp, config=config_text(admin, redis_url, workers), args=["--log-level", "warning"])
        stack.callback(srv.stop)
        srv.start(timeout=60)
        yield Setup([srv.url], [srv.pid], srv.token("bench"), admin)


@contextlib.contextmanager
def postgres_setup(pg: PostgresServer, workers: int, database: str) -> Iterator[Setup]:
    """N separate server processes on one PostgreSQL database and one Redis, as harness/cluster.py runs them."""
    admin = secrets.token_urlsafe(24)
    url = pg.create_database(database)
    try:
        with contextlib.ExitStack() as stack:
            redis = stack.enter_context(redis_server())
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="syncbed-bench-")))
            servers = []
            for w in range(workers):
                (tmp / f"worker{w + 1}").mkdir()
                config = config_text(admin, redis.url, database=url)
                srv = LiveServer.at(tmp / f"worker{w + 1}", config=config, args=["--log-level", "warning"])
                stack.callback(srv.stop)
                servers.append(srv.start(timeout=60))
            yield Setup([s.url for s in servers], [s.pid for s in servers], create_token_at(url, "bench"), admin)
    finally:
        pg.drop_database(database)


async def push_run(setup: Setup, bodies: list[bytes], run: str) -> float:
    """Announce a run on the first worker, push every body with IN_FLIGHT per worker (all 200), finish it; seconds."""
    auth = {"Authorization": f"Bearer {setup.token}"}
    limits = httpx.Limits(max_connections=IN_FLIGHT * len(setup.urls) + 1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=u, timeout=60, limits=limits))
            for u in setup.urls
        ]
        meta = {"run": run, "total_records": len(bodies) * 1000, "total_batches": len(bodies), "batch_size": 1000}
        (await clients[0].post(contract.RUNS_PATH, headers=auth, json=meta)).raise_for_status()
        queue = list(enumerate(bodies))
        queue.reverse()

        async def pusher(c: httpx.AsyncClient) -> None:
            while queue:
                index, body = queue.pop()
                await post_batch(c, auth, run, index, body)

        started = time.perf_counter()
        # One shared queue: each worker's pushers take the next batch as they are answered.
        await asyncio.gather(*(pusher(c) for c in clients for _ in range(IN_FLIGHT)))
        seconds = time.perf_counter() - started
        finish = await clients[0].post(f"{contract.RUNS_PATH}/{run}/finish", headers=auth, json={"status": "complete"})
        finish.raise_for_status()
        return seconds


async def read_streams(urls: Sequence[str], admin: str, run: str, batches: int) -> list[dict[str, int]]:
    """One SSE subscriber per URL, each reading until it has seen `run`'s batches stored and the run finished."""
    ready = 0

    async def one(url: str) -> dict[str, int]:
        nonlocal ready
        seen = {"events": 0, EV_BATCH_STORED: 0, EV_STREAM_DROPPED: 0}
        finished = False
        headers = {"Authorization": f"Bearer {admin}"}
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(60, read=READ_TIMEOUT)) as client,
            aconnect_sse(client, "GET", url + contract.EVENTS_PATH, headers=headers) as source,
        ):
            source.response.raise_for_status()
            ready += 1
            if ready == len(urls):
                print("ready", flush=True)
            async for sse in source.aiter_sse():
                seen["events"] += 1
                mine = f'"run":"{run}"' in sse.data
                if sse.event == EV_STREAM_DROPPED:
                    seen[EV_STREAM_DROPPED] += 1
                elif sse.event == EV_BATCH_STORED and mine:
                    seen[EV_BATCH_STORED] += 1
                # On a Redis bus the run's end may reach the stream before another worker's last batch.
                finished = finished or (sse.event == EV_RUN_FINISHED and mine)
                if finished and seen[EV_BATCH_STORED] >= batches:
                    break
        return seen

    return list(await asyncio.wait_for(asyncio.gather(*(one(u) for u in urls)), READ_TIMEOUT))


def start_readers(urls: Sequence[str], admin: str, run: str, batches: int) -> subprocess.Popen[str]:
    """The subscribers in a process of their own, as a monitor would be; returns once all are connected."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cluster_load", "--read", ",".join(urls), "--run", run, "--batches", str(batches)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "SYNCBED_BENCH_ADMIN": admin},  # not on the command line
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"subscribers did not connect: {line!r}")
    return proc


@dataclass
class Segment:
    """One timed run: its rate, the servers' CPU per 1,000 records, what each subscriber saw."""

    rate: float  # records/s, wall clock
    cpu_ms: float  # the servers' CPU per 1,000 records
    seen: list[dict[str, int]] = field(default_factory=list)


def segment(setup: Setup, n_batches: int, tag: str, subscribers: int = 0) -> Segment:
    """One run of `n_batches` into `setup`, with `subscribers` spread over its workers."""
    bodies = make_bodies(n_batches, 1000, tag)
    run = f"bench-{tag}"
    urls = [setup.urls[i % len(setup.urls)] for i in range(subscribers)]
    readers = start_readers(urls, setup.admin, run, n_batches) if subscribers else None
    try:
        before = setup.cpu_seconds()
        seconds = asyncio.run(push_run(setup, bodies, run))
        cpu = setup.cpu_seconds() - before
        seen: list[dict[str, int]] = []
        if readers is not None:
            out, _ = readers.communicate(timeout=READ_TIMEOUT + 10)
            seen = json.loads(out.strip().splitlines()[-1]) if readers.returncode == 0 else []
    finally:
        if readers is not None and readers.poll() is None:
            readers.kill()
            readers.wait()
    return Segment(n_batches * 1000 / seconds, cpu * 1000 / n_batches, seen)


if __name__ == "__main__":  # the subscribers' process (start_readers)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--read", required=True, metavar="URL,URL,...")
    p.add_argument("--run", required=True)
    p.add_argument("--batches", type=int, required=True)
    args = p.parse_args()
    urls = args.read.split(",")
    print(json.dumps(asyncio.run(read_streams(urls, os.environ["SYNCBED_BENCH_ADMIN"], args.run, args.batches))))
