"""GET /api/v1/events against real uvicorn servers: order, fields, resume, filters, cap, slow readers, auth."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import sse as sse_endpoint
from syncbed import contract
from syncbed.events import (
    EV_RUN_FINISHED,
    EV_STATS,
    EV_STREAM_DROPPED,
    EV_STREAM_RESET,
    BatchReceived,
    BatchStored,
    ServerStats,
    decode_event,
    event_type,
)
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import Reader, auth, batch, data
from tests.server.inprocess import InProcessServer, serve

TIMEOUT = httpx.Timeout(30.0, read=60.0)
RUN_TYPES = "run.started,batch.received,batch.stored,batch.rejected,run.finished"


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(args=["--no-limits"])


@pytest.fixture
async def inproc(tmp_path: Path) -> AsyncIterator[InProcessServer]:
    async with serve(tmp_path) as srv:
        yield srv


def headers_for(token: str, run: str, batch_no: int, attempt: int = 1) -> dict[str, str]:
    return {
        **auth(token),
        contract.HEADER_RUN: run,
        contract.HEADER_BATCH: str(batch_no),
        contract.HEADER_ATTEMPT: str(attempt),
    }


async def sync_run(client: httpx.AsyncClient, url: str, token: str, batches: int, prefix: str) -> str:
    r = await client.post(
        url + contract.RUNS_PATH,
        headers=auth(token),
        json={"total_records": batches * 10, "total_batches": batches, "batch_size": 10, "mode": "sequential"},
    )
    assert r.status_code == 201, r.text
    run: str = r.json()["run"]
    for i in range(batches):
        r = await client.post(
            url + contract.SYNC_PATH, content=batch(10, prefix, i * 10), headers=headers_for(token, run, i)
        )
        assert r.status_code == 200, r.text
    r = await client.post(
        url + f"{contract.RUNS_PATH}/{run}/finish",
        headers=auth(token),
        json={"status": "complete", "ok_batches": batches, "failed_batches": 0, "seconds": 0.5},
    )
    assert r.status_code == 200, r.text
    return run


async def test_stream_needs_the_admin_token(server: LiveServer) -> None:
    user = server.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        url = server.url + contract.EVENTS_PATH
        none = await client.get(url)
        assert none.status_code == 401 and none.json()["error"] == contract.E_UNAUTHORIZED
        unknown = await client.get(url, headers={"Authorization": "Bearer sb_nope_nope"})
        assert unknown.status_code == 401
        forbidden = await client.get(url, headers={"Authorization": f"Bearer {user}"})
        assert forbidden.status_code == 403 and forbidden.json()["error"] == contract.E_FORBIDDEN


async def test_a_subscriber_sees_a_sync_in_order_with_the_contract_fields(server: LiveServer) -> None:
    token = server.token("alice")
    async with (
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        Reader(client, server.url + contract.EVENTS_PATH, server.admin_headers()) as reader,
    ):
        assert reader.status == 200
        run = await sync_run(client, server.url, token, 3, "order")
        await reader.wait_for(lambda evs: any(e.event == EV_RUN_FINISHED for e in evs))
    mine = [e for e in reader.events if e.event != EV_STATS]
    assert [e.event for e in mine] == [
        "run.started",
        *["batch.received", "batch.stored"] * 3,
        "run.finished",
    ]
    ids = [int(e.id) for e in mine]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for event in mine:
        body = data(event)
        typed = decode_event(event.data)
        assert event_type(typed) == body["type"] == event.event and typed.id == body["id"] == int(event.id)
        assert isinstance(body["ts"], float) and body["run"] == run and body["user"] == "alice"
    stored = [data(e) for e in mine if e.event == "batch.stored"]
    assert [(s["batch"], s["attempt"], s["records"], s["stored"]) for s in stored] == [
        (0, 1, 10, 10),
        (1, 1, 10, 10),
        (2, 1, 10, 10),
    ]
    assert data(mine[0])["total_batches"] == 3 and data(mine[-1])["status"] == "complete"


async def test_reconnect_with_last_event_id_gets_exactly_the_missed_events(server: LiveServer) -> None:
    token = server.token("alice")
    url = f"{server.url}{contract.EVENTS_PATH}?types={RUN_TYPES}"
    admin = server.admin_headers()
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Reader(client, url, admin) as always:
        async with Reader(client, url, admin) as early:
            await sync_run(client, server.url, token, 2, "early")
            await early.wait_for(lambda evs: len(evs) == 6)
        last_seen = early.events[-1].id
        await sync_run(client, server.url, token, 3, "late")  # 8 events while disconnected
        await always.wait_for(lambda evs: len(evs) == 14)
        resumed_headers = {**admin, contract.HEADER_LAST_EVENT_ID: last_seen}
        async with Reader(client, url, resumed_headers) as resumed:
            await resumed.wait_for(lambda evs: len(evs) >= 8)
            await asyncio.sleep(0.3)  # nothing more may come
    assert [e.id for e in resumed.events] == [e.id for e in always.events[6:]]
    assert resumed.events[0].event == "run.started"


async def test_an_id_the_server_does_not_hold_gets_stream_reset(server: LiveServer) -> None:
    headers = {**server.admin_headers(), contract.HEADER_LAST_EVENT_ID: "999999999"}
    async with (
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        Reader(client, server.url + contract.EVENTS_PATH, headers) as reader,
    ):
        await reader.wait_for(lambda evs: len(evs) >= 1)
    first = reader.events[0]
    assert first.event == EV_STREAM_RESET and first.id == ""
    assert data(first)["last_event_id"] == 999999999 and "oldest_id" in data(first)


async def test_an_id_older_than_the_buffer_gets_stream_reset_then_all_it_holds(inproc: InProcessServer) -> None:
    inproc.bus.buffer = type(inproc.bus.buffer)(maxlen=5)
    for i in range(20):
        inproc.bus.publish(
            BatchStored(run="old", batch=i, attempt=1, user="u", records=1, stored=1, duplicates=0, ms=1.0)
        )
    headers = {**inproc.admin_headers(), contract.HEADER_LAST_EVENT_ID: "3"}
    url = inproc.url + contract.EVENTS_PATH + "?types=batch.stored"
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Reader(client, url, headers) as reader:
        await reader.wait_for(lambda evs: len(evs) >= 6)
    assert reader.events[0].event == EV_STREAM_RESET
    assert data(reader.events[0])["oldest_id"] == 16
    assert [int(e.id) for e in reader.events[1:6]] == [16, 17, 18, 19, 20]


async def test_filters_by_run_and_type(server: LiveServer) -> None:
    token = server.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        r = await client.post(
            server.url + contract.RUNS_PATH,
            headers=auth(token),
            json={"run": "wanted", "total_records": 20, "total_batches": 2, "batch_size": 10},
        )
        assert r.status_code == 201
        url = f"{server.url}{contract.EVENTS_PATH}?run=wanted&types=batch.stored,request.throttled"
        async with Reader(client, url, server.admin_headers()) as reader:
            for i in range(2):
                for run in ("other", "wanted"):
                    r = await client.post(
                        server.url + contract.SYNC_PATH,
                        content=batch(10, run, i * 10),
                        headers=headers_for(token, run, i),
                    )
                    assert r.status_code == 200
            await reader.wait_for(lambda evs: len(evs) >= 2)
            await asyncio.sleep(0.3)
    assert [(e.event, data(e)["run"], data(e)["batch"]) for e in reader.events] == [
        ("batch.stored", "wanted", 0),
        ("batch.stored", "wanted", 1),
    ]


async def test_bad_filters_and_ids_are_clear_422s(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        base = server.url + contract.EVENTS_PATH
        for query, field in (("?types=batch.stored,nope", "types"), ("?run=has%20space", "run")):
            r = await client.get(base + query, headers=server.admin_headers())
            assert r.status_code == 422 and r.json()["field"] == field, r.text
        r = await client.get(base, headers={**server.admin_headers(), contract.HEADER_LAST_EVENT_ID: "abc"})
        assert r.status_code == 422 and r.json()["error"] == contract.E_INVALID_REQUEST


async def test_the_subscriber_cap_answers_a_clear_error_and_frees_slots(inproc: InProcessServer) -> None:
    inproc.bus.max_subscribers = 2
    url = inproc.url + contract.EVENTS_PATH
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        async with Reader(client, url, inproc.admin_headers()), Reader(client, url, inproc.admin_headers()):
            over = await client.get(url, headers=inproc.admin_headers())
            assert over.status_code == 503 and over.headers[contract.HEADER_RETRY_AFTER] == "5"
            body = over.json()
            assert body["error"] == contract.E_TOO_MANY_SUBSCRIBERS and body["max_subscribers"] == 2
            assert "2 subscribers" in body["message"]
        for _ in range(500):
            if inproc.bus.subscriber_count == 0:
                break
            await asyncio.sleep(0.02)
        assert inproc.bus.subscriber_count == 0
        async with Reader(client, url, inproc.admin_headers()) as again:
            assert again.status == 200


async def test_a_subscriber_that_never_reads_gets_stream_dropped_and_ingest_goes_on(
    inproc: InProcessServer,
) -> None:
    bus = inproc.bus
    bus.subscriber_queue = 20
    token = inproc.token("alice")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", inproc.port))
    request = (
        f"GET {contract.EVENTS_PATH}?types=batch.received,batch.stored HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {inproc.state.admin_token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    try:
        for _ in range(500):
            if bus.subscriber_count == 1:
                break
            await asyncio.sleep(0.01)
        sub = bus._subscribers[0]
        padding = "x" * 8000  # a user name this long makes each event big, so the socket buffers fill soon
        for _ in range(20_000):  # fill the socket buffers, then the queue, while the client reads nothing
            bus.publish(BatchReceived(run="filler", batch=0, attempt=1, user=padding, records=1))
            if sub._missed >= 200:  # misses only pile up while the stream cannot send at all
                break
            await asyncio.sleep(0.001)
        assert sub._missed >= 200, "the subscriber's stream never stalled"
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            for i in range(20):  # ingest is not held up by the stuck reader
                r = await client.post(
                    inproc.url + contract.SYNC_PATH, content=batch(5, "slow", i * 5), headers=auth(token)
                )
                assert r.status_code == 200
        missed_before_reading = sub._missed
        assert missed_before_reading >= 240  # every batch's received+stored went past the full queue too
        received = b""
        dropped: list[dict[str, Any]] = []
        blocks: list[str] = []
        while not dropped or dropped[-1]["missed"] < missed_before_reading:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 30)
            assert chunk, "server closed the stream"
            received += chunk
            *complete, rest = received.split(b"\n\n")
            received = rest
            for raw in complete:
                block = raw.decode("latin-1")
                if "event: stream.dropped" in block:
                    blocks.append(block)
                    dropped.append(json.loads(block.split("data: ", 1)[1].split("\n", 1)[0]))
    finally:
        sock.close()
    assert dropped[-1]["type"] == EV_STREAM_DROPPED and dropped[-1]["missed"] == missed_before_reading
    assert dropped[-1]["last_id"] <= bus.last_id
    assert all("id: " not in b for b in blocks)  # control events carry no id: the resume point stays put


async def test_heartbeat_comments_keep_an_idle_stream_alive(
    inproc: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse_endpoint, "HEARTBEAT_S", 0.2)
    async with (
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        client.stream(
            "GET", inproc.url + contract.EVENTS_PATH + "?types=run.finished", headers=inproc.admin_headers()
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        seen = ""
        async for chunk in response.aiter_text():
            seen += chunk
            if seen.count(": ping") >= 2:
                break
    assert "id:" not in seen and "data:" not in seen


async def test_stats_events_report_rates_limiter_and_faults(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--latency-ms", "5"])
    token = srv.token("alice")
    url = srv.url + contract.EVENTS_PATH + "?types=stats"
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Reader(client, url, srv.admin_headers()) as reader:
        for i in range(3):
            r = await client.post(srv.url + contract.SYNC_PATH, content=batch(100, "st", i * 100), headers=auth(token))
            assert r.status_code == 200
        await reader.wait_for(lambda evs: any(data(e)["records_per_s"] > 0 for e in evs))
    busy = next(decode_event(e.data) for e in reader.events if data(e)["records_per_s"] > 0)
    assert isinstance(busy, ServerStats) and busy.requests_per_s > 0 and busy.in_flight >= 0
    assert set(busy.limiter) >= {"sync/user", "sync/ip", "req/ip"}  # rule -> [{key, count}]
    assert busy.faults is not None and busy.faults.latency_ms == 5
    assert busy.rules is not None and {r.name for r in busy.rules} >= {"sync/user"}
