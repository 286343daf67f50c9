"""End to end: a real server, a real `python -m client sync`, and the monitor following both."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from harness.demo_clients import Demo
from monitor.app import MonitorApp
from syncbed import contract as c
from tests.conftest import ROOT, ServerFactory

SIZE = (120, 36)


async def client(*args: str, token: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client", *args, cwd=ROOT, env={**os.environ, "SYNCBED_TOKEN": token},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 180)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def wait(pilot: Any, check: Any, timeout: float = 120.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out")


async def test_a_real_sync_reaches_100_percent_and_its_429s_match_the_server(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory(args=["--latency-ms", "300"])  # the seed's 0.3 s per batch and its 5/s per user
    token = srv.token("erin")
    db = str(tmp_path / "outbox.sqlite3")
    app = MonitorApp(server=srv.url, admin_token=srv.admin_token)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.conn_state == "connected")
        code, out = await client("generate", "10000", "--db", db, token=token)
        assert code == 0, out
        # aggressive: 10 batches at once against 5 a second, so some are refused with 429 and resent.
        code, out = await client("sync", "--db", db, "--server", srv.url, "--mode", "aggressive", "--json", token=token)
        assert code == 0, out
        result = json.loads(out.splitlines()[0])
        run_id = result["run"]
        await wait(pilot, lambda: run_id in app.model.runs and app.model.runs[run_id].finished)
        await pilot.pause(0.3)
        run = app.model.runs[run_id]
        row = app.runs_view.get_row(run_id)
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.get(f"{srv.url}{c.RUNS_PATH}/{run_id}", headers=srv.admin_headers())
        server_view = r.json()
    assert run.progress() == 1.0 and run.status == "complete" and run.batches_done() == 10
    assert "100%" in str(row[3]) and str(row[9]) == "complete"
    throttled = server_view["totals"]["throttled"]
    assert throttled > 0 and run.throttled == throttled == result["throttled"]
    assert str(row[6]) == str(throttled)  # what the screen shows
    assert run.records_done == 10_000 == server_view["totals"]["records_acked"]


async def test_demo_runs_its_clients_and_the_monitor_sees_every_run() -> None:
    with Demo(records=2000, modes=("sequential", "conservative"), latency_ms=50, pause=0.2) as demo:
        app = MonitorApp(server=demo.url, admin_token=demo.admin_token)
        async with app.run_test(size=SIZE) as pilot:
            await wait(pilot, lambda: app.conn_state == "connected")
            demo.start_clients()
            await wait(pilot, lambda: len(app.model.runs) == 2 and all(r.finished for r in app.model.runs.values()))
        assert demo.wait_clients(60)
    assert [r["mode"] for r in demo.results] == ["sequential", "conservative"]
    assert all(r["exit"] == 0 and r["status"] == "complete" for r in demo.results), demo.results
    modes = [r.mode for r in app.model.runs.values()]
    assert modes == ["sequential", "conservative"]
    assert all(r.progress() == 1.0 for r in app.model.runs.values())
