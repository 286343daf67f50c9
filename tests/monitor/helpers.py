"""Shared bits of the monitor tests: fixture loading and a settable clock."""

from __future__ import annotations

from pathlib import Path

from syncbed.events import Event, decode_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEMO = FIXTURES / "events_demo.jsonl"
MIDRUN = FIXTURES / "events_midrun.jsonl"


def load(path: Path) -> list[Event]:
    """A fixture's events; every line must be one of ours (the file is written from the structs)."""
    return [decode_event(line) for line in path.read_bytes().splitlines() if line.strip()]


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


SEED_AGGRESSIVE = FIXTURES / "events_seed_aggressive.jsonl"  # recorded: python -m tests.monitor.record_runs
SEED_FAULTS = FIXTURES / "events_seed_faults.jsonl"
DEMO_ACTS = FIXTURES / "events_demo_acts.jsonl"  # the demo's six acts: python -m tests.monitor.record_runs demo
