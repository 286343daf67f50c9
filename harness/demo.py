"""`scripts/demo`: the original plan's comparison, measured live on a real server, with the bound beside it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from client.scheduler import ADAPTIVE_CAP
from client.scheduler import MODES as FIXED_MODES
from harness.demo_clients import Demo
from syncbed import contract
from syncbed.physics import lower_bound

MODES = contract.SYNC_MODES
NOMINAL = {**FIXED_MODES, contract.ADAPTIVE: ADAPTIVE_CAP}  # requests in flight per mode

# Wide enough that no throttle binds at 0.3 s per batch: concurrency alone sets the pace. req/ip is
# raised too: back-to-back runs from one address would otherwise use up its 300 per 5 minutes.
WIDE_LIMITS = """
[[limits.throttle]]
name = "req/ip"
limit = 1000000
period = "5m"
key = "ip"

[[limits.throttle]]
name = "sync/ip"
limit = 100
period = "1s"
key = "ip"
paths = ["/api/v1/data/sync"]
methods = ["POST"]

[[limits.throttle]]
name = "sync/user"
limit = 50
period = "1s"
key = "user"
paths = ["/api/v1/data/sync"]
methods = ["POST"]
"""


@dataclass(frozen=True)
class Setting:
    name: str
    title: str
    limit: int  # the binding per-user throttle: R requests per W seconds
    window: float
    config: str | None


SEED = Setting("seed", "seed limits: 5 syncs/s per user, 10/s per IP, 300 per 5 min per IP", 5, 1.0, None)
WIDE = Setting("wide", "wide limits: 50 syncs/s per user, 100/s per IP (they do not bind)", 50, 1.0, WIDE_LIMITS)


@dataclass
class Row:
    mode: str
    seconds: float
    records: int
    batches: int
    throttled: int
    requests: int
    bound: float
    status: str

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def ratio(self) -> float:
        return self.seconds / self.bound if self.bound > 0 else 0.0


def row_of(result: dict[str, Any], setting: Setting, latency: float) -> Row:
    batches = int(result.get("total_batches", 0))
    concurrency = max(1, int(result.get("concurrency") or NOMINAL[result["mode"]]))
    return Row(
        mode=result["mode"],
        seconds=float(result.get("duration", 0.0)),
        records=int(result.get("synced_records", 0)),
        batches=batches,
        throttled=int(result.get("throttled", 0)),
        requests=int(result.get("requests", 0)),
        bound=lower_bound(batches, latency, concurrency, setting.limit, setting.window),
        status=str(result.get("status", f"exit {result.get('exit')}")),
    )


def run_setting(console: Console, setting: Setting, records: int, latency_ms: int) -> tuple[list[Row], int, int]:
    """Sync `records` in every mode against a fresh server; returns the rows and the server's final count."""
    with Demo(records=records, modes=MODES, latency_ms=latency_ms, pause=1.2, config=setting.config) as demo:
        return _run(console, demo, setting, records, latency_ms)


def _run(console: Console, demo: Demo, setting: Setting, records: int, latency_ms: int) -> tuple[list[Row], int, int]:
    console.print(f"\n[bold]{setting.title}[/] (server {demo.url}, {latency_ms} ms per batch)")
    demo.start_clients()
    shown = 0
    while not demo.wait_clients(0.2) or shown < len(demo.results):
        while shown < len(demo.results):
            r = demo.results[shown]
            console.print(
                f"  {r['mode']:<12} {r.get('status', 'failed'):<9} {float(r.get('duration', 0)):6.2f} s, "
                f"{r.get('throttled', 0)} x 429"
            )
            shown += 1
    rows = [row_of(r, setting, latency_ms / 1000) for r in demo.results]
    return rows, demo.count(), records * len(MODES)


def render(console: Console, setting: Setting, rows: list[Row]) -> None:
    table = Table(title=setting.title, title_justify="left")
    for col in ("mode", "status", "time s", "records/s", "429s", "requests", "bound s", "time / bound"):
        table.add_column(col, justify="left" if col in ("mode", "status") else "right")
    for r in rows:
        table.add_row(
            r.mode, r.status, f"{r.seconds:.2f}", f"{r.rate:,.0f}", str(r.throttled), str(r.requests),
            f"{r.bound:.2f}", f"{r.ratio:.2f}x",
        )  # fmt: skip
    console.print(table)


