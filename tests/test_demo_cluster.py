"""`scripts/demo --cluster --quick` end to end: real workers, Redis, PostgreSQL and a client alternating hosts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_postgres, require_redis

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"│ (?P<host>\d)\s+│ (?P<worker>\d)\s+│ \S+\s+│\s+(?P<requests>\d+) │\s+(?P<ok>\d+) │")


def test_quick_cluster_demo_counts_exactly_and_every_worker_serves() -> None:
    require_redis()
    require_postgres()
    r = subprocess.run(
        [sys.executable, "-m", "harness.demo", "--cluster", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "120"},
    )
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "Traceback" not in r.stderr
    assert "cluster count: 10,000/10,000 records - exact" in out, out
    rows = [m for m in ROW.finditer(out)]
    assert [(m["host"], m["worker"]) for m in rows] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")], out
    assert all(int(m["ok"]) > 0 for m in rows), out
