"""Live progress (rich) and the end-of-run summary lines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, SpinnerColumn, TaskID, TextColumn
from rich.progress import Progress as RichProgress

from client.result import Progress, SyncResult

MAX_LISTED_FAILURES = 20


def clock(seconds: float | None) -> str:
    """0:01:05 style, or -:--:-- when unknown."""
    if seconds is None:
        return "-:--:--"
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def status_line(p: Progress) -> str:
    return (
        f"{p.records_done:,}/{p.records_total:,} records · "
        f"{p.batches_done}/{p.batches_total} batches · "
        f"{p.rate:,.0f} rec/s · ETA {clock(p.eta)} · "
        f"in flight {p.in_flight} · 429s {p.throttled} · retries {p.retries}"
        + (f" · failed {p.batches_failed}" if p.batches_failed else "")
    )


class LiveProgress:
    """A rich progress bar fed by `SyncManager.on_progress`; redrawn a few times a second."""

    def __init__(self, console: Console) -> None:
        self._bar = RichProgress(
            SpinnerColumn(),
            TextColumn("[bold]sync[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[line]}"),
            console=console,
            refresh_per_second=8,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self._bar.__enter__()
        self._task = self._bar.add_task("sync", total=None, line="starting")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.__exit__(kind, exc, tb)

    def __call__(self, p: Progress) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=p.records_done, total=p.records_total or 1, line=status_line(p))


class PlainProgress:
    """Progress for a pipe or a file: a plain status line at most every `every` seconds, never redrawn.

    A live bar written to a non-terminal is one cropped line at the end; a log read with `tail -f`
    wants whole lines while the sync runs, and a short sync wants none at all.
    """

    def __init__(self, console: Console, every: float = 5.0, now: Callable[[], float] = time.monotonic) -> None:
        self._console, self._every, self._now = console, every, now
        self._last = now()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def __call__(self, p: Progress) -> None:
        if self._now() - self._last >= self._every:
            self._last = self._now()
            self._console.print(status_line(p), highlight=False, markup=False, soft_wrap=True)


class JsonProgress:
    """`sync --json`'s progress: one JSON object a line on `stream` (stderr), the result stays alone on stdout.

    Each line is a `Progress` (its `eta`, `bound` and `pace` included): one for every batch answered, and
    for a 429 or a retry at most every `every` seconds.
    """

    def __init__(self, stream: TextIO, every: float = 0.1, now: Callable[[], float] = time.monotonic) -> None:
        self._stream, self._every, self._now = stream, every, now
        self._last = -float("inf")
        self._seen: tuple[int, ...] = ()

    def __enter__(self) -> JsonProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def __call__(self, p: Progress) -> None:
        answered = (p.batches_done, p.batches_failed, p.records_done)
        state = (*answered, p.throttled, p.retries)
        if state == self._seen or (answered == self._seen[:3] and self._now() - self._last < self._every):
            return
        self._last, self._seen = self._now(), state
        line = {"progress": {**asdict(p), "fraction": p.fraction}}
        self._stream.write(json.dumps(line) + "\n")
        self._stream.flush()


def summary(result: SyncResult) -> list[str]:
    """The closing lines: headline, each failed batch and why, and how to retry."""
    r = result
    done = f"({r.ok_batches}/{r.total_batches} batches)"
    rate = r.synced_records / r.duration if r.duration > 0 else 0.0
    met = f" ({r.limits_met})" if r.throttled_by else ""
    figures = (
        f"{r.synced_records:,} records in {r.duration:.2f}s ({rate:,.0f} rec/s), "
        f"{r.requests} requests, {r.throttled} 429s{met}, {r.retries} retries, run {r.run}"
    )
    if r.complete:
        if r.total_batches == 0:
            return [f"Sync complete {done}: nothing to sync, the outbox is empty."]
        return [f"Sync complete {done}: {figures}"]
    lines = [f"Sync partially complete {done}: {figures}"]
    failed = sorted(r.failed, key=lambda f: f.batch)
    for f in failed[:MAX_LISTED_FAILURES]:
        lines.append(f"  batch {f.batch} ({f.records:,} records, {f.attempts} attempts): {f.reason}")
    if len(failed) > MAX_LISTED_FAILURES:
        lines.append(f"  … and {len(failed) - MAX_LISTED_FAILURES} more failed batches")
    lines.append(
        "Their records stay in the outbox: fix the cause and run `python -m client sync` again; "
        "it sends only what is left."
    )
    return lines
