"""Each response style (limits.response) over HTTP: a real server's 200s, 429s and 403s, byte for byte."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from server.refusals import STYLES, window_retry_after
from syncbed.contract import (
    HEADER_RATELIMIT,
    HEADER_RATELIMIT_POLICY,
    HEADER_RETRY_AFTER,
    LIMITER_PATH,
    RACK_BLOCKED_BODY,
    RACK_THROTTLED_BODY,
    RESPONSE_STYLES,
)
from syncbed.events import EV_STATS
from tests.server.test_throttle import T0, Clock, post_sync, serve

# What every answer carries whatever the style: uvicorn's and the body's framing.
FRAMING = {"date", "server", "content-type", "content-length"}
FIELDS = {HEADER_RATELIMIT.lower(), HEADER_RATELIMIT_POLICY.lower()}


async def sixth(srv_url_client: httpx.AsyncClient, token: str) -> tuple[list[httpx.Response], httpx.Response]:
    ok = [await post_sync(srv_url_client, token) for _ in range(5)]
    return ok, await post_sync(srv_url_client, token)


@pytest.mark.parametrize("style", RESPONSE_STYLES)
async def test_the_sixth_sync_is_refused_in_the_style_and_only_its_headers_are_sent(tmp_path: Path, style: str) -> None:
    async with serve(tmp_path, Clock(T0 + 0.58), response=style) as srv:
        token = srv.token("alice")
        async with srv.client() as c:
            ok, r = await sixth(c, token)
    s = STYLES[style]
    assert [o.status_code for o in ok] == [200] * 5
    assert all((set(o.headers) >= FIELDS) == s.fields for o in ok)
    assert r.status_code == 429
    extra = set(r.headers) - FRAMING
    want = (FIELDS if s.fields else set()) | ({HEADER_RETRY_AFTER.lower()} if s.retry_after else set())
    assert extra == want
    if s.body == "rack":
        assert r.headers["content-type"] == "text/plain"
        assert r.content == RACK_THROTTLED_BODY == b"Retry later\n"
    elif s.body == "json+retry":
        assert r.json()["retry_after"] == 0.42
    else:
        assert r.json() == {"error": "rate_limited", "message": "Rate limit sync/user exceeded.", "rule": "sync/user"}
    if s.retry_after:
        assert r.headers[HEADER_RETRY_AFTER] == "1"  # a 1 s window: 1 - (whole seconds % 1), or ceil(0.42)


async def test_rack_attack_retry_after_is_the_period_less_the_whole_seconds_into_the_window(tmp_path: Path) -> None:
    # T0 is a multiple of 300: 17.9 s into req/ip's window, Rack::Attack says 300 - 17 = 283 (its epoch_time
    # is a whole second), where the exact wait is 282.1.
    clock = Clock(T0 + 17.9)
    async with serve(tmp_path, clock, response="rack-attack-retry-after") as srv:
        srv.state.limiter.update_limit("req/ip", limit=2)
        async with srv.client() as c:
            got = [await c.get(LIMITER_PATH) for _ in range(3)]
    assert [r.status_code for r in got] == [401, 401, 429]
    assert got[2].headers[HEADER_RETRY_AFTER] == "283" and got[2].content == b"Retry later\n"
    assert window_retry_after(300, T0 + 17.9) == 283
    assert window_retry_after(1, T0 + 0.999) == 1
    assert window_retry_after(0.25, T0 + 0.1) == 1  # never 0: a client waits at least a second


@pytest.mark.parametrize("style", RESPONSE_STYLES)
async def test_the_blocklist_answers_403_in_the_style(tmp_path: Path, style: str) -> None:
    async with serve(tmp_path, response=style, blocklist=("127.0.0.1",)) as srv, srv.client() as c:
        r = await c.get("/api/v1/data/count")
        health = await c.get("/healthz")
    for answer in (r, health):
        assert answer.status_code == 403
        if STYLES[style].body == "rack":
            assert answer.headers["content-type"] == "text/plain" and answer.content == RACK_BLOCKED_BODY
            assert set(answer.headers) <= FRAMING
        else:
            assert answer.json()["error"] == "forbidden"


@pytest.mark.parametrize("style", ["syncbed", "rack-attack"])
async def test_the_style_is_in_the_limiter_view_and_the_stats(tmp_path: Path, style: str) -> None:
    async with serve(tmp_path, response=style) as srv:
        async with srv.client(Authorization=f"Bearer {srv.state.admin_token}") as c:
            view = (await c.get(LIMITER_PATH)).json()
        for _ in range(100):  # the 1 Hz stats event: within 3 s
            if srv.events(EV_STATS):
                break
            await asyncio.sleep(0.03)
        stats = srv.events(EV_STATS)
    assert view["response"] == style
    assert stats and stats[0]["response"] == style


def test_every_style_is_described() -> None:
    assert tuple(STYLES) == RESPONSE_STYLES
