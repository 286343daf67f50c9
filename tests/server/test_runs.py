"""Runs: announce, finish, list, inspect, export; who may read what; history across a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from server.events import EventBus
from server.history import History
from syncbed import contract
from syncbed.events import (
    EV_RUN_FINISHED,
    EV_RUN_STARTED,
    BatchReceived,
    BatchRejected,
    BatchStored,
    Event,
    RequestThrottled,
    RunFinished,
    RunStarted,
    decode_event,
)
from syncbed.fold import fold
from syncbed.runs import RunTotals
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import TIMEOUT, auth, batch, throttle

THROTTLED_CONFIG = throttle("sync/user", 2, "5s", key="user", sync=True)


def trace(token: str, run: str, batch_no: int, attempt: int) -> dict[str, str]:
    return {
        **auth(token),
        contract.HEADER_RUN: run,
        contract.HEADER_BATCH: str(batch_no),
        contract.HEADER_ATTEMPT: str(attempt),
    }


def start_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total_records": 30,
        "total_batches": 3,
        "batch_size": 10,
        "mode": "conservative",
        "concurrency": 5,
    }
    body.update(over)
    return body


async def start(client: httpx.AsyncClient, srv: LiveServer, token: str, **over: Any) -> str:
    r = await client.post(srv.url + contract.RUNS_PATH, headers=auth(token), json=start_body(**over))
    assert r.status_code == 201, r.text
    run: str = r.json()["run"]
    return run


async def finish(client: httpx.AsyncClient, srv: LiveServer, token: str, run: str, **body: Any) -> httpx.Response:
    payload = {"status": "complete", "ok_batches": 3, "failed_batches": 0, "seconds": 1.25, **body}
    return await client.post(f"{srv.url}{contract.RUNS_PATH}/{run}/finish", headers=auth(token), json=payload)


async def post_batch(
    client: httpx.AsyncClient, srv: LiveServer, token: str, run: str, b: int, a: int, prefix: str
) -> httpx.Response:
    return await client.post(
        srv.url + contract.SYNC_PATH, content=batch(10, prefix, b * 10), headers=trace(token, run, b, a)
    )


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(args=["--no-limits"])


async def test_a_run_is_announced_synced_finished_and_inspected(server: LiveServer) -> None:
    token = server.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        run = await start(client, server, token, run="alice-run-1")
        assert run == "alice-run-1"
        for b in range(3):
            assert (await post_batch(client, server, token, run, b, 1, "a")).status_code == 200
        assert (await post_batch(client, server, token, run, 1, 2, "a")).status_code == 200  # a retry: dupes
        r = await finish(client, server, token, run)
        assert r.status_code == 200 and r.json() == {"run": run, "status": "complete"}

        listed = (await client.get(server.url + contract.RUNS_PATH, headers=auth(token))).json()["runs"]
        detail = (await client.get(f"{server.url}{contract.RUNS_PATH}/{run}", headers=auth(token))).json()
    (row,) = listed
    assert row["run"] == run and row["user"] == "alice" and row["status"] == "complete" and row["announced"]
    assert (row["total_batches"], row["mode"], row["concurrency"], row["seconds"]) == (3, "conservative", 5, 1.25)
    totals = {
        "batches_seen": 3,
        "batches_stored": 3,
        "attempts": 4,
        "records_stored": 30,
        "records_acked": 40,
        "duplicates": 10,
        "throttled": 0,
        "rejected": 0,
        "events": 10,
    }
    assert row["totals"] == totals
    assert detail["totals"] == totals and detail["status"] == "complete" and detail["user"] == "alice"
    assert detail["announced"]["total_records"] == 30 and detail["reported"]["ok_batches"] == 3
    assert [b["batch"] for b in detail["batches"]] == [0, 1, 2]
    retried = detail["batches"][1]
    assert [a["attempt"] for a in retried["attempts"]] == [1, 2]
    second = retried["attempts"][1]
    assert (second["status"], second["http_status"], second["stored"], second["duplicates"]) == ("stored", 200, 0, 10)
    assert second["received"] <= second["finished"]


async def test_throttled_and_rejected_attempts_show_why(server_factory: ServerFactory) -> None:
    srv = server_factory(config=THROTTLED_CONFIG)
    token = srv.token("bob")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        run = await start(client, srv, token)
        assert (await post_batch(client, srv, token, run, 0, 1, "b")).status_code == 200
        bad = await client.post(srv.url + contract.SYNC_PATH, content=b"{nope", headers=trace(token, run, 1, 1))
        assert bad.status_code == 400
        assert (await post_batch(client, srv, token, run, 2, 1, "b")).status_code == 429
        detail = (await client.get(f"{srv.url}{contract.RUNS_PATH}/{run}", headers=auth(token))).json()
    rejected = detail["batches"][1]["attempts"][0]
    assert (rejected["status"], rejected["http_status"], rejected["error"]) == ("rejected", 400, "invalid_json")
    third = detail["batches"][2]["attempts"][0]
    assert (third["status"], third["http_status"], third["rule"]) == ("throttled", 429, "sync/user")
    assert third["retry_after"] > 0 and third["received"] == third["finished"]
    assert [b["status"] for b in detail["batches"]] == ["stored", "rejected", "throttled"]
    assert (detail["totals"]["throttled"], detail["totals"]["rejected"]) == (1, 1)
    assert detail["status"] == "running"


async def test_who_may_see_which_run(server: LiveServer) -> None:
    alice, bob = server.token("alice"), server.token("bob")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        run = await start(client, server, alice)
        other = await start(client, server, bob)
        base = server.url + contract.RUNS_PATH
        assert (await client.get(f"{base}/{run}", headers=auth(bob))).status_code == 403
        assert (await client.get(f"{base}/{run}/events", headers=auth(bob))).status_code == 403
        assert (await finish(client, server, bob, run)).status_code == 403
        r = await client.post(base, headers=auth(bob), json=start_body(run=run))  # bob cannot take it over
        assert r.status_code == 403 and r.json()["error"] == contract.E_FORBIDDEN
        mine = (await client.get(base, headers=auth(bob))).json()["runs"]
        assert [r["run"] for r in mine] == [other]
        everyone = (await client.get(base, headers=server.admin_headers())).json()["runs"]
        assert {r["run"] for r in everyone} == {run, other}
        assert (await client.get(f"{base}/{run}", headers=server.admin_headers())).status_code == 200
        assert (await client.get(base)).status_code == 401
        assert (await client.get(base, headers={"Authorization": "Bearer sb_x_y"})).status_code == 401
        r = await client.post(base, headers=server.admin_headers(), json=start_body())
        assert r.status_code == 403  # runs belong to users
        assert (await client.get(f"{base}/never-was", headers=server.admin_headers())).status_code == 404
        again = await client.post(base, headers=auth(alice), json=start_body(run=run))
        assert again.status_code == 201  # re-announcing one's own run is a harmless retry


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"not json", 400, None),
        (b"[1, 2]", 400, None),
        (json.dumps({"total_records": 1, "total_batches": 1}).encode(), 422, None),
        (json.dumps(start_body(batch_size=0)).encode(), 422, "batch_size"),
        (json.dumps(start_body(total_records="many")).encode(), 422, "total_records"),
        (json.dumps(start_body(run="has space")).encode(), 422, "run"),
    ],
)
async def test_bad_run_bodies_get_clear_errors(server: LiveServer, body: bytes, status: int, field: str | None) -> None:
    token = server.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        r = await client.post(server.url + contract.RUNS_PATH, headers=auth(token), content=body)
        assert r.status_code == status, r.text
        answer = r.json()
        assert answer["error"] in (contract.E_INVALID_JSON, contract.E_INVALID_REQUEST) and answer["message"]
        if field is not None:
            assert answer["field"] == field
        run = await start(client, server, token)
        r = await finish(client, server, token, run, status="great")
        assert r.status_code == 422 and r.json()["field"] == "status"
        r = await client.get(server.url + contract.RUNS_PATH + "?limit=0", headers=auth(token))
        assert r.status_code == 422 and r.json()["field"] == "limit"


async def test_history_survives_a_restart_and_its_export_replays_to_the_same_totals(server: LiveServer) -> None:
    token = server.token("carol")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        run = await start(client, server, token, total_batches=6, total_records=60)
        results = await asyncio.gather(*(post_batch(client, server, token, run, b, 1, "c") for b in range(6)))
        assert all(r.status_code == 200 for r in results)
        await post_batch(client, server, token, run, 2, 2, "c")
        assert (await finish(client, server, token, run, ok_batches=6)).status_code == 200
        before = (await client.get(f"{server.url}{contract.RUNS_PATH}/{run}", headers=auth(token))).json()

    server.restart()

    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        after = (await client.get(f"{server.url}{contract.RUNS_PATH}/{run}", headers=auth(token))).json()
        export = await client.get(f"{server.url}{contract.RUNS_PATH}/{run}/events", headers=server.admin_headers())
        listed = (await client.get(server.url + contract.RUNS_PATH, headers=server.admin_headers())).json()["runs"]
        # New events keep rising ids across the restart.
        token2 = server.token("carol")
        run2 = await start(client, server, token2)
        export2 = await client.get(f"{server.url}{contract.RUNS_PATH}/{run2}/events", headers=auth(token2))
    assert after == before
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in export.text.splitlines()]
    assert events[0]["type"] == EV_RUN_STARTED and events[-1]["type"] == EV_RUN_FINISHED
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    replayed = msgspec.to_builtins(fold(run, [decode_event(line) for line in export.text.splitlines()]))
    assert replayed == after
    assert after["totals"] == next(r for r in listed if r["run"] == run)["totals"]
    assert after["totals"]["batches_stored"] == 6 and after["totals"]["records_stored"] == 60
    (started2,) = [json.loads(line) for line in export2.text.splitlines()]
    assert started2["id"] > ids[-1]


async def test_batches_of_an_unannounced_run_still_make_a_run(server: LiveServer) -> None:
    token = server.token("dave")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        assert (await post_batch(client, server, token, "ghost", 0, 1, "d")).status_code == 200
        detail = (await client.get(f"{server.url}{contract.RUNS_PATH}/ghost", headers=auth(token))).json()
        listed = (await client.get(server.url + contract.RUNS_PATH, headers=auth(token))).json()["runs"]
    assert detail["user"] == "dave" and detail["announced"] is None and detail["status"] == "running"
    assert detail["totals"]["batches_stored"] == 1
    assert listed[0]["run"] == "ghost" and not listed[0]["announced"]


# --- the history store, without HTTP -----------------------------------------------------------


async def test_history_writes_everything_queued_when_it_closes(tmp_path: Path) -> None:
    bus = EventBus(stats_interval=0)
    history = History(tmp_path / "h.sqlite3", interval=60)  # the writer would wait a minute: close must flush
    await history.open(bus)
    for i in range(12_000):
        bus.publish(
            BatchStored(run=f"r{i % 3}", batch=i, attempt=1, user="u", records=1, stored=1, duplicates=0, ms=1.0)
        )
    bus.publish(BatchReceived(run=None, batch=0, attempt=1, user="u", records=1))  # no run: not kept
    assert history.pending == 12_000
    await history.close()

    again = History(tmp_path / "h.sqlite3")
    bus2 = EventBus(stats_interval=0)
    await again.open(bus2)
    try:
        runs = await again.list_runs()
        assert sorted(r.run for r in runs) == ["r0", "r1", "r2"]
        assert all(r.totals.records_stored == 4000 for r in runs)
        bus2.publish(BatchReceived(run=None, batch=0, attempt=1, user="u", records=1))
        assert bus2.last_id == 12_002  # ids continue after the 12,001 the first life used
    finally:
        await again.close()


async def test_history_queue_is_bounded(tmp_path: Path) -> None:
    bus = EventBus(stats_interval=0)
    history = History(tmp_path / "h.sqlite3", queue_size=10, interval=60)
    await history.open(bus)
    for i in range(15):
        bus.publish(BatchReceived(run="r", batch=i, attempt=1, user="u", records=1))
    assert (history.pending, history.lost) == (10, 5)
    await history.close()


def run_events(run: str) -> list[Event]:
    """A run with a split, a 429, a 503, a retry that stores again, a batch of no index, one in flight."""

    def got(batch: int, attempt: int, user: str | None = "u") -> BatchReceived:
        return BatchReceived(run=run, batch=batch, attempt=attempt, user=user, records=10)

    def kept(batch: int | None, attempt: int | None, records: int = 10, dup: int = 0) -> BatchStored:
        return BatchStored(
            run=run, batch=batch, attempt=attempt, user="u", records=records, stored=records - dup, duplicates=dup,
            ms=1.0,
        )  # fmt: skip

    def refused(batch: int, attempt: int, status: int, error: str) -> BatchRejected:
        return BatchRejected(run=run, batch=batch, attempt=attempt, user="u", status=status, error=error)

    return [
        RunStarted(run=run, user="u", total_records=30, total_batches=3, batch_size=10, mode="m", concurrency=2),
        refused(0, 1, 413, "batch_too_large"),
        kept(0, 2, records=5),
        kept(0, 3, records=5, dup=1),
        RequestThrottled(
            run=run, batch=1, attempt=1, user="u", ip="i", rule="r", key="k", retry_after=1.0, dry_run=False
        ),
        got(1, 2),
        refused(1, 2, 503, "injected_fault"),
        got(1, 3),
        kept(1, 3),
        kept(1, 4, dup=10),
        kept(None, None),
        got(2, 1),  # still in flight
        got(2, 1, user=None),  # no user: never stored
        BatchReceived(run=run, batch=9, attempt=1, user="intruder", records=1),  # another user's run: not kept
    ]


async def test_the_sql_totals_of_the_list_are_the_fold_of_the_stored_events(tmp_path: Path) -> None:
    bus = EventBus(stats_interval=0)
    history = History(tmp_path / "h.sqlite3", interval=0.01)
    await history.open(bus)
    finish = RunFinished(run="b", user="u", status="partial", ok_batches=2, failed_batches=1, seconds=1.5)
    try:
        for event in [*run_events("a"), *run_events("b"), finish]:
            bus.publish(event)
        await history.flush()
        listed = {r.run: r for r in await history.list_runs()}
        for run in ("a", "b"):
            stored = [decode_event(line) async for line in history.iter_events(run)]
            assert listed[run].totals == fold(run, stored).totals == (await history.detail(run)).totals
        assert listed["a"].totals == RunTotals(
            batches_seen=3, batches_stored=2, attempts=9, records_stored=29, records_acked=40, duplicates=11,
            throttled=1, rejected=2, events=12,
        )  # fmt: skip
        assert (listed["b"].status, listed["b"].seconds, listed["b"].totals.events) == ("partial", 1.5, 13)
    finally:
        await history.close()
