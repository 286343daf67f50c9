"""The event contract end to end: every type a real server publishes, read with the monitor's decoder.

Each event is decoded with `monitor.stream.decode` (what the monitor's stream follower does with every
frame) into its struct, and encoded back it must be the very JSON object the server sent: no field
the struct does not read, none it makes up.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from httpx_sse import ServerSentEvent

from monitor.stream import CONNECTED, Received, StreamFollower, Undecodable, decode
from server import sse as sse_endpoint
from syncbed import contract as c
from syncbed.events import (
    EV_BUS_DOWN,
    EV_BUS_UP,
    EV_CONFIG_CHANGED,
    EV_LIMITER_STORE,
    EV_LIMITER_UNBAN,
    EV_RUN_FINISHED,
    EV_STATS,
    EV_STREAM_DROPPED,
    EVENT_CLASSES,
    EVENT_TYPES,
    BatchRejected,
    BusDown,
    BusUp,
    ConfigChanged,
    Event,
    LimiterStore,
    StreamDropped,
    StreamReset,
    event_type,
)
from tests.conftest import ROOT, LiveServer, RedisServer, ServerFactory
from tests.server.helpers import TIMEOUT, Reader, auth, batch
from tests.server.inprocess import serve

ALL_TYPES = ",".join(EVENT_TYPES)


def config(store: str) -> str:
    return (
        f'[limits]\nstore = "{store}"\n\n'
        '[[limits.throttle]]\nname = "sync/user"\nlimit = 3\nperiod = "1h"\nkey = "user"\n'
        f'paths = ["{c.SYNC_PATH}"]\nmethods = ["POST"]\n'
        # One request to this path bans its user (on its address) for 0.2 s: limiter.ban, then limiter.unban.
        '[[limits.allow2ban]]\nname = "probe"\nmaxretry = 1\nfindtime = "1m"\nbantime = "200ms"\nkey = "ip+user"\n'
        'paths = ["/contract-probe"]\n'
    )


def read_back(frames: list[ServerSentEvent]) -> list[Event]:
    """Each frame through the monitor's decoder; each must be its struct and encode back to what was sent."""
    out: list[Event] = []
    for frame in frames:
        event = decode(frame.data, frame.event)
        assert not isinstance(event, Undecodable), (frame.event, event.reason, frame.data)
        assert event_type(event) == frame.event
        assert msgspec.to_builtins(event) == json.loads(frame.data), frame.data  # every field read, none added
        if event.id is not None:  # an event without one leaves the stream's last id as it was
            assert event.id == int(frame.id)
        out.append(event)
    return out


def id_of(event: Received) -> int | None:
    return None if isinstance(event, Undecodable) else event.id


