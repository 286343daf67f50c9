"""`scripts/bench events`: ingest throughput with 0 and with 3 SSE subscribers attached, side by side."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from statistics import median

import httpx
import psutil

from bench.common import post_batch, syncbed_server, table
from bench.ingest import make_bodies
from harness.processes import ROOT
from harness.server import LiveServer
from syncbed import contract
from syncbed.events import EV_RUN_FINISHED

CONCURRENCY = 5
SUBSCRIBERS = 3
TARGET = 0.95


async def push_run(srv: LiveServer, token: str, bodies: list[bytes], run: str) -> float:
    """Announce a run, push every body CONCURRENCY at a time (all must be 200), finish it; seconds taken."""
    auth = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CONCURRENCY + 1)
    async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as c:
        r = await c.post(
            contract.RUNS_PATH,
            headers=auth,
            json={"run": run, "total_records": len(bodies) * 1000, "total_batches": len(bodies), "batch_size": 1000},
        )
        r.raise_for_status()
        queue = list(enumerate(bodies))
        queue.reverse()

        async def worker() -> None:
            while queue:
                index, body = queue.pop()
                await post_batch(c, auth, run, index, body)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        seconds = time.perf_counter() - started
        r = await c.post(f"{contract.RUNS_PATH}/{run}/finish", headers=auth, json={"status": "complete"})
        r.raise_for_status()
        return seconds


async def read_streams(url: str, admin: str, n: int, run: str) -> list[dict[str, int]]:
    """n subscribers that read every event until `run` finishes; what each saw."""
    ready = 0

    async def one() -> dict[str, int]:
        nonlocal ready
        seen = {"events": 0, "batch.stored": 0, "stream.dropped": 0}
        headers = {"Authorization": f"Bearer {admin}"}
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(60, read=120)) as client,
            client.stream("GET", url + contract.EVENTS_PATH, headers=headers) as response,
        ):
            response.raise_for_status()
            ready += 1
            if ready == n:
                print("ready", flush=True)
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                    seen["events"] += 1
                    if kind in seen:
                        seen[kind] += 1
                elif line.startswith("data: ") and kind == EV_RUN_FINISHED and f'"run":"{run}"' in line:
                    return seen
        return seen

    return list(await asyncio.gather(*(one() for _ in range(n))))


def start_readers(srv: LiveServer, n: int, run: str) -> subprocess.Popen[str]:
    """The subscribers live in their own process, as a monitor would, so they cost the server, not the pusher."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.events", "--read", srv.url, "--subscribers", str(n), "--run", run],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "SYNCBED_BENCH_ADMIN": srv.admin_token},  # not on the command line
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"subscribers did not connect: {line!r}")
    return proc


@dataclass
class Round:
    rate: float  # records/s, wall clock
    cpu_ms: float  # server CPU time per 1,000 records: what the subscribers cost, less exposed to noise
    seen: list[dict[str, int]]


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """The server on one CPU, everything else (pusher, subscribers) on the rest, when there are two or more.

    The subscribers stand in for a monitor, which would run elsewhere: parsing SSE is their cost, not the
    server's. Sharing CPUs, their work and the pusher's would steal from the server at random and hide the
    5% this measures in scheduling noise.
    """
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def segment(srv: LiveServer, token: str, n_batches: int, subscribers: int, tag: str) -> Round:
    """One run of `n_batches` into `srv` with `subscribers` attached: rate, server CPU, what each one saw."""
    bodies = make_bodies(n_batches, 1000, tag)
    run = f"bench-{tag}"
    server = psutil.Process(srv.pid)
    readers = start_readers(srv, subscribers, run) if subscribers else None
    try:
        before = server.cpu_times()
        seconds = asyncio.run(push_run(srv, token, bodies, run))
        after = server.cpu_times()
        seen: list[dict[str, int]] = []
        if readers is not None:
            out, _ = readers.communicate(timeout=120)
            seen = json.loads(out.strip().splitlines()[-1])
    finally:
        if readers is not None and readers.poll() is None:
            readers.kill()
            readers.wait()
    cpu = (after.user + after.system) - (before.user + before.system)
    return Round(n_batches * 1000 / seconds, cpu * 1000 / n_batches, seen)


