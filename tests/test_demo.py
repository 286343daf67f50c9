"""The README's demo command, in its quick mode, end to end: real server, real clients, each act telling its story."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from harness.demo_acts import SEED_ACTS

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(
    r"│ (?P<n>\d)\. (?P<act>[\w' ]+?)\s+│ (?P<client>\w+)\s+│ (?P<status>\w+)\s+│\s+(?P<time>\d+\.\d\d) │"
    r"\s+(?P<t429>\d+) │\s+(?P<requests>\d+) │\s+(?P<batches>\d+) │\s+(?P<bound>\d+\.\d\d) │\s+(?P<ratio>\d+\.\d\d)x │"
)


def test_quick_demo_plays_every_act_as_its_story_says_and_ends_with_a_summary() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "harness.demo", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "Traceback" not in r.stderr
    rows = {m["act"]: m for m in ROW.finditer(out)}
    assert list(rows) == [act.name for act in SEED_ACTS], out
    assert all(m["status"] == "complete" for m in rows.values()), out
    seconds = {name: float(m["time"]) for name, m in rows.items()}
    t429 = {name: int(m["t429"]) for name, m in rows.items()}
    # Sequential is the slowest of the plain acts; the plan's client and aggressive draw 429s; adaptive none.
    assert seconds["sequential"] == max(v for k, v in seconds.items() if k != "faults live"), out
    assert t429["sequential"] == 0 and t429["plan's client"] > 0 and t429["aggressive"] > 0, out
    assert t429["adaptive"] == 0 and t429["conservative"] == 0, out
    for name, m in rows.items():
        # A 429 is a request beyond the batch's own; the plan's client and ours alike.
        assert int(m["requests"]) >= int(m["batches"]) + (t429[name] if name != "faults live" else 0), m.group(0)
        assert float(m["ratio"]) >= 0.99, m.group(0)  # no act beats its phase-aware bound
    # The live change was made, and said so, while the last act ran.
    assert "admin API: error_rate 0.25, sync/user 3/1s" in out
    assert "server count: 70,000/70,000 records - exact" in out
    summary = out.split("\nsummary\n", 1)[1]
    assert "No act beat its phase-aware bound" in summary and "BUG" not in summary
    assert "nothing lost, nothing doubled" in summary
    assert re.search(r"demo finished in \d+ s", out)
