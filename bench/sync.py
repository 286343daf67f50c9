"""`python -m bench.sync [--quick] [--styles a,b]`: the original plan's sync table per response style, bound beside.

Every client syncs N records (batches of 1,000) to a real `python -m server` with latency_ms=300,
under (a) limits too wide to bind and (b) the seed's limits, once per response style the server can
word its 429s in (limits.response), and each time is set beside the lower bound of docs/physics.md
for that client's concurrency. The reference is the original browser client, ported literally.
Then one 1,000,000-record run with limits off, watching both processes' memory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.common import syncbed_server
from bench.reference_client import GROUP
from bench.sync_million import million
from bench.sync_report import describe, render, summary, verdicts
from bench.sync_runs import (
    BLIND,
    CLIENTS,
    DEFAULT_STYLE,
    LATENCY,
    LATENCY_MS,
    MINIMAL,
    REPEATS,
    SETTINGS,
    Row,
    bodies,
    count,
    fill,
    make_template,
    median,
    run_minimal,
    run_ours,
    run_reference,
)
from client.manager import SyncManager
from client.outbox import Outbox
from client.scheduler import MODES
from server.refusals import STYLES
from syncbed.contract import RESPONSE_STYLES
from syncbed.gc_settle import settle

SIZES = (1_000, 10_000, 50_000, 100_000)
QUICK_SIZES = (1_000, 10_000)


def sizes_for(style: str, quick: bool) -> list[int]:
    """The syncbed style at every size (1,000 too, as always); the others from 10,000, and --quick at 10,000 only."""
    if style == DEFAULT_STYLE:
        return list(QUICK_SIZES if quick else SIZES)
    return [10_000] if quick else [n for n in SIZES if n >= 10_000]


def clients_for(style: str, key: str) -> list[str]:
    """The floor where nothing binds; "429s only" where limits bind and the style has fields to ignore."""
    if key == "a":
        return [*CLIENTS, *MINIMAL]
    return [*CLIENTS, BLIND] if STYLES[style].fields else list(CLIENTS)


async def run_setting(style: str, key: str, sizes: list[int], template: Path, work: Path) -> list[Row]:
    _, config, limit = SETTINGS[key]
    rows: list[Row] = []
    with syncbed_server("--latency-ms", str(LATENCY_MS), "--response", style, config=config) as server:
        # One client installation per mode, kept across sizes (it remembers the server's limits).
        clients = clients_for(style, key)
        outboxes = {
            c: await Outbox(work / f"{style}-{key}-{c.replace(' ', '').replace(',', '-')}.db").open()
            for c in clients
            if c not in ("reference", MINIMAL[1])
        }
        try:
            warm = server.token(f"{style}-{key}-warm-up")
            await fill(outboxes["adaptive"], template, 10)  # process warm-up: imports, first connections
            await SyncManager(server.url, warm, outboxes["adaptive"], remember_limits=False).sync()
            for n in sizes:
                batches = await bodies(template, n)
                runs: dict[str, list[Row]] = {client: [] for client in clients}
                for rep in range(REPEATS.get(n, 1)):  # clients take turns, so drift touches all alike
                    for client in clients:
                        token = server.token(f"{style}-{key}-{client}-{n}-{rep}")
                        row = await run_one(server.url, token, client, outboxes, batches, template, n, key, limit)
                        row.style, row.stored = style, await count(server.url, token)
                        if not row.counted:
                            print(f"  {style} {client} {n}: server holds {row.stored} of the {row.acknowledged} "
                                  "it acknowledged", file=sys.stderr)  # fmt: skip
                        lost = "" if row.complete else f" delivered {row.ok}/{row.batches}"
                        print(f"  {style} {key} {n:>7} {client:<12} {row.seconds:7.2f}s x{row.ratio:.3f} "
                              f"429s {row.throttled}{lost}", file=sys.stderr, flush=True)  # fmt: skip
                        runs[client].append(row)
                rows += [median(runs[client]) for client in clients]
        finally:
            for outbox in outboxes.values():
                await outbox.close()
    return rows


async def run_one(
    url: str,
    token: str,
    client: str,
    outboxes: dict[str, Outbox],
    batches: list[bytes],
    template: Path,
    n: int,
    key: str,
    limit: int,
) -> Row:
    """One run of `client`, its records put where it reads them from."""
    if client == "reference":
        return await run_reference(url, token, batches, n, key, limit)
    if client == MINIMAL[1]:
        return await run_minimal(url, token, client, batches, n, key, limit)
    outbox = outboxes[client]
    if client == MINIMAL[0]:
        await outbox.db.execute("DELETE FROM outbox")  # it never acknowledges: start afresh
        await fill(outbox, template, n)
        return await run_minimal(url, token, client, outbox.path, n, key, limit)
    await outbox.db.execute("DELETE FROM outbox")  # a run that lost batches keeps them: every run sends n
    await fill(outbox, template, n)
    return await run_ours(url, token, outbox, client, n, key, limit)


async def measure(quick: bool, styles: Sequence[str], work: Path) -> list[Row]:
    template = work / "template.db"
    make_template(template, max(max(sizes_for(s, quick)) for s in styles))
    rows: list[Row] = []
    for style in styles:
        for key in SETTINGS:
            rows += await run_setting(style, key, sizes_for(style, quick), template, work)
    return rows


def prose(quick: bool) -> str:
    modes = ", ".join(f"{m} {c}" for m, c in MODES.items())
    other = "10,000" if quick else "10,000, 50,000 and 100,000"
    return (
        f"A real `python -m server` with `latency_ms={LATENCY_MS}`; batches of 1,000; each run starts just after "
        "a rate-limit window opens, with a fresh user. Syncs of "
        + " and ".join(f"{n:,}" for n in REPEATS)
        + f" records run {max(REPEATS.values())} times per client, the clients taking turns, and the table shows "
        "each client's median run: one run of a third of a second varies by several percent on this machine, "
        "whoever the client (a 429s cell says `worst run` when another repeat met more). Time runs from "
        "`SyncManager.sync()` to the last acknowledgement (reference: first request to last answer). The bound "
        "is [physics.md](physics.md)'s, phase-aware: `syncbed/physics.earliest_finish`, the earliest schedule of "
        f"the batches delivered, L = {LATENCY} s each, at the client's concurrency C ({modes}, the reference "
        f"{GROUP}; adaptive: the most it had in flight) under sync/user and sync/ip as the run found them, "
        "`phase` seconds into their 1 s windows (the run's start instant mod 1 s: the server's windows are "
        "aligned to the epoch). A run that starts late in a window has its second quota sooner, and its bound "
        "says so: a time below its bound would be a bug, not a fast client. A run that lost batches has them in "
        "bold, and its bound is of what it delivered. "
        "The reference is the original plan's browser client ported literally "
        "(`bench/reference_client.py`): groups of 5 awaited together, each 429 sleeping its own `retry_after` "
        "(one second when the body has none); a 429 whose body is not JSON throws in its `response.json()` and "
        "ends its sync. It sends through the same HTTP client as ours (`client/transport.py`), so the two differ "
        f"in logic only. The minimal client (`bench/minimal_client.py`, under (a) only) is the floor for "
        f"{MODES['aggressive']} in flight: raw sockets opened before the clock, one write and one read per batch, "
        "no retries, no bookkeeping, the bodies read from the same outbox as ours (`outbox`) or held in memory "
        "(`memory`). Between the bound and it lie the machine and the server; between it and ours, our own work. "
        f'"{BLIND}" is adaptive with the `RateLimit` fields ignored, run only where the style sends them. '
        f"Every response style of the server (`--response STYLE`) has its own tables, the `{DEFAULT_STYLE}` style "
        f"from 1,000 records, the others at {other}. The first table sets adaptive under the seed's limits in each "
        f'style beside "{BLIND}" in the `{DEFAULT_STYLE}` style, as this run measured it and as the last run '
        "recorded before adaptive learnt windows from refusals found it: what finding the limits from 429s alone "
        "cost. Each style's targets draw the same comparison, judged against this run's figures where it has them."
    )


def main(quick: bool, styles: Sequence[str] = RESPONSE_STYLES) -> str:
    settle()  # as `python -m client` does: no full collections of the import-time heap mid-run
    styles = [s for s in RESPONSE_STYLES if s in styles]
    with tempfile.TemporaryDirectory(prefix="syncbed-bench-sync-") as tmp:
        work = Path(tmp)
        rows = asyncio.run(measure(quick, styles, work))
        big = 100_000 if quick else 1_000_000
        memory = million(big, work)
    parts = ["## Sync: every client against the physical bound, in every response style", "", prose(quick), ""]
    parts += ["### Adaptive under the seed's limits, in every response style", "", summary(rows), ""]
    for style in styles:
        parts += [f"### Style `{style}`: {describe(style)}", ""]
        for key, (title, _, _) in SETTINGS.items():
            parts += [f"#### {title}", "", render(rows, key, style), ""]
        parts += [f"#### Targets (`{style}`)", "", *verdicts(rows, style), ""]
    parts += [f"### {big:,} records, limits off, no added latency (adaptive, CLI in a subprocess)", "", memory, ""]
    return "\n".join(parts)


def parse_styles(text: str) -> list[str]:
    styles = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in styles if s not in RESPONSE_STYLES]
    if unknown or not styles:
        raise argparse.ArgumentTypeError(
            f"unknown style(s) {', '.join(unknown)}: choose from {','.join(RESPONSE_STYLES)}"
        )
    return styles


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="syncbed at 1k and 10k, other styles at 10k, and 100k instead of 1M"
    )
    parser.add_argument(
        "--styles", type=parse_styles, default=list(RESPONSE_STYLES), help="comma-separated styles (default: all)"
    )
    args = parser.parse_args()
    print(main(args.quick, args.styles))
