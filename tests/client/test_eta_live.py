"""The client's ETA against a real server: `python -m client sync --json`'s progress lines, checked at
10/25/50/75/90% against the time that was really left (the run's finish minus that moment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.client.fakes import filled
from tests.conftest import ROOT, ServerFactory
from tests.server.helpers import throttle

MARKS = (0.10, 0.25, 0.50, 0.75, 0.90)
TOLERANCE = 0.10
# Wide: nothing binds but adaptive's 16 in flight at 1 s each (16/s against 50/s per user).
WIDE = throttle("req/ip", 1_000_000, "5m") + throttle("sync/ip", 100, "1s", sync=True)
WIDE += throttle("sync/user", 50, "1s", key="user", sync=True)


@dataclass(frozen=True)
class Condition:
    name: str
    args: tuple[str, ...]
    records: int
    batch_size: int
    config: str | None = None
    # What one 503 costs that the ETA could only know as a share (which batch fails is luck): its resend
    # waits for the next window (1 s) and takes its service time.
    per_failure: float = 0.0


CONDITIONS = [
    # 50 batches at the seed's 5/s per user: about 9.3 s.
    Condition("seed", ("--latency-ms", "300"), 10_000, 200),
    # 128 batches, 16 at a time, 1 s each: about 9 s.
    Condition("wide", ("--latency-ms", "1000"), 12_800, 100, WIDE),
    # The seed's limits with 10% of the attempts answered 503 (each a backoff and a resend): about 10-12 s.
    Condition("503s", ("--latency-ms", "300", "--error-rate", "0.1"), 10_000, 200, per_failure=1.3),
]


def sync_lines(db: Path, url: str, token: str, batch_size: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the real CLI; (its result, its progress lines)."""
    env = {**os.environ, "SYNCBED_TOKEN": token}
    args = ["sync", "--db", str(db), "--server", url, "--batch-size", str(batch_size), "--max-retries", "20"]
    command = [sys.executable, "-m", "client", *args, "--json"]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line)["progress"] for line in out.stderr.splitlines() if line.startswith('{"progress"')]
    return json.loads(out.stdout), lines


@dataclass(frozen=True)
class Mark:
    mark: float
    fraction: float  # reached at the first progress line at or past the mark
    eta: float  # what that line said
    left: float  # the time really left: the run's end minus that line's moment
    failures: int  # resends after that line

    def line(self) -> str:
        return (f"{self.mark:.0%} (at {self.fraction:.1%}): ETA {self.eta:.2f} s, left {self.left:.2f} s, "
                f"{self.eta / self.left - 1:+.1%}, {self.failures} failures after")  # fmt: skip


def at_marks(result: dict[str, Any], lines: list[dict[str, Any]]) -> list[Mark]:
    marks = []
    for mark in MARKS:
        p = next(p for p in lines if p["fraction"] >= mark)
        assert p["eta"] is not None, p
        left, failures = result["duration"] - p["elapsed"], result["retries"] - p["retries"]
        marks.append(Mark(mark, p["fraction"], p["eta"], left, failures))
    return marks


@pytest.mark.slow
@pytest.mark.parametrize("condition", CONDITIONS, ids=lambda c: c.name)
async def test_eta_is_within_ten_percent_of_the_time_left(
    server_factory: ServerFactory, tmp_path: Path, condition: Condition
) -> None:
    server = server_factory(config=condition.config, args=condition.args)
    token = server.token(f"eta-{condition.name}")
    db = tmp_path / "outbox.db"
    await (await filled(db, condition.records)).close()
    result, lines = sync_lines(db, server.url, token, condition.batch_size)
    assert result["complete"] and server.count(token) == condition.records
    assert lines[-1]["fraction"] == 1.0 and lines[-1]["eta"] == 0
    marks = at_marks(result, lines)
    report = [f"{condition.name}: {result['duration']:.2f} s, {result['requests']} requests, "
              f"{result['throttled']} 429s, {result['retries']} retries"]  # fmt: skip
    report += [f"  {m.line()}" for m in marks]
    print("\n".join(report))
    for m in marks:
        luck = condition.per_failure * max(1, m.failures) if condition.per_failure else 0.0
        assert abs(m.eta - m.left) <= TOLERANCE * m.left + luck, report