def run(quick: bool) -> str:
    n_batches = 40 if quick else 100
    pairs = 2 if quick else 10
    results: dict[int, list[Round]] = {0: [], SUBSCRIBERS: []}
    server_cpus, other_cpus = split_cpus()
    mine = os.sched_getaffinity(0)
    if other_cpus:
        os.sched_setaffinity(0, other_cpus)  # inherited by the subscriber processes
    try:
        with syncbed_server("--no-limits", cpus=server_cpus) as srv:
            token = srv.token("bench")
            segment(srv, token, n_batches // 2, 0, "warmup")
            for r in range(pairs):
                # Segments alternate on one server, each pair back to back, and which goes first alternates
                # too: the machine's drift and the database's growth hit both sides alike.
                order = (0, SUBSCRIBERS) if r % 2 == 0 else (SUBSCRIBERS, 0)
                for subs in order:
                    results[subs].append(segment(srv, token, n_batches, subs, f"p{r}s{subs}"))
    finally:
        os.sched_setaffinity(0, mine)
    some, none = results[SUBSCRIBERS], results[0]
    ratios = [a.rate / b.rate for a, b in zip(some, none, strict=True)]
    cpu_ratios = [b.cpu_ms / a.cpu_ms for a, b in zip(some, none, strict=True)]
    mid = median(ratios)
    cpu_ratio = median(cpu_ratios)
    seen_all = [s for x in some for s in x.seen]
    complete = all(s["batch.stored"] == n_batches for s in seen_all) and len(seen_all) == pairs * SUBSCRIBERS
    dropped = sum(s["stream.dropped"] for s in seen_all)
    rows = [
        [
            f"{k} subscribers",
            f"{median(x.rate for x in results[k]):,.0f}",
            f"{median(x.cpu_ms for x in results[k]):.1f}",
            ", ".join(f"{x.rate:,.0f}" for x in results[k]),
        ]
        for k in (0, SUBSCRIBERS)
    ]
    verdict = "meets" if mid >= TARGET else "MISSES"
    pinned = (
        f"The server ran pinned to CPU {min(server_cpus)}; the pusher and the subscribers on the others."
        if server_cpus
        else "One CPU: server, pusher and subscribers shared it."
    )
    return (
        f"### events\n\nIngest into one server (rate limits off), in {pairs} pairs of back-to-back segments of "
        f"{n_batches} batches of 1,000 records ({CONCURRENCY} in flight): one segment with no event-stream "
        f"subscriber, one with {SUBSCRIBERS} subscribers reading every event (in a separate process, as a monitor "
        f"would). {pinned}\n\n"
        + table(["subscribers", "records/s median", "server CPU ms / 1,000 records", "every segment"], rows)
        + f"\n\nThroughput with {SUBSCRIBERS} / with none, median of the {pairs} pairs' ratios: **{mid:.2f}** "
        f"(target >= {TARGET}: {verdict}; pairs range {min(ratios):.2f}-{max(ratios):.2f}). Server CPU per record "
        f"with none / with {SUBSCRIBERS}: {cpu_ratio:.2f}. Every subscriber saw every batch.stored event: "
        f"{'yes' if complete else 'NO'}; stream.dropped events: {dropped}.\n"
    )


def main(quick: bool = False) -> str:
    return run(quick)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--read", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--subscribers", type=int, default=SUBSCRIBERS, help=argparse.SUPPRESS)
    p.add_argument("--run", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.read:
        result = asyncio.run(read_streams(args.read, os.environ["SYNCBED_BENCH_ADMIN"], args.subscribers, args.run))
        print(json.dumps(result), flush=True)
    else:
        print(main(args.quick))
