"""End to end: a real server, a real `python -m client sync`, and the monitor following both."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec

from harness.demo_acts import SEED_ACTS
from harness.demo_clients import Demo, narrate, story
from monitor.app import MonitorApp
from monitor.widgets_runs import COLUMNS
from syncbed import contract as c
from syncbed.runs import RunDetail, RunList
from tests.conftest import ROOT, ServerFactory
from tests.server.helpers import throttle

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


async def test_the_demo_tells_its_acts_in_the_monitor_and_the_plans_client_shows_as_a_run() -> None:
    acts = [act for act in SEED_ACTS if act.name in ("sequential", "plan's client", "adaptive")]
    with Demo(acts=acts, pause=0.2) as demo:  # the seed limits and 0.3 s per batch, 10 batches an act
        app = MonitorApp(server=demo.url, admin_token=demo.admin_token)
        narrate(demo, app)
        told: list[tuple[str, str]] = []  # every notification the screen showed, in order
        shown = app.notify

        def notify(message: str, *, title: str = "", **options: Any) -> None:
            told.append((title, message))  # a new act takes the earlier ones down: record them as they come
            shown(message, title=title, **options)

        app.notify = notify  # type: ignore[method-assign]

        async with app.run_test(size=SIZE) as pilot:
            demo.start_clients()  # the first act waits until the monitor is connected
            await wait(pilot, lambda: len(app.model.runs) == 3 and all(r.finished for r in app.model.runs.values()))
            await wait(pilot, lambda: demo.wait_clients(0))  # not a blocking join: the acts tell the app
            await wait(pilot, lambda: any(t == "demo finished: summary" for t, _ in told))
        lines = story(demo)
    outcomes = {o.act.name: o for o in demo.outcomes}
    runs = list(app.model.runs.values())
    assert [r.mode for r in runs] == ["sequential", "reference", "adaptive"]
    assert all(r.status == "complete" and r.progress() == 1.0 for r in runs)
    # The plan's client was announced and traced like ours: the monitor counts its 429s as the client did.
    assert runs[1].throttled == outcomes["plan's client"].throttled > 0
    assert runs[0].throttled == 0
    # Adaptive's probing first burst: at most one window's quota plus one, counted alike on both sides.
    assert runs[2].throttled == outcomes["adaptive"].throttled <= 5 + 1
    assert all(o.status == "complete" and o.ratio >= 0.99 for o in demo.outcomes), demo.outcomes
    titles = [t for t, _ in told]
    for i, act in enumerate(acts):
        assert (f"act {i + 1}/3: {act.name}", act.caption) in told
        assert titles.index(f"act {i + 1}/3: {act.name}") < titles.index(f"act {i + 1}/3 done")
    (summary,) = [m for t, m in told if t == "demo finished: summary"]
    assert "No act beat its phase-aware bound" in summary and summary in "\n".join(lines)


async def test_the_server_detail_the_sql_totals_and_the_monitor_row_agree_on_a_troubled_run(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A real sync with a split (413), 429s, 503s and their retries: three readings of it, one answer."""
    # Five batches sent at once against 2 per 0.5 s: at most four pass, whatever the window's edge.
    config = throttle("sync/user", 2, "500ms", key="user", sync=True)
    # 200-record batches against a 150-record cap: each is refused whole and sent again in halves;
    # every half is answered 503 until the monitor has seen one.
    srv = server_factory(config=config, args=["--max-batch-records", "150", "--error-rate", "1"])
    token = srv.token("fay")
    db = str(tmp_path / "outbox.sqlite3")
    app = MonitorApp(server=srv.url, admin_token=srv.admin_token)
    async with app.run_test(size=SIZE) as pilot, httpx.AsyncClient(timeout=30) as http:
        await wait(pilot, lambda: app.conn_state == "connected")
        code, out = await client("generate", "1000", "--db", db, token=token)
        assert code == 0, out
        args = ("--mode", "aggressive", "--batch-size", "200", "--ignore-ratelimit-fields", "--json")
        syncing = asyncio.create_task(client("sync", "--db", db, "--server", srv.url, *args, token=token))
        await wait(pilot, lambda: app.model.status_counts[503] > 0)
        r = await http.put(srv.url + c.FAULTS_PATH, headers=srv.admin_headers(), json={"error_rate": 0})
        assert r.status_code == 200
        code, out = await syncing
        assert code == 0, out
        result = json.loads(out.splitlines()[0])
        run_id = result["run"]
        await wait(pilot, lambda: run_id in app.model.runs and app.model.runs[run_id].finished)
        await pilot.pause(0.3)
        row = dict(zip([key for key, _ in COLUMNS], app.runs_view.get_row(run_id), strict=True))
        run = app.model.runs[run_id]
        r = await http.get(f"{srv.url}{c.RUNS_PATH}/{run_id}", headers=srv.admin_headers())
        detail = msgspec.convert(r.json(), RunDetail)
        r = await http.get(srv.url + c.RUNS_PATH, headers=srv.admin_headers())
        (listed,) = [s for s in msgspec.convert(r.json(), RunList).runs if s.run == run_id]
    attempts = [a for b in detail.batches for a in b.attempts]
    # The run was as troubled as meant: a split, 429s, 503s, retries; and it completed.
    assert [b.split for b in detail.batches] == [True] * 5 and result["splits"] == 5
    assert detail.totals.throttled > 0 and any(a.http_status == 503 for a in attempts)
    retries = sum(1 for a in attempts if a.attempt is not None and a.attempt > 1)
    assert retries > 0 and detail.status == "complete"
    assert detail.totals.records_acked == detail.totals.records_stored == 1000 == result["synced_records"]
    # The SQL totals of the list, the fold of the stored events and the monitor's fold of the live stream.
    assert listed.totals == detail.totals == run.fold.totals()
    assert run.fold.view().batches == detail.batches
    # And what the monitor's row shows.
    assert (str(row["throttled"]), str(row["retries"]), str(row["failed"])) == (
        str(detail.totals.throttled), str(retries), "0")  # fmt: skip
    assert "100%" in str(row["progress"]) and str(row["status"]) == "complete"
    assert run.records_done == 1000 and run.batches_done() == detail.totals.batches_stored == 5
