"""The client against a real `python -m server` subprocess: exact counts under limits, faults and rejects."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import msgspec
import pytest

from client.manager import SyncManager
from client.outbox import Outbox
from client.result import Progress
from syncbed.contract import SYNC_MODES, SYNC_PATH
from tests.cli_run import run_cli
from tests.client.fakes import filled
from tests.conftest import LiveServer, ServerFactory

BAD_ID = "pv-000000000001-0003500"  # replaced records move to the back: it will be in batch 9 of 10


def cli(*args: str, token: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_cli("client", *args, env={"SYNCBED_TOKEN": token} if token else None, timeout=timeout)


@pytest.mark.parametrize("mode", SYNC_MODES)
async def test_10k_records_under_the_seed_limits_in_each_mode(
    live_server: LiveServer, tmp_path: Path, mode: str
) -> None:
    token = live_server.token(f"user-{mode}")
    async with await filled(tmp_path / "outbox.db", 10_000) as outbox:
        result = await SyncManager(live_server.url, token, outbox, mode=mode).sync()
        assert await outbox.pending() == (0, 0)
    assert result.complete, result.failed
    assert (result.ok_batches, result.synced_records, result.stored, result.duplicates) == (10, 10_000, 10_000, 0)
    assert live_server.count(token) == 10_000
    # Every 429 was answered by a resend, nothing else failed.
    assert result.requests == 10 + result.throttled and result.retries == 0
    if mode == "adaptive":
        # Its first burst of 10 meets the seed's 5/s once (the budget: one window's quota plus one); then
        # it paces from the RateLimit fields.
        assert result.throttled <= 5 + 1
    if mode == "sequential":
        assert result.throttled == 0  # 1 in flight at 0.3 s cannot exceed 5/s


async def test_10k_records_through_injected_503s_and_dropped_connections(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(args=["--no-limits", "--error-rate", "0.1", "--reset-rate", "0.05"])
    token = server.token("faulty")
    async with await filled(tmp_path / "outbox.db", 10_000) as outbox:
        manager = SyncManager(server.url, token, outbox, mode="adaptive", batch_size=250, max_retries=12)
        result = await manager.sync()
        assert await outbox.pending() == (0, 0)
    assert result.complete, result.failed
    assert server.count(token) == 10_000
    # 40 batches at a 15% fault rate: the faults did happen (no fault at all has odds of 0.15%). Each costs one
    # request: a 503 or a reset on a fresh connection a backoff (a retry), a reset on a reused one a resend at once.
    log = server.log()
    faults = log.count(f"POST {SYNC_PATH} 503 ") + log.count("injected fault: dropping the connection (reset)")
    assert faults > 0 and result.requests == 40 + faults
    assert result.retries <= faults
    assert result.stored == 10_000


async def test_partial_run_names_the_batch_and_a_rerun_after_the_fix_completes(
    live_server: LiveServer, tmp_path: Path
) -> None:
    token = live_server.token("fixer")
    db = tmp_path / "outbox.db"
    async with await filled(db, 10_000) as outbox:
        good = await outbox.get(BAD_ID)
        assert good is not None
        record = msgspec.json.decode(good)
        # A record the server refuses: not an http(s) URL (put() stores it as is, like an old client might).
        await outbox.put([(BAD_ID, msgspec.json.encode({**record, "url": "ftp://files.example.org/x"}))])

    first = cli("sync", "--db", str(db), "--server", live_server.url, "--mode", "conservative", token=token)
    assert first.returncode == 1, first.stderr
    out = first.stdout
    assert "Sync partially complete (9/10 batches)" in out
    # (attempts: a first burst that straddles a window edge may draw a 429 before the 422)
    assert re.search(r"batch 9 \(1,000 records, \d+ attempts\): HTTP 422 invalid_records", out), out
    assert "python -m client sync" in out  # how to retry
    assert live_server.count(token) == 9_000

    async with Outbox(db) as outbox:
        assert (await outbox.pending())[0] == 1_000
        await outbox.put([(BAD_ID, good)])  # the fix

    second = cli("sync", "--db", str(db), "--server", live_server.url, "--json", token=token)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)  # --json: nothing but the result on stdout
    assert result["status"] == "complete" and result["total_batches"] == 1 and result["synced_records"] == 1000
    assert live_server.count(token) == 10_000

    stats = cli("stats", "--db", str(db))
    assert stats.returncode == 0
    assert "Last sync: complete" in stats.stdout and "Average of the last 2 runs" in stats.stdout


async def test_a_rejected_batch_does_not_stop_the_others_and_the_run_is_announced(
    live_server: LiveServer, tmp_path: Path
) -> None:
    token = live_server.token("announcer")
    async with await filled(tmp_path / "outbox.db", 3_000) as outbox:
        body = await outbox.get("pv-000000000001-0000000")
        assert body is not None
        await outbox.put([("pv-000000000001-0000000", body.replace(b'"url":"https', b'"url":"gopher'))])
        result = await SyncManager(live_server.url, token, outbox, mode="aggressive").sync()
    assert (result.ok_batches, len(result.failed), result.failed[0].batch) == (2, 1, 2)
    assert result.status == "partial"
    async with httpx.AsyncClient(headers=live_server.admin_headers(), timeout=10) as http:
        r = await http.get(f"{live_server.url}/api/v1/runs/{result.run}")
    assert r.status_code == 200, r.text
    assert result.run in r.text


async def test_eta_predicts_the_remaining_time_of_a_steady_sync(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(args=["--no-limits", "--latency-ms", "100"])
    token = server.token("eta")
    marks: dict[float, Progress] = {}

    def on_progress(p: Progress) -> None:
        for mark in (0.25, 0.5, 0.75):
            if mark not in marks and p.fraction >= mark:
                marks[mark] = p

    async with await filled(tmp_path / "outbox.db", 40_000) as outbox:
        manager = SyncManager(server.url, token, outbox, mode="sequential", on_progress=on_progress)
        result = await manager.sync()
    assert result.complete and set(marks) == {0.25, 0.5, 0.75}
    for mark, p in marks.items():
        actual = result.duration - p.elapsed
        assert p.eta is not None
        assert abs(p.eta - actual) <= 0.2 * actual, (mark, p.eta, actual)
