"""One measured sync run of one client, as a `Row` set beside its phase-aware bound (docs/physics.md).

The settings the sync benchmark runs under, the records it syncs (a template outbox made once), and
one runner per kind of client: ours (`client.manager.SyncManager`, any mode), the seed's literal
client (`bench/reference_client.py`) and the floor (`bench/minimal_client.py`). `bench/sync.py`
drives them per response style; `bench/sync_report.py` renders the rows and judges them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.minimal_client import MinimalClient, outbox_bodies
from bench.reference_client import GROUP, ReferenceSyncManager
from client.manager import SyncManager
from client.outbox import Outbox
from client.scheduler import MODES
from harness.demo import WIDE_LIMITS
from harness.processes import ROOT
from syncbed.contract import COUNT_PATH, DEFAULT_BATCH_RECORDS, SYNC_MODES
from syncbed.physics import Rule, earliest_finish

LATENCY_MS = 300
LATENCY = LATENCY_MS / 1000
DEFAULT_STYLE = "syncbed"  # the server's own refusals: what the tables measured before there were styles
CLIENTS = (*SYNC_MODES, "reference")
FIXED = ("sequential", "conservative", "aggressive")  # the modes that never change their concurrency
# The floor: the least any client with aggressive's concurrency can do here; only where limits do not bind.
MINIMAL = ("minimal, outbox", "minimal, memory")
# Adaptive with the RateLimit fields ignored: what it finds from 429s alone; only where limits bind, and only
# in a style that sends the fields (elsewhere it is adaptive itself).
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
    style: str = DEFAULT_STYLE  # the server's response style (limits.response)
    stored: int | None = None  # the server's record count for the run's user afterwards (None: not asked)
    note: str = ""  # why batches were lost, in the client's words (the first failure)
    # Of the repeated runs this row is the median of: how many, the most 429s any of them met (None: a single
    # run), how many lost batches and how many the server's count disagreed with.
    repeats: int = 1
    worst_throttled: int | None = None
    lost_runs: int = 0
    miscounted: int = 0

    @property
    def rules(self) -> list[Rule]:
        return [Rule(name, limit, WINDOW, elapsed=self.phase) for name, limit in
                (("sync/user", self.limit), ("sync/ip", IP_LIMITS[self.limit]))]  # fmt: skip

    @property
    def complete(self) -> bool:
        return self.ok == self.batches

    @property
    def bound(self) -> float:
        """The phase-aware bound (docs/physics.md): the earliest schedule from where in the window the run began.

        Of the batches the run delivered: a client that gave up after five cannot have done those five
        sooner than this, and a bound of all ten would flatter it for stopping.
        """
        return earliest_finish(self.ok, LATENCY, max(1, self.concurrency), self.rules)

    @property
    def ratio(self) -> float:
        return self.seconds / self.bound if self.bound else math.nan

    @property
    def share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    @property
    def most_refused(self) -> int:
        """The most 429s of one run: of every repeat where there were repeats."""
        return self.throttled if self.worst_throttled is None else max(self.throttled, self.worst_throttled)

    @property
    def acknowledged(self) -> int:
        """The records the client says the server took: its delivered batches."""
        return min(self.records, self.ok * DEFAULT_BATCH_RECORDS)

    @property
    def counted(self) -> bool:
        """Whether the server holds exactly what the run says it delivered (when it was asked)."""
        return self.stored is None or self.stored == self.acknowledged


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
    """The run with the median time (the upper one of an even count), carrying what every run met.

    A client that remembers what it learnt may refuse nothing from its second run on: its worst run's
    429s, and any run the server's count disagreed with, stay on the row the table shows.
    """
    chosen = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    if len(runs) == 1:
        return chosen
    return dataclasses.replace(
        chosen,
        repeats=len(runs),
        worst_throttled=max(r.throttled for r in runs),
        lost_runs=sum(not r.complete for r in runs),
        miscounted=sum(not r.counted for r in runs),
    )


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
    note = ""
    if not result.complete:
        print(f"  {mode} {n}: {result.status} {result.failed[:3]}", file=sys.stderr)
        note = result.failed[0].reason if result.failed else result.status
    return Row(setting, n, client, result.concurrency, result.duration, result.requests, result.throttled,
               result.ok_batches, result.total_batches, limit, phase(start), note=note)  # fmt: skip


async def run_reference(url: str, token: str, batches: list[bytes], n: int, setting: str, limit: int) -> Row:
    """The seed's client; a batch it loses (a 429 it cannot read, a fourth 429) ends its sync, and the row says so."""
    async with ReferenceSyncManager(url, token) as reference:
        await window_edge()
        start = time.time()
        result = await reference.sync_batches_concurrent(batches, GROUP)
    return Row(setting, n, "reference", GROUP, result.duration, result.requests, result.throttled,
               result.ok_batches, result.batches, limit, phase(start), note=next(iter(result.errors), ""))  # fmt: skip


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
    note = str(minimal.errors[0]) if minimal.errors else ""
    return Row(setting, n, client, concurrency, seconds, batches, 0, ok, batches, limit, phase(start), note=note)


async def count(url: str, token: str) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(url + COUNT_PATH, headers={"Authorization": f"Bearer {token}"})
        return int(r.json()["count"])
