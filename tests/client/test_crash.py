"""Crash safety: kill -9 the client, or the server, in the middle of a 100,000-record sync."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from client.manager import SyncManager
from client.outbox import Outbox
from tests.client.fakes import filled
from tests.conftest import ROOT, ServerFactory

pytestmark = pytest.mark.slow

TOTAL = 100_000


def count(url: str, token: str) -> int:
    r = httpx.get(url + "/api/v1/data/count", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    return int(r.json()["count"])


def sync_process(db: Path, url: str, token: str, capture: bool = False) -> subprocess.Popen[str]:
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "client", "sync", "--db", str(db), "--server", url, "--mode", "conservative", "--json"],
        cwd=ROOT,
        env={**os.environ, "SYNCBED_TOKEN": token},
        stdout=out,
        stderr=out,
        text=True,
    )


async def test_kill_9_the_client_at_random_moments(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(args=["--no-limits", "--latency-ms", "150"])
    token = server.token("crashy")
    db = tmp_path / "outbox.db"
    async with await filled(db, TOTAL):
        pass
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    kills = []
    for round_no in range(3):
        before = count(server.url, token)
        # Kill once the server holds a random share more of what is left (the first kill may land
        # before any batch was acknowledged, during start-up).
        target = before if round_no == 0 else before + int(rng.uniform(0.1, 0.5) * (TOTAL - before))
        proc = sync_process(db, server.url, token)
        deadline = time.monotonic() + 120
        while count(server.url, token) < target and proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if round_no == 0:
            await asyncio.sleep(rng.uniform(0.2, 0.8))
        assert proc.poll() is None, f"the sync ended before the kill (seed {seed})"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(count(server.url, token))
    assert kills[-1] < TOTAL, f"every kill landed after the end (seed {seed})"

    final = sync_process(db, server.url, token, capture=True)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "complete"
    assert count(server.url, token) == TOTAL, f"seed {seed}, counts at the kills {kills}"
    async with Outbox(db) as outbox:
        assert await outbox.pending() == (0, 0)


async def test_kill_9_the_server_mid_sync_and_restart_it(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(args=["--no-limits", "--latency-ms", "100"])
    token = server.token("survivor")
    auth = {"Authorization": f"Bearer {token}"}
    async with await filled(tmp_path / "outbox.db", TOTAL) as outbox, httpx.AsyncClient(headers=auth) as http:
        manager = SyncManager(server.url, token, outbox, mode="conservative", max_retries=12)
        task = asyncio.create_task(manager.sync())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = await http.get(server.url + "/api/v1/data/count")
            if r.json()["count"] >= 30_000:
                break
            await asyncio.sleep(0.02)
        server.kill()
        await asyncio.sleep(1.0)  # down for a while: in-flight batches fail, new ones back off
        assert not task.done()
        await asyncio.to_thread(server.start)
        result = await asyncio.wait_for(task, timeout=300)
        assert await outbox.pending() == (0, 0)
    assert result.complete, result.failed
    assert result.retries > 0
    assert count(server.url, token) == TOTAL
