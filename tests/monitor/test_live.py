"""The monitor against the real server (`python -m server` subprocesses): restart without loss, admin controls."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
from textual.widgets import Input

from monitor.app import MonitorApp
from monitor.screens import AdminScreen
from syncbed import contract as c
from syncbed.events import event_type
from tests.conftest import LiveServer, ServerFactory

SIZE = (100, 30)


def body(run: str, batch: int, n: int = 50) -> dict[str, Any]:
    visits = [
        {"id": f"{run}-{batch}-{i}", "url": f"https://example.com/{batch}/{i}", "visitedAt": 1_700_000_000_000 + i}
        for i in range(n)
    ]
    return {"pageVisits": visits}


async def send_batch(client: httpx.AsyncClient, srv: LiveServer, token: str, run: str, batch: int) -> int:
    """One batch, retried on 429 after Retry-After: the status of the last attempt."""
    for attempt in range(1, 20):
        headers = {"Authorization": f"Bearer {token}", c.HEADER_RUN: run, c.HEADER_BATCH: str(batch),
                   c.HEADER_ATTEMPT: str(attempt)}  # fmt: skip
        r = await client.post(srv.url + c.SYNC_PATH, json=body(run, batch), headers=headers)
        if r.status_code != 429:
            return r.status_code
        await pilot_sleep(float(r.headers.get(c.HEADER_RETRY_AFTER, "1")))
    raise AssertionError("still throttled after 19 attempts")


async def pilot_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(min(seconds, 2.0))


async def wait(pilot: Any, check: Any, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out")


async def test_monitor_reconnects_across_a_server_restart_and_loses_nothing(server_factory: ServerFactory) -> None:
    srv = server_factory()
    token = srv.token("ann")
    app = MonitorApp(server=srv.url, admin_token=srv.admin_token)
    received: list[int | None] = []
    ingest = app._on_event

    def spy(data: dict[str, Any], event_id: int | None) -> None:
        received.append(event_id)
        ingest(data, event_id)

    app._on_event = spy  # type: ignore[method-assign]
    auth = {"Authorization": f"Bearer {token}"}
    async with app.run_test(size=SIZE) as pilot, httpx.AsyncClient(timeout=30) as client:
        await wait(pilot, lambda: app.conn_state == "connected")
        start = {"run": "restart-1", "total_records": 300, "total_batches": 6, "batch_size": 50, "mode": "sequential"}
        r = await client.post(srv.url + c.RUNS_PATH, headers=auth, json=start)
        assert r.status_code == 201
        for batch in (1, 2, 3):
            assert await send_batch(client, srv, token, "restart-1", batch) == 200
        await wait(pilot, lambda: app.model.runs.get("restart-1") and app.model.runs["restart-1"].batches_done() == 3)
        srv.stop()  # mid-run: the monitor loses its stream
        await wait(pilot, lambda: app.conn_state == "reconnecting")
        srv.start()
        await wait(pilot, lambda: app.conn_state == "connected" and app.follower is not None
                   and app.follower.connections == 2)  # fmt: skip
        for batch in (4, 5, 6):
            assert await send_batch(client, srv, token, "restart-1", batch) == 200
        verdict = {"status": "complete", "ok_batches": 6, "failed_batches": 0, "seconds": 1.0}
        r = await client.post(f"{srv.url}{c.RUNS_PATH}/restart-1/finish", headers=auth, json=verdict)
        assert r.status_code == 200
        await wait(pilot, lambda: app.model.runs["restart-1"].finished)
        r = await client.get(f"{srv.url}{c.RUNS_PATH}/restart-1/events", headers=srv.admin_headers())
        held = [json.loads(line) for line in r.text.splitlines() if line.strip()]
        run = app.model.runs["restart-1"]
        await pilot.pause(0.3)
        status = str(app.status_bar.render())
    # Every run event the server holds reached the monitor, once, in order.
    assert [(e.id, event_type(e)) for e in run.events] == [(e["id"], e["type"]) for e in held]
    # No id twice, none out of order; a gap only where the server said so (a `stats` event published while it
    # shut down is not kept across a restart, and the resumed stream opens with stream.reset).
    ids = [i for i in received if i is not None]
    assert ids == sorted(set(ids))
    gaps = sum(1 for a, b in itertools.pairwise(ids) if b != a + 1)
    assert gaps <= app.model.resets <= 1 and app.model.missed == 0
    assert run.progress() == 1.0 and run.batches_done() == 6 and run.status == "complete" and "connected" in status


async def test_admin_keys_change_the_real_servers_faults_and_limit(live_server: LiveServer) -> None:
    srv = live_server
    app = MonitorApp(server=srv.url, admin_token=srv.admin_token)
    async with app.run_test(size=SIZE) as pilot, httpx.AsyncClient(timeout=30) as client:
        await wait(pilot, lambda: app.conn_state == "connected")
        # The 1 Hz stats tell the monitor the current faults and rules, so the form starts from them.
        await wait(pilot, lambda: "sync/user" in app.model.limiter.rules and app.model.faults)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, AdminScreen)
        assert app.screen.query_one("#in-limit", Input).value == "5"
        app.screen.query_one("#in-latency_ms", Input).value = "40"
        app.screen.query_one("#in-error_rate", Input).value = "0.1"
        app.screen.query_one("#in-limit", Input).value = "10"
        await pilot.click("#apply")
        await wait(pilot, lambda: not isinstance(app.screen, AdminScreen))
        faults = (await client.get(srv.url + c.FAULTS_PATH, headers=srv.admin_headers())).json()
        assert faults["latency_ms"] == 40 and faults["error_rate"] == 0.1
        await wait(pilot, lambda: app.model.limiter.rules["sync/user"].limit == 10 and app.model.faults.get(
            "latency_ms") == 40)  # fmt: skip
        changed = [e for e in app.model.log if e.type == "config.changed"]
        assert len(changed) == 2


async def test_the_limiter_panel_names_the_servers_response_style(server_factory: ServerFactory) -> None:
    srv = server_factory(args=("--response", "rack-attack"))
    app = MonitorApp(server=srv.url, admin_token=srv.admin_token)
    async with app.run_test(size=SIZE) as pilot:
        await wait(pilot, lambda: app.model.limiter.response is not None, timeout=10)
        await pilot.pause(0.3)
        assert app.model.limiter.response == "rack-attack"
        assert str(app.limiter_view.border_title) == "Limiter · rack-attack"
