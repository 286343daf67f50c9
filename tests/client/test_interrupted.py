"""A sync killed with kill -9 stays in the run history: the next sync marks it interrupted, `stats` lists it."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from tests.client.fakes import filled
from tests.client.test_cli import cli
from tests.client.test_crash import sync_process
from tests.conftest import ServerFactory

pytestmark = pytest.mark.slow

TOTAL = 20_000


async def test_a_killed_sync_is_listed_as_interrupted_with_its_partial_figures(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(args=["--no-limits", "--latency-ms", "150"])
    token = server.token("killed")
    db = tmp_path / "outbox.db"
    async with await filled(db, TOTAL):
        pass
    proc = sync_process(db, server.url, token)
    deadline = time.monotonic() + 120
    while server.count(token) < 10_000 and proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert proc.poll() is None, "the sync ended before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = server.count(token)
    assert at_kill < TOTAL

    rerun = sync_process(db, server.url, token, capture=True)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert json.loads(out)["status"] == "complete" and server.count(token) == TOTAL

    stats = json.loads(cli("stats", "--db", str(db), "--json").stdout)
    seen = [(run["status"], run["synced"]) for run in stats["recent"]]
    assert stats["runs"] == 2 and stats["interrupted"] == 1 and stats["complete"] == 1, seen
    last, killed = stats["recent"]
    assert last["status"] == "complete" and last["synced"] == TOTAL - killed["synced"]
    assert killed["status"] == "interrupted" and killed["records"] == TOTAL
    # What it had committed when it was killed: some batches, never more than the server had stored.
    assert 0 < killed["synced"] <= at_kill, killed
    assert 0 < killed["ok_batches"] < killed["batches"]
    assert killed["requests"] >= killed["ok_batches"] and killed["seconds"] > 0

    text = cli("stats", "--db", str(db)).stdout
    assert "1/2 complete, 1 interrupted" in text
    assert f"run {killed['run']}: interrupted, " in text and f"{killed['synced']:,}/{TOTAL:,} records" in text