async def wait_for(check: Any, what: str, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def drive(client: httpx.AsyncClient, srv: LiveServer, redis: RedisServer, reader: Reader) -> None:
    """A run that stores, is refused, is throttled and finishes; live edits; the limiter's store going away."""
    token = srv.token("alice")
    admin = srv.admin_headers()
    r = await client.post(
        srv.url + c.RUNS_PATH,
        headers=auth(token),
        json={"run": "contract-1", "total_records": 30, "total_batches": 3, "batch_size": 10, "mode": "sequential"},
    )
    assert r.status_code == 201, r.text

    async def sync(n: int, body: bytes) -> int:
        headers = {**auth(token), c.HEADER_RUN: "contract-1", c.HEADER_BATCH: str(n), c.HEADER_ATTEMPT: "1"}
        return (await client.post(srv.url + c.SYNC_PATH, content=body, headers=headers)).status_code

    assert await sync(0, batch(10, "contract")) == 200
    assert await sync(1, b"{nope") == 400
    assert (await client.put(srv.url + c.FAULTS_PATH, headers=admin, json={"error_rate": 1.0})).status_code == 200
    assert await sync(2, batch(10, "contract", 10)) == 503  # an injected fault: refused after its body was read
    assert (await client.put(srv.url + c.FAULTS_PATH, headers=admin, json={"error_rate": 0})).status_code == 200
    assert await sync(2, batch(10, "contract", 10)) == 429  # the fourth of three an hour
    limits = {"rule": "sync/user", "limit": 100}
    assert (await client.put(srv.url + c.LIMITS_PATH, headers=admin, json=limits)).status_code == 200
    mallory = auth(srv.token("mallory"))
    assert (await client.get(srv.url + "/contract-probe", headers=mallory)).status_code == 404  # let through
    assert (await client.get(srv.url + c.COUNT_PATH, headers=mallory)).status_code == 403  # banned
    verdict = {"status": "partial", "ok_batches": 1, "failed_batches": 2, "seconds": 0.5}
    r = await client.post(f"{srv.url}{c.RUNS_PATH}/contract-1/finish", headers=auth(token), json=verdict)
    assert r.status_code == 200, r.text
    await reader.wait_for(lambda evs: any(e.event == EV_STATS for e in evs))
    await reader.wait_for(lambda evs: any(e.event == EV_LIMITER_UNBAN for e in evs))  # swept within a second

    def store_said(status: str) -> bool:
        return any(e.event == EV_LIMITER_STORE and json.loads(e.data)["status"] == status for e in reader.events)

    redis.kill()
    for _ in range(100):  # requests are let through meanwhile, and the first one finds the store gone
        assert (await client.get(srv.url + c.COUNT_PATH, headers=auth(token))).status_code == 200
        if store_said("down"):
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(redis.start)
    for _ in range(400):
        await client.get(srv.url + c.COUNT_PATH, headers=auth(token))
        if store_said("up"):
            break
        await asyncio.sleep(0.05)
    # The same Redis carries the event stream (server.bus defaults to the limiter's store): it went too.
    await reader.wait_for(lambda evs: any(e.event == EV_BUS_UP for e in evs))


async def test_every_event_a_real_server_publishes_is_read_whole_by_the_monitor(
    server_factory: ServerFactory, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = await asyncio.to_thread(server_factory, config=config(redis_server.url))
    url = f"{srv.url}{c.EVENTS_PATH}?types={ALL_TYPES}"  # the filter takes every type the union names
    followed: list[Received] = []
    states: list[str] = []
    follower = StreamFollower(
        srv.url, srv.admin_token, lambda e, _id: followed.append(e), lambda s, _d: states.append(s)
    )
    following = asyncio.create_task(follower.run())
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client, Reader(client, url, srv.admin_headers()) as reader:
            await wait_for(lambda: CONNECTED in states, "the monitor's stream to connect")
            await drive(client, srv, redis_server, reader)
            live = read_back(reader.events)
            # A resume from an id this server never sent: stream.reset, then everything it holds.
            headers = {**srv.admin_headers(), c.HEADER_LAST_EVENT_ID: "999999999"}
            async with Reader(client, url, headers) as resumed:
                await resumed.wait_for(lambda evs: sum(e.event == EV_RUN_FINISHED for e in evs) == 1)
            replayed = read_back(resumed.events)
            last = max(e.id for e in live if e.id is not None)
            await wait_for(lambda: any((id_of(e) or 0) >= last for e in followed), "the monitor to catch up")
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    assert isinstance(replayed[0], StreamReset) and replayed[0].last_event_id == 999999999
    # The monitor's own follower decoded the same events, none unreadable.
    mine = {id_of(e): e for e in followed if (id_of(e) or last + 1) <= last}
    assert not [e for e in followed if isinstance(e, Undecodable)]
    assert mine == {e.id: e for e in live if e.id is not None}

    fields = {type(e): set(msgspec.to_builtins(e)) for e in live}
    assert {"records"} <= fields[BatchRejected]  # the 503's, read after the body; the 400's has none
    kinds = {e.what for e in live if isinstance(e, ConfigChanged)}
    assert kinds == {"faults", "limits"}
    assert [e.status for e in live if isinstance(e, LimiterStore)] == ["down", "up"]
    assert [event_type(e) for e in live if isinstance(e, BusDown | BusUp)] == [EV_BUS_DOWN, EV_BUS_UP]
    seen = {event_type(e) for e in [*live, *replayed]}
    dropped = await a_subscriber_that_falls_behind(tmp_path, monkeypatch)
    assert seen | {event_type(dropped)} == set(EVENT_TYPES)


async def a_subscriber_that_falls_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StreamDropped:
    """A real subscriber whose queue overflows while its stream pauses between writes: stream.dropped."""
    monkeypatch.setattr(sse_endpoint, "COALESCE_S", 2.0)  # the stream sleeps this long after each write
    async with serve(tmp_path / "inproc") as srv, httpx.AsyncClient(timeout=TIMEOUT) as client:
        srv.bus.subscriber_queue = 2
        url = f"{srv.url}{c.EVENTS_PATH}?types={EV_CONFIG_CHANGED},batch.rejected"
        async with Reader(client, url, srv.admin_headers()) as reader:
            edit = await client.put(srv.url + c.FAULTS_PATH, headers=srv.admin_headers(), json={"latency_ms": 0})
            assert edit.status_code == 200
            await reader.wait_for(lambda evs: len(evs) == 1)  # written; the stream now sleeps
            refused = [client.post(srv.url + c.SYNC_PATH, content=batch(1)) for _ in range(6)]  # no token: 401s
            assert [r.status_code for r in await asyncio.gather(*refused)] == [401] * 6
            await reader.wait_for(lambda evs: any(e.event == EV_STREAM_DROPPED for e in evs))
        events = read_back(reader.events)
    assert [event_type(e) for e in events] == [EV_CONFIG_CHANGED, "batch.rejected", "batch.rejected", EV_STREAM_DROPPED]
    gap = events[-1]
    assert isinstance(gap, StreamDropped) and gap.missed == 4 and gap.id is None
    assert gap.first_id is not None and gap.last_id == gap.first_id + 3
    return gap


def test_the_union_is_what_the_server_makes() -> None:
    """Every event struct is made somewhere in server/ (by name, or by msgspec.convert into it), and no other."""
    names = {cls.__name__ for cls in EVENT_CLASSES}
    made: set[str] = set()
    for path in (ROOT / "server").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in names:
                made.add(func.id)
            elif isinstance(func, ast.Attribute) and func.attr == "convert" and len(node.args) == 2:
                target = node.args[1]
                if isinstance(target, ast.Name):
                    made.add(target.id)
    assert made & names == names
    assert set(EVENT_TYPES) == {str(cls.__struct_config__.tag) for cls in EVENT_CLASSES}
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES)) == len(EVENT_CLASSES)


def test_the_protocol_table_is_the_structs() -> None:
    """docs/protocol.md's table of types lists each struct's fields, in order, optional ones in brackets."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("### Event types", 1)[1].split("\n\n- ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z.]+)` \| (.+) \|$", section, re.MULTILINE))
    expected = {}
    for cls in EVENT_CLASSES:
        shown = []
        for f in msgspec.structs.fields(cls):
            if f.name in ("id", "ts"):
                continue
            optional = f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT
            shown.append(f"[{f.name}]" if optional else f.name)
        expected[str(cls.__struct_config__.tag)] = ", ".join(shown)
    assert rows == expected
