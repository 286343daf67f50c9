"""`scripts/demo --cluster`: 2 hosts x 2 workers on one Redis and one PostgreSQL, one client alternating hosts."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from harness.access import served
from harness.cluster import Cluster
from harness.limits import throttle
from harness.processes import ROOT
from syncbed.contract import FAULTS_PATH

USER = "demo"
ERROR_RATE = 0.05  # a few injected 503s, so some retries go to another worker
# The seed's sync/user (5/s); the per-IP rules raised, as everything here comes from 127.0.0.1.
LIMITS = throttle("req/ip", 1_000_000, "5m") + throttle("sync/user", 5, "1s", key="user", sync=True)


def _client(*args: str, wait: bool = True) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "client", *args], cwd=ROOT, stdout=subprocess.DEVNULL)
    if wait and proc.wait(timeout=600) != 0:
        raise RuntimeError(f"python -m client {args[0]} failed (exit {proc.returncode})")
    return proc


def render(console: Console, cluster: Cluster) -> Counter[int]:
    """A row per worker: the sync requests it served, stored, throttled and failed; returns stored per worker."""
    table = Table(title="per worker", title_justify="left")
    for col in ("host", "worker", "url", "requests", "200s", "429s", "503s"):
        table.add_column(col, justify="left" if col in ("host", "worker", "url") else "right")
    stored: Counter[int] = Counter()
    for i, srv in enumerate(cluster.servers):
        statuses = Counter(s.status for s in served(srv.log()))
        stored[i] = statuses[200]
        host, worker = divmod(i, cluster.workers)
        table.add_row(
            str(host + 1), str(worker + 1), srv.url, str(sum(statuses.values())),
            str(statuses[200]), str(statuses[429]), str(statuses[503]),
        )  # fmt: skip
    console.print(table)
    return stored


def run(records: int, latency_ms: int, monitor: bool) -> int:
    console = Console() if sys.stdout.isatty() else Console(width=120, soft_wrap=True)
    started = time.monotonic()
    console.print(
        f"[bold]syncbed cluster demo[/]: 2 hosts x 2 workers, one redis-server, one PostgreSQL; {records:,} "
        f"records, 5 syncs/s per user across the cluster, {ERROR_RATE:.0%} injected 503s, {latency_ms} ms a batch"
    )
    args = ["--latency-ms", str(latency_ms)]
    with tempfile.TemporaryDirectory(prefix="syncbed-demo-cluster-") as tmp, Cluster(limits=LIMITS, args=args) as c:
        for srv in c.servers:
            console.print(f"  worker {srv.url} (pid {srv.pid})")
        token = c.token(USER)
        r = httpx.put(c.urls[1] + FAULTS_PATH, json={"error_rate": ERROR_RATE}, headers=c.admin_headers(), timeout=10)
        r.raise_for_status()
        console.print(f"  admin API on worker 2: error_rate {ERROR_RATE} (every worker applies it)")
        db = str(Path(tmp) / "outbox.db")
        _client("generate", str(records), "--db", db, "--user-seed", "1")
        server = ",".join(c.urls)
        console.print(f"  python -m client sync --server {server}")
        sync = _client("sync", "--server", server, "--db", db, "--token", token, wait=False)
        if monitor:
            watch = [sys.executable, "-m", "monitor", "--server", server, "--admin-token", c.admin_token]
            subprocess.run(watch, cwd=ROOT, check=False)  # quits when the viewer does
        try:
            code = sync.wait(timeout=600)
        except subprocess.TimeoutExpired:
            sync.kill()
            code = sync.wait()
        count = c.count(token)
        console.print()
        stored = render(console, c)
    exact = count == records
    everyone = all(stored[i] > 0 for i in range(len(stored)))
    console.print(f"cluster count: {count:,}/{records:,} records" + (" - exact" if exact else " - MISMATCH"))
    console.print("every worker stored some batches" if everyone else "[red]a worker stored no batch[/]")
    console.print(f"[dim]cluster demo finished in {time.monotonic() - started:.0f} s[/]")
    return 0 if code == 0 and exact and everyone else 1
