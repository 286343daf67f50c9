"""`python -m client`: fill the outbox, sync it, and show how past syncs went."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
from rich.console import Console

from client import generate as gen
from client.manager import SyncManager
from client.outbox import Outbox, OutboxBusy
from client.progress import JsonProgress, LiveProgress, PlainProgress, summary
from client.result import SyncResult
from client.scheduler import ADAPTIVE, ADAPTIVE_CAP, MODES
from client.stats import render, summarize
from client.transport import servers_of
from syncbed.cli import fill_defaults, shared_options
from syncbed.contract import DEFAULT_BATCH_RECORDS, SYNC_MODES, PageVisit, explain_patterns
from syncbed.gc_settle import settle
from syncbed.paths import CLIENT_DB_FILE, default_data_dir
from syncbed.wire import server_url_problem

DEFAULT_SERVER = "http://127.0.0.1:3001"
TOKEN_ENV = "SYNCBED_TOKEN"
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2

_MODES_HELP = (
    f"sequential ({MODES['sequential']} in flight, the rollback), conservative ({MODES['conservative']}), "
    f"aggressive ({MODES['aggressive']}), or adaptive (default: paces sends from the server's RateLimit "
    f"fields, or finds the rate from 429s; up to {ADAPTIVE_CAP} in flight)"
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _server_urls(text: str) -> list[str]:
    """One URL, or a cluster's workers comma-separated."""
    try:
        urls = servers_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    for url in urls:
        if (problem := server_url_problem(url)) is not None:
            raise argparse.ArgumentTypeError(problem)
    return urls


