"""Live configuration across `python -m server` processes on one redis-server: an admin edit on one worker is
applied by every worker within 100 ms, is one config.changed event, and is what a worker started later serves."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from syncbed import contract as c
from tests.conftest import LiveServer, RedisServer, ServerFactory
from tests.server.helpers import TIMEOUT, Reader, data
from tests.server.test_bus_redis_cluster import cluster_config, start

pytestmark = pytest.mark.redis
log = logging.getLogger(__name__)

WITHIN_S = 0.1


async def seen_after(client: httpx.AsyncClient, srv: LiveServer, path: str, check: object, since: float) -> float:
    """Seconds from `since` until `srv` answers GET `path` with what `check` wants (polled every few ms)."""
    assert callable(check)
    while time.perf_counter() - since < 5.0:
        r = await client.get(srv.url + path, headers=srv.admin_headers())
        if check(r.json()):
            return time.perf_counter() - since
        await asyncio.sleep(0.002)
    raise AssertionError(f"{srv.url} never showed the edit: {r.json()}")


def rule_of(view: dict[str, object], name: str) -> dict[str, object]:
    rules = view["rules"]
    assert isinstance(rules, list)
    [rule] = [r for r in rules if r["name"] == name]
    return dict(rule)


async def test_an_edit_on_one_worker_reaches_every_worker_within_100_ms_as_one_event(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    a, b, c3 = await start(server_factory, cluster_config(redis_server.url, limits="enabled = true\n"), 3)
    url = c3.url + c.EVENTS_PATH + "?types=config.changed"
    delays: dict[str, list[float]] = {"faults": [], "limits": []}
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Reader(client, url, c3.admin_headers()) as on_c:
        for latency in (120, 240, 360):
            began = time.perf_counter()
            r = await client.put(a.url + c.FAULTS_PATH, headers=a.admin_headers(), json={"latency_ms": latency})
            assert r.status_code == 200 and r.json()["latency_ms"] == latency
            for srv in (b, c3):
                wanted = lambda v, want=latency: v["latency_ms"] == want  # noqa: E731
                delays["faults"].append(await seen_after(client, srv, c.FAULTS_PATH, wanted, began))
        for limit in (7, 8, 9):
            began = time.perf_counter()
            edit = {"rule": "sync/user", "limit": limit, "period": "2s"}
            r = await client.put(b.url + c.LIMITS_PATH, headers=b.admin_headers(), json=edit)
            assert r.status_code == 200, r.text
            for srv in (a, c3):
                wanted = lambda v, want=limit: rule_of(v, "sync/user")["limit"] == want  # noqa: E731
                delays["limits"].append(await seen_after(client, srv, c.LIMITER_PATH, wanted, began))
        await asyncio.sleep(0.5)  # any copy of an event would be here by now
        events = [data(e) for e in on_c.events if e.data]
    shown = {k: [round(d * 1000, 1) for d in v] for k, v in delays.items()}
    log.warning("edit seen by the other workers after (ms): %s", shown)
    assert max(delays["faults"] + delays["limits"]) < WITHIN_S, delays
    assert [(e["what"], e.get("latency_ms"), e.get("limit")) for e in events] == [
        ("faults", 120, None), ("faults", 240, None), ("faults", 360, None),
        ("limits", None, 7), ("limits", None, 8), ("limits", None, 9),
    ]  # fmt: skip
    assert rule_of((await _view(a)), "sync/user")["period"] == 2.0


async def _view(srv: LiveServer) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        view: dict[str, object] = (await client.get(srv.url + c.LIMITER_PATH, headers=srv.admin_headers())).json()
    return view


async def test_a_worker_started_after_the_edits_serves_them_and_edits_of_two_fields_both_stay(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    config = cluster_config(redis_server.url, limits="enabled = true\n")
    a, b = await start(server_factory, config, 2)
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        # Two edits of different fields on two workers at once: neither undoes the other.
        r1, r2 = await asyncio.gather(
            client.put(a.url + c.FAULTS_PATH, headers=a.admin_headers(), json={"latency_ms": 50}),
            client.put(b.url + c.FAULTS_PATH, headers=b.admin_headers(), json={"error_rate": 0.25}),
        )
        assert (r1.status_code, r2.status_code) == (200, 200)
        r = await client.put(
            a.url + c.LIMITS_PATH, headers=a.admin_headers(), json={"rule": "sync/ip", "enabled": False}
        )
        assert r.status_code == 200
        both = {"latency_ms": 50, "jitter_ms": 0, "error_rate": 0.25, "reset_rate": 0.0}
        for srv in (a, b):
            await seen_after(client, srv, c.FAULTS_PATH, lambda v: v == both, time.perf_counter())
        late = await asyncio.to_thread(server_factory, config=config)
        # Its first answers already carry the cluster's settings, not its config file's.
        assert (await client.get(late.url + c.FAULTS_PATH, headers=late.admin_headers())).json() == both
        view = (await client.get(late.url + c.LIMITER_PATH, headers=late.admin_headers())).json()
        assert rule_of(view, "sync/ip")["enabled"] is False
        # And after a restart of one that was there all along.
        await asyncio.to_thread(b.restart)
        assert (await client.get(b.url + c.FAULTS_PATH, headers=b.admin_headers())).json() == both


async def test_an_edit_whose_announcement_was_lost_is_applied_within_a_quiet_second(
    redis_server: RedisServer, server_factory: ServerFactory
) -> None:
    """The hash and the version changed with no PUBLISH (as when a subscription died without a word)."""
    import redis.asyncio as aioredis

    from server.cluster_config import CONFIG_KEY, VERSION_KEY, fault_fields

    [a] = await start(server_factory, cluster_config(redis_server.url, limits="enabled = true\n"), 1)
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        await r.hset(CONFIG_KEY, mapping=fault_fields({"latency_ms": 77}))
        await r.incr(VERSION_KEY)
    finally:
        await r.aclose()
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        took = await seen_after(client, a, c.FAULTS_PATH, lambda v: v["latency_ms"] == 77, time.perf_counter())
    assert took < 2.5, took
