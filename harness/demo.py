"""`scripts/demo`: the original plan's comparison in acts, measured live on a real server, each against its bound."""

from __future__ import annotations

import argparse
import os
import sys
import time

from rich.console import Console
from rich.table import Table

from harness import demo_cluster
from harness.demo_acts import SEED_ACTS, Outcome
from harness.demo_clients import Demo
from harness.demo_story import figures, summary, title
from harness.limits import throttle
from syncbed.contract import RESPONSE_STYLES

# Wide enough that no throttle binds at 0.3 s per batch: concurrency alone sets the pace. req/ip is
# raised too: back-to-back runs from one address would otherwise use up its 300 per 5 minutes. The
# benchmark's setting (b); the demo itself plays under the seed limits only.
WIDE_LIMITS = (
    throttle("req/ip", 1_000_000, "5m")
    + throttle("sync/ip", 100, "1s", sync=True)
    + throttle("sync/user", 50, "1s", key="user", sync=True)
)

SETTING = "seed limits: 5 syncs/s per user, 10/s per IP, 300 per 5 min per IP; 0.3 s per batch"
BOUND_NOTE = (
    "bound: syncbed.physics.earliest_finish for the client's concurrency (adaptive: its ceiling) under every "
    "rule that counts a sync, each at the phase of its window the run started in (docs/physics.md)"
)


def render(console: Console, outcomes: list[Outcome]) -> None:
    table = Table(title=SETTING, title_justify="left")
    for col in ("act", "client", "status", "time s", "429s", "requests", "batches", "bound s", "time / bound"):
        table.add_column(col, justify="left" if col in ("act", "client", "status") else "right")
    for o in outcomes:
        table.add_row(
            f"{o.index + 1}. {o.act.name}", o.act.client, o.status, f"{o.seconds:.2f}", str(o.throttled),
            str(o.requests), str(o.batches), f"{o.bound:.2f}", f"{o.ratio:.2f}x",
        )  # fmt: skip
    console.print(table)
    console.print(f"[dim]{BOUND_NOTE}[/]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Start a throwaway server with the seed's limits (0.3 s per batch) and play the demo's acts: "
        "sequential, the plan's client, conservative, aggressive, adaptive, then adaptive with faults changed "
        "live. Print each act's time, 429s, requests and time over its phase-aware bound, and what they say.",
    )
    parser.add_argument("--records", type=int, default=10_000, help="records per act (default 10000: 10 batches)")
    parser.add_argument("--quick", action="store_true", help="the same acts with shorter pauses (what the tests run)")
    parser.add_argument("--latency-ms", type=int, default=300, help="server latency per batch (default 300)")
    parser.add_argument("--monitor", action="store_true", help="watch the same acts in the live dashboard instead")
    parser.add_argument(
        "--response",
        choices=RESPONSE_STYLES,
        default="syncbed",
        help="how the server words its 429s (default syncbed); rack-attack answers as stock Rack::Attack: "
        "no Retry-After, no RateLimit fields, so the clients learn the limits from the refusals alone",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="instead: 2 hosts x 2 workers on one Redis and one PostgreSQL, one client alternating hosts; a table "
        "per worker and the cluster's count (--records, --latency-ms, --monitor, --quick: 50 ms a batch)",
    )
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    if args.cluster:
        latency = 50 if args.quick and "--latency-ms" not in (argv or sys.argv) else args.latency_ms
        return demo_cluster.run(args.records, latency, args.monitor)
    if args.monitor:
        same = ["--records", str(args.records), "--latency-ms", str(args.latency_ms), "--response", args.response]
        os.execv(sys.executable, [sys.executable, "-m", "monitor", "--demo", *same])
    console = Console() if sys.stdout.isatty() else Console(width=120, soft_wrap=True)  # tables at 120, text unwrapped
    started = time.monotonic()
    console.print(
        f"[bold]syncbed demo[/]: {len(SEED_ACTS)} acts, {args.records:,} records each (batches of 1,000, "
        f"{args.latency_ms} ms each), every act starting just after a window edge; the server answers in the "
        f"{args.response} response style"
    )
    pause = 0.2 if args.quick else 1.0
    with Demo(records=args.records, latency_ms=args.latency_ms, pause=pause, response=args.response) as demo:
        total = len(demo.acts)
        demo.on_act = lambda i, act: console.print(f"\n[bold]{title(i, act, total)}[/]  [dim]{act.caption}[/]")
        demo.on_change = lambda ch: console.print(f"  [yellow]admin API: {ch.says}[/]")
        demo.on_outcome = lambda o: console.print(f"  {figures(o)}")
        try:
            demo.start_clients()
            while not demo.wait_clients(0.2):
                pass
        except KeyboardInterrupt:
            console.print("\ninterrupted: every server and client this demo started has been stopped")
            return 130
        outcomes = list(demo.outcomes)
        want = sum(o.records for o in outcomes)
        count = demo.count()
    console.print()
    render(console, outcomes)
    exact = count == want
    console.print(f"server count: {count:,}/{want:,} records" + (" - exact" if exact else " - MISMATCH"))
    complete = len(outcomes) == len(SEED_ACTS) and all(o.status == "complete" for o in outcomes)
    console.print("\n[bold]summary[/]")
    for line in summary(outcomes, exact):
        console.print(f"  {line}")
    console.print(f"[dim]demo finished in {time.monotonic() - started:.0f} s[/]")
    honest = not any(o.beats_bound for o in outcomes)
    return 0 if complete and exact and honest else 1


if __name__ == "__main__":
    sys.exit(main())