def conclusion(seed: list[Row], wide: list[Row]) -> list[str]:
    """Two lines drawn from the measured figures, not canned."""
    s = {r.mode: r for r in seed}
    w = {r.mode: r for r in wide}
    best_s = min(seed, key=lambda r: r.seconds)
    best_w = min(wide, key=lambda r: r.seconds)
    waste = s["aggressive"].throttled
    gain = s["sequential"].seconds / best_s.seconds if best_s.seconds else 0.0
    first = (
        f"At 5 syncs/s per user the limit sets the pace: the best mode ({best_s.mode}) took {best_s.seconds:.1f} s, "
        f"{best_s.ratio:.2f}x the bound of {best_s.bound:.1f} s and {gain:.1f}x faster than sequential; "
        f"aggressive drew {waste} 429s"
        + (
            f" and gained nothing over conservative "
            f"({s['aggressive'].seconds:.1f} s vs {s['conservative'].seconds:.1f} s)."
            if s["aggressive"].seconds >= 0.95 * s["conservative"].seconds
            else f" for {s['aggressive'].seconds:.1f} s."
        )
    )
    speedup = w["sequential"].seconds / best_w.seconds if best_w.seconds else 0.0
    second = (
        f"With limits that do not bind, concurrency pays: {best_w.mode} took {best_w.seconds:.1f} s, "
        f"{speedup:.1f}x faster than sequential ({w['sequential'].seconds:.1f} s) and {best_w.ratio:.2f}x its bound; "
        f"adaptive ran at {w['adaptive'].ratio:.2f}x its bound with {w['adaptive'].throttled} 429s."
    )
    return [first, second]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Start a throwaway server (0.3 s per batch) and sync the same backlog in every mode, "
        "first under the seed's rate limits, then under limits that do not bind; print time, records/s, "
        "429s and the theoretical bound for each, and what the figures say.",
    )
    parser.add_argument("--records", type=int, default=10_000, help="records per mode (default 10000)")
    parser.add_argument("--quick", action="store_true", help="2,000 records per mode (what the tests run)")
    parser.add_argument("--latency-ms", type=int, default=300, help="server latency per batch (default 300)")
    parser.add_argument("--monitor", action="store_true", help="watch the demo in the live dashboard instead")
    args = parser.parse_args(argv)
    if args.monitor:
        os.execv(sys.executable, [sys.executable, "-m", "monitor", "--demo"])
    records = 2_000 if args.quick else args.records
    if records < 1:
        parser.error("--records must be at least 1")
    console = Console() if sys.stdout.isatty() else Console(width=120, soft_wrap=True)  # tables at 120, text unwrapped
    started = time.monotonic()
    console.print(f"[bold]syncbed demo[/]: {records:,} records per mode, batches of 1,000, {args.latency_ms} ms each")
    try:
        seed, seed_count, seed_want = run_setting(console, SEED, records, args.latency_ms)
        wide, wide_count, wide_want = run_setting(console, WIDE, records, args.latency_ms)
    except KeyboardInterrupt:
        console.print("\ninterrupted: every server and client this demo started has been stopped")
        return 130
    console.print()
    render(console, SEED, seed)
    console.print(
        "[dim]bound (docs/physics.md): max(ceil(N/C)*L, (ceil(N/R)-1)*W + L), for a run that starts at a window "
        "edge. The fixed window is aligned to the clock, so a run that starts late in a window gets a second burst "
        "at the edge and can beat it by up to one window (Rack::Attack's 2x burst): a ratio below 1 is that.[/]"
    )
    render(console, WIDE, wide)
    exact = seed_count == seed_want and wide_count == wide_want
    console.print(
        f"server counts: {seed_count:,}/{seed_want:,} and {wide_count:,}/{wide_want:,} records"
        + (" - exact: nothing lost, nothing doubled" if exact else " - MISMATCH")
    )
    complete = len(seed) == len(wide) == len(MODES) and all(r.status == "complete" for r in seed + wide)
    if complete:
        for line in conclusion(seed, wide):
            console.print(line)
    else:
        console.print("[red]some syncs did not complete; see the status column[/]")
    console.print(f"[dim]demo took {time.monotonic() - started:.0f} s[/]")
    return 0 if complete and exact else 1


if __name__ == "__main__":
    sys.exit(main())
