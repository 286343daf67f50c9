"""`scripts/bench [ingest|limiter|events|sync|monitor|cluster|all] [--quick]`: run benchmarks, print and record them."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import inspect
import os
import platform
import re
import sys
import time
from pathlib import Path

NAMES = ("ingest", "limiter", "events", "sync", "monitor", "cluster")
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Measured by `scripts/bench`, never by unit tests: these machines are shared and noisy, so each
benchmark runs ours and its reference side by side in one run and reports the ratio. Each section
below says which command made it, when, and on how many cores.
"""


def run_one(name: str, quick: bool) -> str:
    module = importlib.import_module(f"bench.{name}")
    result = module.main(quick)
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    return str(result)


def record(name: str, section: str, command: str, seconds: float) -> None:
    """Replace (or append) this benchmark's section in docs/benchmarks.md."""
    stamp = (
        f"<!-- bench:{name} -->\n{section.strip()}\n\n"
        f"_Command: `{command}`; {dt.date.today().isoformat()}; {os.cpu_count()} cores; "
        f"Python {platform.python_version()}; took {seconds:.0f} s._\n<!-- /bench:{name} -->"
    )
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: stamp, text) if pattern.search(text) else text.rstrip() + "\n\n" + stamp + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    p.add_argument("names", nargs="*", default=["all"], help=f"any of {', '.join(NAMES)}, or all (default)")
    p.add_argument("--quick", action="store_true", help="a short version of each (minutes, not tens of minutes)")
    p.add_argument("--no-write", action="store_true", help=f"print only; do not update {DOC.name}")
    args = p.parse_args(argv)
    names = list(NAMES) if "all" in args.names else args.names
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)} (choose from {', '.join(NAMES)} or all)")
    failed = 0
    for name in names:
        print(f"==> bench {name}{' (quick)' if args.quick else ''}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            section = run_one(name, args.quick)
        except Exception as exc:  # a broken benchmark must not hide the others' figures
            print(f"bench {name} failed: {exc!r}", file=sys.stderr)
            failed += 1
            continue
        print(section, flush=True)
        if not args.no_write:
            ran = "all" if "all" in args.names else name
            command = f"scripts/bench {ran}{' --quick' if args.quick else ''}"
            record(name, section, command, time.perf_counter() - started)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
