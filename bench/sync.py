"""`python -m bench.sync [--quick]`: the original plan's sync table, measured against the physical bound.

Every client syncs N records (batches of 1,000) to a real `python -m server` with
latency_ms=300, under (a) limits too wide to bind and (b) the seed's limits, and
each time is set beside the lower bound of docs/physics.md for that client's
concurrency. The reference is the original browser client, ported literally.
Then one 1,000,000-record run with limits off, watching both processes' memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.common import syncbed_server, table
from bench.minimal_client import MinimalClient, outbox_bodies
from bench.reference_client import GROUP, ReferenceSyncManager
from client.manager import SyncManager
from client.outbox import Outbox
from client.scheduler import MODES
from harness.demo import WIDE_LIMITS
from harness.processes import ROOT
from syncbed.contract import DEFAULT_BATCH_RECORDS, SYNC_MODES
from syncbed.gc_settle import settle
from syncbed.physics import Rule, earliest_finish

LATENCY_MS = 300
LATENCY = LATENCY_MS / 1000
CLIENTS = (*SYNC_MODES, "reference")
# The floor: the least any client with aggressive's concurrency can do here; only where limits do not bind.
MINIMAL = ("minimal, outbox", "minimal, memory")
# Adaptive with the RateLimit fields ignored: what it finds from 429s alone (CUBIC); only where limits bind.
BLIND = "adaptive, 429s only"
# req/ip (300 per 5 min) is raised in both settings: within one run it would not bind, but the
# benchmark's consecutive runs share one address and would exhaust each other's budget.
WIDE = WIDE_LIMITS
SEED = """
[[limits.throttle]]
name = "req/ip"
limit = 1000000
period = "5m"
key = "ip"
"""
# A single 0.3 s run varies by several percent here (the machine, not the client): short syncs are run
# this many times, clients taking turns, and each client's median run is reported.
REPEATS = {1_000: 5, 10_000: 5}
SETTINGS = {
    "a": ("(a) limits wide enough not to bind: sync/user 50/s, sync/ip 100/s", WIDE, 50),
    "b": ("(b) the seed's limits: sync/user 5/s, sync/ip 10/s", SEED, 5),
}
IP_LIMITS = {50: 100, 5: 10}  # sync/ip beside each setting's sync/user (one client at a time: it never binds)
WINDOW = 1.0  # both rules' period: fixed windows aligned to the epoch, as the server counts them


@dataclass
class Row:
    setting: str
    records: int
    client: str
    concurrency: int
    seconds: float
    requests: int
    throttled: int
    ok: int
    batches: int
    limit: int
    phase: float = 0.0  # how far into the server's window the run started, in seconds (start % W)

    @property
    def rules(self) -> list[Rule]:
        return [Rule(name, limit, WINDOW, elapsed=self.phase) for name, limit in
                (("sync/user", self.limit), ("sync/ip", IP_LIMITS[self.limit]))]  # fmt: skip

    @property
    def bound(self) -> float:
        """The phase-aware bound (docs/physics.md): the earliest schedule from where in the window the run began."""
        return earliest_finish(self.batches, LATENCY, max(1, self.concurrency), self.rules)

    @property
    def ratio(self) -> float:
        return self.seconds / self.bound if self.bound else math.nan

    @property
    def share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0


# --- data ---------------------------------------------------------------------------------------
def make_template(path: Path, records: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "client", "generate", str(records), "--db", str(path), "--user-seed", "2024"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def fill(outbox: Outbox, template: Path, n: int) -> None:
    await outbox.db.execute("ATTACH DATABASE ? AS tpl", (str(template),))
    await outbox.db.execute("INSERT INTO outbox (id, body) SELECT id, body FROM tpl.outbox ORDER BY seq LIMIT ?", (n,))
    await outbox.db.commit()
    await outbox.db.execute("DETACH DATABASE tpl")


async def bodies(template: Path, n: int) -> list[bytes]:
    """The same records as request bodies, all in memory, as the browser client holds them."""
    out: list[bytes] = []
    async with Outbox(template) as outbox:
        _, upto = await outbox.pending()
        async for rows in outbox.batches(DEFAULT_BATCH_RECORDS, upto):
            out.append(b'{"pageVisits":[' + b",".join(body for _, body in rows) + b"]}")
            if len(out) * DEFAULT_BATCH_RECORDS >= n:
                break
    return out


async def window_edge(into: float = 0.002) -> None:
    """Start just after a fixed window opens (`into` seconds), so every client meets the same, full, first window.

    Garbage is collected first: every run then starts with the collector's counts at zero, and none
    pays for a full collection that the runs before it made due (the client runs in this process).
    """
    gc.collect()
    now = time.time()
    await asyncio.sleep(math.floor(now) + 1 + into - now)


def phase(start: float) -> float:
    """Seconds into the server's window at `start` (wall clock): its windows are aligned to the epoch."""
    return start % WINDOW


