"""Exporting a run: its events as JSON Lines (replayable) and its attempts as CSV."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

from monitor.rows import DETAIL_COLUMNS, TIME_COLUMNS, model_rows
from monitor.runs import Run
from syncbed.events import Event, encode_event
from syncbed.paths import private_dir, private_file

EXPORTS_DIR = "exports"  # under the data directory, unless --export-dir says otherwise


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:64] or "run"


def export_run(run: Run, directory: Path, context: Iterable[Event] = ()) -> tuple[Path, Path]:
    """Write run-<id>.jsonl and run-<id>-batches.csv into `directory`; returns both paths.

    `context`: events that explain the run without belonging to it (config.changed, stats,
    limiter.store), written in time order among the run's own, so a replay shows what the live view did.
    """
    private_dir(directory)
    stem = f"run-{_safe(run.run)}"
    # An export names users and runs: created 0600 like every file syncbed writes, then filled.
    events_path = private_file(directory / f"{stem}.jsonl")
    batches_path = private_file(directory / f"{stem}-batches.csv")
    with events_path.open("wb") as fh:
        for event in sorted([*context, *run.events], key=lambda e: e.ts):
            fh.write(encode_event(event) + b"\n")
    with batches_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*DETAIL_COLUMNS, *TIME_COLUMNS], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(model_rows(run, times=True))
    return events_path, batches_path