def build_parser() -> argparse.ArgumentParser:
    # -v and --db go before or after the command: the top level and each command share one parent
    # whose defaults are SUPPRESS (syncbed/cli.py); main() fills in the defaults afterwards.
    db = shared_options()
    db.add_argument("-v", "--verbose", action="store_true", help="log every retry to stderr")
    db.add_argument("--db", type=Path, help=f"the outbox database (default: {default_db()})")
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="The syncbed sync client: a crash-safe outbox of page visits, synced in concurrent batches.",
        epilog="Records leave the outbox only when the server acknowledged their batch, so an interrupted "
        "or partial sync loses nothing: run `sync` again and it sends only what is left.",
        parents=[db],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", parents=[db], help="add N realistic synthetic page visits to the outbox")
    p.add_argument("count", type=_count, metavar="N", help="how many records")
    p.add_argument(
        "--user-seed",
        type=int,
        default=None,
        help="seed of the synthetic user: the same seed gives the same records and ids (default: random)",
    )

    p = sub.add_parser("import", parents=[db], help="add the records of a JSON Lines file (one PageVisit a line)")
    p.add_argument("file", type=Path, metavar="FILE.jsonl")
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip records that do not match the schema (default: add nothing if any line is invalid)",
    )

    p = sub.add_parser("sync", parents=[db], help="send everything in the outbox to the server")
    p.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        type=_server_urls,
        help="server URL, or a cluster's workers comma-separated: each attempt of a batch goes to the next "
        "(default: %(default)s)",
    )
    p.add_argument("--token", default=None, help=f"bearer token (default: ${TOKEN_ENV})")
    p.add_argument("--mode", choices=SYNC_MODES, default=ADAPTIVE, help=_MODES_HELP)
    p.add_argument(
        "--concurrency",
        type=_positive,
        default=None,
        help="requests in flight (fixed modes), or adaptive's ceiling; overrides the mode's number",
    )
    p.add_argument(
        "--batch-size", type=_positive, default=DEFAULT_BATCH_RECORDS, help="records per batch (default: %(default)s)"
    )
    p.add_argument(
        "--max-retries",
        type=_count,
        default=8,
        help="resends after a 503, timeout or network error before a batch fails; 429s do not count "
        "(default: %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")
    p.add_argument(
        "--ignore-ratelimit-fields",
        action="store_true",
        help="do not pace from the RateLimit / RateLimit-Policy fields (adaptive then learns from 429s alone)",
    )
    p.add_argument("--json", action="store_true", help="one JSON result on stdout, JSON progress lines on stderr")

    p = sub.add_parser("stats", parents=[db], help="last and average duration, records, 429s and retries")
    p.add_argument("--last", type=_positive, default=10, help="how many recent runs to average (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return parser


async def _generate(args: argparse.Namespace, out: Console) -> int:
    seed = args.user_seed if args.user_seed is not None else gen.new_seed()
    added = 0
    async with Outbox(args.db) as outbox:
        for chunk in gen.encoded(gen.visits(args.count, seed)):
            added += await outbox.put(chunk)
        pending, _ = await outbox.pending()
    out.print(f"Generated {added:,} page visits (user seed {seed}); {pending:,} records wait in {args.db}.")
    return 0


def _read_jsonl(path: Path, skip_invalid: bool, errors: list[str]) -> Iterator[list[tuple[str, bytes]]]:
    decoder = msgspec.json.Decoder(PageVisit)
    encoder = msgspec.json.Encoder()
    chunk: list[tuple[str, bytes]] = []
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = decoder.decode(line)
                if problem := explain_patterns(record):
                    raise msgspec.ValidationError(problem)
            except msgspec.DecodeError as exc:
                errors.append(f"line {number}: {exc}")
                if not skip_invalid:
                    return
                continue
            chunk.append((record.id, encoder.encode(record)))
            if len(chunk) >= 10_000:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


async def _import(args: argparse.Namespace, out: Console, err: Console) -> int:
    errors: list[str] = []
    if not args.skip_invalid:
        # Validate the whole file first, so an invalid line adds nothing at all.
        for _ in _read_jsonl(args.file, False, errors):
            pass
        if errors:
            err.print(f"{args.file}: {errors[0]}; nothing imported (use --skip-invalid to skip bad lines)")
            return EXIT_INCOMPLETE
    added = 0
    async with Outbox(args.db) as outbox:
        for chunk in _read_jsonl(args.file, args.skip_invalid, errors):
            added += await outbox.put(chunk)
        pending, _ = await outbox.pending()
    for line in errors[:20]:
        err.print(f"skipped {line}")
    out.print(f"Imported {added:,} records ({len(errors)} invalid skipped); {pending:,} records wait in {args.db}.")
    return 0


async def _sync(args: argparse.Namespace, out: Console, err: Console) -> int:
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        err.print(f"No token: pass --token or set {TOKEN_ENV} (`python -m server token create USER` prints one).")
        return EXIT_USAGE
    async with Outbox(args.db) as outbox:
        manager = SyncManager(
            args.server,
            token,
            outbox,
            mode=args.mode,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            max_retries=args.max_retries,
            timeout=args.timeout,
            use_ratelimit_fields=not args.ignore_ratelimit_fields,
        )
        result: SyncResult
        if args.json:
            manager.on_progress = JsonProgress(sys.stderr)
            result = await manager.sync()
        else:
            with LiveProgress(out) if out.is_terminal else PlainProgress(out) as live:
                manager.on_progress = live
                result = await manager.sync()
    if args.json:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
    else:
        for line in summary(result):
            out.print(line)
    return 0 if result.complete else EXIT_INCOMPLETE


async def _stats(args: argparse.Namespace, out: Console) -> int:
    async with Outbox(args.db) as outbox:
        runs = await outbox.recent_runs(args.last)
        pending, _ = await outbox.pending()
    stats = summarize(runs)
    if args.json:
        payload = {
            "pending": pending,
            "runs": stats.runs,
            "last": stats.last,
            "average": {
                "seconds": stats.avg_seconds,
                "records": stats.avg_records,
                "throttled": stats.avg_throttled,
                "retries": stats.avg_retries,
            },
            "complete": stats.complete,
            "interrupted": stats.interrupted,
            "recent": runs,
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        for line in render(stats, pending):
            out.print(line)
    return 0


def consoles() -> tuple[Console, Console]:
    """(stdout, stderr) for plain lines: never wrapped, and paths and messages printed as they are.

    rich wraps at 80 columns when the stream is not a terminal (a pipe, a file), cutting a message
    mid-word; and its markup, emoji codes and highlighting would rewrite `[x]` or `:smile:` in a path.
    """

    def plain(stderr: bool) -> Console:
        return Console(stderr=stderr, soft_wrap=True, markup=False, emoji=False, highlight=False)

    return plain(False), plain(True)


async def run(args: argparse.Namespace) -> int:
    out, err = consoles()
    try:
        if args.command == "generate":
            return await _generate(args, out)
        if args.command == "import":
            return await _import(args, out, err)
        if args.command == "sync":
            return await _sync(args, out, err)
        return await _stats(args, out)
    except OutboxBusy as exc:
        err.print(str(exc))
        return EXIT_INCOMPLETE
    except OSError as exc:
        err.print(f"error: {exc}")
        return EXIT_INCOMPLETE


def default_db() -> Path:
    return default_data_dir() / CLIENT_DB_FILE


def main(argv: list[str] | None = None) -> int:
    args = fill_defaults(build_parser().parse_args(argv), verbose=False, db=default_db())
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    settle()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("Interrupted; acknowledged batches are out of the outbox, the rest is kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