def median(runs: list[Row]) -> Row:
    """The run with the median time (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


# --- one measurement ----------------------------------------------------------------------------
async def run_ours(
    url: str, token: str, outbox: Outbox, client: str, n: int, setting: str, limit: int, into: float = 0.002
) -> Row:
    blind = client == BLIND
    mode = "adaptive" if blind else client
    manager = SyncManager(url, token, outbox, mode=mode, use_ratelimit_fields=not blind)
    await window_edge(into)
    start = time.time()
    result = await manager.sync()
    if not result.complete:
        print(f"  {mode} {n}: {result.status} {result.failed[:3]}", file=sys.stderr)
    return Row(setting, n, client, result.concurrency, result.duration, result.requests, result.throttled,
               result.ok_batches, result.total_batches, limit, phase(start))  # fmt: skip


async def run_reference(url: str, token: str, batches: list[bytes], n: int, setting: str, limit: int) -> Row:
    async with ReferenceSyncManager(url, token) as reference:
        await window_edge()
        start = time.time()
        result = await reference.sync_batches_concurrent(batches, GROUP)
    return Row(setting, n, "reference", GROUP, result.duration, result.requests, result.throttled,
               result.ok_batches, result.batches, limit, phase(start))  # fmt: skip


async def run_minimal(
    url: str, token: str, client: str, source: Path | list[bytes], n: int, setting: str, limit: int
) -> Row:
    concurrency = MODES["aggressive"]
    batches = math.ceil(n / DEFAULT_BATCH_RECORDS)
    async with MinimalClient(url, token, concurrency) as minimal:
        await window_edge()
        start = time.time()
        bodies = outbox_bodies(source, DEFAULT_BATCH_RECORDS, batches) if isinstance(source, Path) else iter(source)
        seconds, ok = await minimal.run(bodies)
    if minimal.errors:
        print(f"  {client} {n}: {minimal.errors[:3]}", file=sys.stderr)
    return Row(setting, n, client, concurrency, seconds, batches, 0, ok, batches, limit, phase(start))


async def count(url: str, token: str) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(url + "/api/v1/data/count", headers={"Authorization": f"Bearer {token}"})
        return int(r.json()["count"])


async def run_setting(key: str, sizes: list[int], template: Path, work: Path) -> list[Row]:
    _, config, limit = SETTINGS[key]
    rows: list[Row] = []
    with syncbed_server("--latency-ms", str(LATENCY_MS), config=config) as server:
        # One client installation per mode, kept across sizes (it remembers the server's limits).
        clients = [*CLIENTS, BLIND] if key == "b" else [*CLIENTS, *MINIMAL]
        outboxes = {
            c: await Outbox(work / f"{key}-{c.replace(' ', '').replace(',', '-')}.db").open()
            for c in clients
            if c not in ("reference", MINIMAL[1])
        }
        try:
            warm = server.token(f"{key}-warm-up")
            await fill(outboxes["adaptive"], template, 10)  # process warm-up: imports, first connections
            await SyncManager(server.url, warm, outboxes["adaptive"], remember_limits=False).sync()
            for n in sizes:
                batches = await bodies(template, n)
                runs: dict[str, list[Row]] = {client: [] for client in clients}
                for rep in range(REPEATS.get(n, 1)):  # clients take turns, so drift touches all alike
                    for client in clients:
                        token = server.token(f"{key}-{client}-{n}-{rep}")
                        if client == "reference":
                            row = await run_reference(server.url, token, batches, n, key, limit)
                        elif client == MINIMAL[1]:
                            row = await run_minimal(server.url, token, client, batches, n, key, limit)
                        elif client == MINIMAL[0]:
                            minimal = outboxes[client]
                            await minimal.db.execute("DELETE FROM outbox")  # it never acknowledges: start afresh
                            await fill(minimal, template, n)
                            row = await run_minimal(server.url, token, client, minimal.path, n, key, limit)
                        else:
                            await fill(outboxes[client], template, n)
                            row = await run_ours(server.url, token, outboxes[client], client, n, key, limit)
                        stored = await count(server.url, token)
                        if stored != n:
                            print(f"  {client} {n}: server holds {stored} of {n}", file=sys.stderr)
                        print(f"  {key} {n:>7} {client:<12} {row.seconds:7.2f}s x{row.ratio:.3f} 429s {row.throttled}",
                              file=sys.stderr, flush=True)  # fmt: skip
                        runs[client].append(row)
                rows += [median(runs[client]) for client in clients]
        finally:
            for outbox in outboxes.values():
                await outbox.close()
    return rows


# --- the million ---------------------------------------------------------------------------------
class PeakRss:
    """Polls a process's resident set size in a thread; `peak` in bytes."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def million(records: int, work: Path) -> str:
    db = work / "million.db"
    started = time.perf_counter()
    make_template(db, records)
    generated = time.perf_counter() - started
    with syncbed_server("--no-limits") as server:
        token = server.token("million")
        server_rss = PeakRss(server.pid)
        proc = subprocess.Popen(
            [sys.executable, "-m", "client", "sync", "--db", str(db), "--server", server.url, "--json"],
            cwd=ROOT,
            env={**os.environ, "SYNCBED_TOKEN": token},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        client_rss = PeakRss(proc.pid)
        out, err = proc.communicate()
        # --json's progress lines go to stderr: pass on only what else it said (warnings, errors).
        sys.stderr.writelines(line for line in err.splitlines(keepends=True) if not line.startswith('{"progress"'))
        client_peak, server_peak = client_rss.stop(), server_rss.stop()
        result = json.loads(out)
        stored = asyncio.run(count(server.url, token))
    mib = 1024 * 1024
    rows = [[
        f"{records:,}", result["status"], f"{stored:,}", f"{result['duration']:.1f}",
        f"{records / result['duration']:,.0f}", result["concurrency"],
        f"{client_peak / mib:.0f} MiB", f"{server_peak / mib:.0f} MiB", f"{generated:.0f}",
    ]]  # fmt: skip
    return table(
        ["records", "status", "server count", "sync s", "records/s", "in flight", "client peak RSS",
         "server peak RSS", "generate s"],
        rows,
    )  # fmt: skip


# --- report --------------------------------------------------------------------------------------
def render(rows: list[Row], key: str) -> str:
    body = [
        [f"{r.records:,}", r.client, r.concurrency, f"{1000 * r.phase:.0f} ms", f"{r.seconds:.2f}", f"{r.bound:.2f}",
         f"{r.ratio:.3f}", r.requests, r.throttled, f"{100 * r.share:.1f}%", f"{r.ok}/{r.batches}"]
        for r in rows if r.setting == key
    ]  # fmt: skip
    return table(["records", "client", "C", "phase", "time s", "bound s", "time/bound", "requests", "429s",
                  "429 share", "batches ok"], body)  # fmt: skip


def verdicts(rows: list[Row]) -> list[str]:
    ours = [r for r in rows if r.client != "reference" and r.client not in MINIMAL]
    wide = [r for r in ours if r.setting == "a"]
    seed_adaptive = [r for r in ours if r.setting == "b" and r.client == "adaptive"]
    lines = []
    if wide:
        worst = max(wide, key=lambda r: r.ratio)
        lines.append(f"- (a) every mode within 1.05x of the bound: {'yes' if worst.ratio <= 1.05 else 'no'} "
                     f"(worst {worst.ratio:.3f}, {worst.client} at {worst.records:,})")  # fmt: skip
    first = min(rows, key=lambda r: r.ratio, default=None)
    if first is not None:
        beaten = "yes" if first.ratio >= 0.99 else "NO"
        lines.append(f"- no run beat its bound (every time/bound >= 0.99): {beaten} (lowest {first.ratio:.3f}, "
                     f"{first.client} at {first.records:,} under ({first.setting}))")  # fmt: skip
    floor = {(r.client, r.records): r for r in rows if r.client in MINIMAL}
    if floor:
        lowest = {c: max((r for r in floor.values() if r.client == c), key=lambda r: r.ratio) for c in MINIMAL}
        gaps = [f"{r.records:,} {100 * (r.seconds / floor[MINIMAL[0], r.records].seconds - 1):+.1f}%"
                for r in wide if r.client == "aggressive" and (MINIMAL[0], r.records) in floor]  # fmt: skip
        lines.append(f"- the floor, the minimal client with {MODES['aggressive']} in flight: from the outbox worst "
                     f"{lowest[MINIMAL[0]].ratio:.3f} (at {lowest[MINIMAL[0]].records:,}), from memory worst "
                     f"{lowest[MINIMAL[1]].ratio:.3f} (at {lowest[MINIMAL[1]].records:,}); aggressive, at the same "
                     f"concurrency, against the floor from the outbox: {', '.join(gaps)}")  # fmt: skip
    if seed_adaptive:
        # The targets: 1.10x at 10,000 (1.03x from 100,000 on), one window's quota plus one refused.
        worst = max(seed_adaptive, key=lambda r: r.ratio / (1.03 if r.records >= 100_000 else 1.10))
        most = max(seed_adaptive, key=lambda r: r.throttled)
        ok = all(r.ratio <= (1.03 if r.records >= 100_000 else 1.10) for r in seed_adaptive) and most.throttled <= 6
        lines.append(f"- (b) adaptive within 1.10x (1.03x at 100,000) with at most 6 refused (5/s + 1): "
                     f"{'yes' if ok else 'no'} (worst {worst.ratio:.3f} at {worst.records:,}; most refused "
                     f"{most.throttled} at {most.records:,})")  # fmt: skip
    for client in ("adaptive", "aggressive", "conservative", BLIND):
        slower, more = [], []
        for r in (r for r in ours if r.client == client):
            ref = next(x for x in rows if x.client == "reference" and (x.setting, x.records) == (r.setting, r.records))
            if r.seconds > ref.seconds:
                slower.append(f"{r.setting}/{r.records:,} (+{100 * (r.seconds / ref.seconds - 1):.1f}%)")
            if r.throttled >= ref.throttled and ref.throttled > 0:
                more.append(f"{r.setting}/{r.records:,}")
        if any(r.client == client for r in ours):
            lines.append(f"- {client} vs reference: slower in {', '.join(slower) or 'none'}; "
                         f"as many or more 429s in {', '.join(more) or 'none'}")  # fmt: skip
    seq = [r for r in wide if r.client == "sequential" and r.batches >= 10]
    if seq:
        per = max(seq, key=lambda r: r.batches)
        lines.append(f"- One batch takes {1000 * per.seconds / per.batches:.0f} ms end to end here (sequential, "
                     f"{per.records:,} records): the server holds each answer until {LATENCY_MS} ms after it took "
                     "the request, its own work included; the rest is HTTP on loopback and the client's own work "
                     "(reading the outbox, acknowledging), which the bound leaves out.")  # fmt: skip
    return lines


async def measure(quick: bool, work: Path) -> list[Row]:
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 50_000, 100_000]
    template = work / "template.db"
    make_template(template, max(sizes))
    rows: list[Row] = []
    for key in SETTINGS:
        rows += await run_setting(key, sizes, template, work)
    return rows


