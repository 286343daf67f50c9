"""The README's demo command, in its quick mode, end to end: real servers, real clients, a real table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from syncbed.contract import SYNC_MODES

ROOT = Path(__file__).resolve().parent.parent


def test_quick_demo_prints_both_tables_exact_counts_and_a_measured_conclusion() -> None:
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
    assert "seed limits" in out and "wide limits" in out
    for mode in SYNC_MODES:
        # One row per mode in each table: name, status, then figures.
        assert len(re.findall(rf"│ {mode}\s+│ complete\s+│\s+\d+\.\d\d │", out)) == 2, out
    assert "8,000/8,000 and 8,000/8,000 records - exact" in out
    assert "At 5 syncs/s per user the limit sets the pace" in out
    assert "With limits that do not bind" in out
    # The conclusion quotes measured numbers, so it changes with them: it must contain figures.
    assert re.search(r"took \d+\.\d s", out)
    assert "Traceback" not in r.stderr
