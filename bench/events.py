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

from bench.common import ROOT, Proc, syncbed_server, table
from bench.ingest import make_bodies
from syncbed import contract

CONCURRENCY = 5
SUBSCRIBERS = 3
TARGET = 0.95


async def push_run(srv: Proc, token: str, bodies: list[bytes], run: str) -> float:
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
                headers = {
                    **auth,
                    "Content-Type": "application/json",
                    contract.HEADER_RUN: run,
                    contract.HEADER_BATCH: str(index),
                    contract.HEADER_ATTEMPT: "1",
                }
                r = await c.post(contract.SYNC_PATH, content=body, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(f"sync answered {r.status_code}: {r.text[:200]}")

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
                elif line.startswith("data: ") and kind == contract.EV_RUN_FINISHED and f'"run":"{run}"' in line:
                    return seen
        return seen

    return list(await asyncio.gather(*(one() for _ in range(n))))


def start_readers(srv: Proc, n: int, run: str) -> subprocess.Popen[str]:
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


def one_round(n_batches: int, subscribers: int, tag: str) -> Round:
    """Ingest through a fresh server with `subscribers` attached: rate, server CPU, what each subscriber saw."""
    bodies = make_bodies(n_batches, 1000, tag)
    run = f"bench-{tag}"
    with syncbed_server("--no-limits") as srv:
        token = srv.token("bench")
        server = psutil.Process(srv.proc.pid)
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
    n_batches = 50 if quick else 200
    rounds = 2 if quick else 5
    results: dict[int, list[Round]] = {0: [], SUBSCRIBERS: []}
    for r in range(rounds):
        # Alternate which goes first, so drift in machine load hits both alike.
        order = (0, SUBSCRIBERS) if r % 2 == 0 else (SUBSCRIBERS, 0)
        for subs in order:
            results[subs].append(one_round(n_batches, subs, f"r{r}s{subs}"))
    some = results[SUBSCRIBERS]
    rates = {k: [x.rate for x in v] for k, v in results.items()}
    cpus = {k: [x.cpu_ms for x in v] for k, v in results.items()}
    best = max(rates[SUBSCRIBERS]) / max(rates[0])
    mid = median(rates[SUBSCRIBERS]) / median(rates[0])
    cpu_ratio = median(cpus[0]) / median(cpus[SUBSCRIBERS])
    seen_all = [s for x in some for s in x.seen]
    complete = all(s["batch.stored"] == n_batches for s in seen_all) and len(seen_all) == rounds * SUBSCRIBERS
    dropped = sum(s["stream.dropped"] for s in seen_all)
    rows = [
        [
            f"{k} subscribers",
            f"{max(rates[k]):,.0f}",
            f"{median(rates[k]):,.0f}",
            f"{median(cpus[k]):.1f}",
            ", ".join(f"{x:,.0f}" for x in rates[k]),
        ]
        for k in (0, SUBSCRIBERS)
    ]
    verdict = "meets" if mid >= TARGET else "MISSES"
    return (
        f"### events\n\nIngest of {n_batches * 1000:,} records ({n_batches} batches of 1,000, {CONCURRENCY} in "
        f"flight, rate limits off) into a fresh server, with no event-stream subscriber and with {SUBSCRIBERS} "
        f"subscribers reading every event (in a separate process). {rounds} alternating rounds each.\n\n"
        + table(["subscribers", "records/s best", "median", "server CPU ms / 1,000 records", "all rounds"], rows)
        + f"\n\nThroughput with {SUBSCRIBERS} / with none: **{best:.2f}** best-to-best, **{mid:.2f}** "
        f"median-to-median (target, median to median, >= {TARGET}: {verdict}); server CPU per record with none / with "
        f"{SUBSCRIBERS}: {cpu_ratio:.2f}. Every subscriber saw every batch.stored event: "
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
