"""`python -m harness.demo_act`: one act of the demo, one client, started at a chosen phase of the window.

The client runs in this process (ours from its own outbox, or the plan's client from memory), after
the set-up and the imports, so it starts at the phase asked for: `time.time() % period` just past
it. Two JSON lines go to stdout: `{"event": "start", "at": T}` when the run is about to start, then
the result (`started_at`, `duration`, `requests`, `throttled`, ...). The token is `$SYNCBED_TOKEN`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.reference_client import GROUP, ReferenceSyncManager
from client import generate
from client.manager import SyncManager
from client.outbox import Outbox
from syncbed.contract import DEFAULT_BATCH_RECORDS, SYNC_MODES, SyncRequest

REFERENCE = "reference"
CLIENTS = (*SYNC_MODES, REFERENCE)
SEED = 2024  # the same records in every act: each act syncs as its own user


def next_phase(now: float, period: float, phase: float) -> float:
    """The first time after `now` (by a margin for the set-up) that is `phase` of the way into a window."""
    at = math.floor(now / period) * period + phase * period
    return at if at > now + 0.05 else at + period


async def at_phase(period: float, phase: float) -> float:
    """Sleep until the next time the window is at `phase`; return that time."""
    at = next_phase(time.time(), period, phase)
    await asyncio.sleep(at - time.time())
    return at


def announce(at: float) -> None:
    sys.stdout.write(json.dumps({"event": "start", "at": at}) + "\n")
    sys.stdout.flush()


async def run_ours(args: argparse.Namespace, token: str) -> dict[str, Any]:
    async with Outbox(args.db) as outbox:
        for chunk in generate.encoded(generate.visits(args.records, SEED)):
            await outbox.put(chunk)
        manager = SyncManager(args.server, token, outbox, mode=args.client)
        announce(await at_phase(args.period, args.phase))
        result = await manager.sync()
    return {"client": args.client, **result.to_json()}


async def run_reference(args: argparse.Namespace, token: str) -> dict[str, Any]:
    records = list(generate.visits(args.records, SEED))
    size = DEFAULT_BATCH_RECORDS
    bodies = [msgspec.json.encode(SyncRequest(records[i : i + size])) for i in range(0, len(records), size)]
    run = f"ref-{int(time.time())}-{secrets.token_hex(4)}"
    async with ReferenceSyncManager(args.server, token, run=run) as reference:
        announce(await at_phase(args.period, args.phase))
        # Announced beside the first group, as our client does: the monitor's clock starts with the run's.
        announcing = asyncio.create_task(reference.announce(len(bodies), size))
        result = await reference.sync_batches_concurrent(bodies, GROUP)
        await announcing
        await reference.finish(result)
    return {
        "client": REFERENCE,
        "mode": REFERENCE,
        "run": run,
        "status": result.status,
        "concurrency": GROUP,
        "total_records": args.records,
        "total_batches": result.batches,
        "ok_batches": result.ok_batches,
        "synced_records": min(args.records, result.ok_batches * size),
        "requests": result.requests,
        "throttled": result.throttled,
        "duration": result.duration,
        "started_at": result.started_at,
        "errors": result.errors,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.demo_act", description=__doc__)
    parser.add_argument("--server", required=True, help="server URL")
    parser.add_argument("--client", choices=CLIENTS, required=True, help="a sync mode, or the plan's client")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--db", type=Path, help="the outbox to fill and sync (our modes)")
    parser.add_argument("--period", type=float, default=1.0, help="the window whose phase the run starts at")
    parser.add_argument("--phase", type=float, default=0.02, help="how far into the window, 0 <= phase < 1")
    args = parser.parse_args(argv)
    if not 0 <= args.phase < 1 or not args.period > 0:
        parser.error("needs 0 <= --phase < 1 and --period > 0")
    if args.client != REFERENCE and args.db is None:
        parser.error(f"--client {args.client} needs --db")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = os.environ.get("SYNCBED_TOKEN", "")
    if not token:
        print("python -m harness.demo_act: error: set SYNCBED_TOKEN", file=sys.stderr)
        return 2
    run = run_reference if args.client == REFERENCE else run_ours
    result = asyncio.run(run(args, token))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if result["status"] == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