def main(quick: bool) -> str:
    settle()  # as `python -m client` does: no full collections of the import-time heap mid-run
    with tempfile.TemporaryDirectory(prefix="syncbed-bench-sync-") as tmp:
        work = Path(tmp)
        rows = asyncio.run(measure(quick, work))
        big = 100_000 if quick else 1_000_000
        memory = million(big, work)
    modes = ", ".join(f"{m} {c}" for m, c in MODES.items())
    parts = [
        "## Sync: every client against the physical bound",
        "",
        f"A real `python -m server` with `latency_ms={LATENCY_MS}`; batches of 1,000; each run starts just after "
        "a rate-limit window opens, with a fresh user. Syncs of "
        + " and ".join(f"{n:,}" for n in REPEATS)
        + f" records run {max(REPEATS.values())} times per client, the clients taking turns, and the table shows "
        "each client's median run: one run of a third of a second varies by several percent on this machine, "
        "whoever the client. Time runs from `SyncManager.sync()` to the last "
        "acknowledgement (reference: first request to last answer). The bound is [physics.md](physics.md)'s, "
        "phase-aware: `syncbed/physics.earliest_finish`, the earliest schedule of N batches of "
        f"L = {LATENCY} s at the client's concurrency C ({modes}, the reference {GROUP}; adaptive: the most it "
        "had in flight) under sync/user and sync/ip as the run found them, `phase` seconds into their "
        "1 s windows (the run's start instant mod 1 s: the server's windows are aligned to the epoch). A run "
        "that starts late in a window has its second quota sooner, and its bound says so: a time below its "
        "bound would be a bug, not a fast client. "
        "The reference is the original plan's browser client ported literally "
        "(`bench/reference_client.py`): groups of 5 awaited together, each 429 sleeping its own `retry_after`; "
        "it sends through the same HTTP client as ours (`client/transport.py`), so the two differ in logic only. "
        f"The minimal client (`bench/minimal_client.py`, under (a) only) is the floor for {MODES['aggressive']} in "
        "flight: raw sockets opened before the clock, one write and one read per batch, no retries, no "
        "bookkeeping, the bodies read from the same outbox as ours (`outbox`) or held in memory (`memory`). "
        "Between the bound and it lie the machine and the server; between it and ours, our own work.",
        "",
    ]
    for key, (title, _, _) in SETTINGS.items():
        parts += [f"### {title}", "", render(rows, key), ""]
    parts += ["### Targets", "", *verdicts(rows), ""]
    parts += [f"### {big:,} records, limits off, no added latency (adaptive, CLI in a subprocess)", "", memory, ""]
    return "\n".join(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k and 10k only, and 100k instead of 1M (minutes)")
    print(main(parser.parse_args().quick))
