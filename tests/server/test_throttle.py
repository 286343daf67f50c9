"""The rule engine: order, keys, modes, live edits, headers; in process, then over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from starlette.applications import Starlette

from server import tokens
from server.app import create_app
from server.auth import Caller
from server.config import LimitsSettings, ServerSettings, Settings, ThrottleRule, merge_throttles
from server.events import EventBus
from server.refusals import ratelimit_headers
from server.rule import sf_string
from server.serving import uvicorn_options
from server.state import AppState
from server.throttle import Limiter, open_limiter
from syncbed.contract import (
    COUNT_PATH,
    E_FORBIDDEN,
    HEADER_ATTEMPT,
    HEADER_BATCH,
    HEADER_RATELIMIT,
    HEADER_RATELIMIT_POLICY,
    HEADER_RETRY_AFTER,
    HEADER_RUN,
    LIMITER_PATH,
    SYNC_PATH,
)
from syncbed.events import EV_REQUEST_THROTTLED
from syncbed.paths import SERVER_DB_FILE
from syncbed.responses import HotKey, LimiterView
from tests.conftest import LiveServer

T0 = 1_700_000_400.0


class Clock:
    def __init__(self, t: float = T0 + 0.25) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


USERS = {"Bearer a": Caller("alice"), "Bearer b": Caller("bob"), "Bearer p": Caller("pat", "premium")}


async def caller_for(header: str | None) -> Caller | None:
    return USERS.get(header or "")


def limiter(clock: Clock | None = None, **kw: object) -> Limiter:
    return Limiter(LimitsSettings(**kw), caller_for=caller_for, clock=clock or Clock())  # type: ignore[arg-type]


async def sync(lim: Limiter, ip: str = "10.0.0.1", auth: str | None = "Bearer a") -> tuple[bool, str | None]:
    v = await lim.check("POST", SYNC_PATH, ip, auth)
    return v.refused is None and not v.blocked, v.refused.name if v.refused else None


async def test_seed_defaults_sixth_sync_of_a_user_is_refused_by_sync_user() -> None:
    lim = limiter()
    got = [await sync(lim) for _ in range(6)]
    assert got == [(True, None)] * 5 + [(False, "sync/user")]


async def test_eleventh_sync_from_one_ip_is_refused_by_sync_ip_across_users() -> None:
    lim = limiter()
    auths = ["Bearer a"] * 5 + ["Bearer b"] * 5 + [None]
    got = [await sync(lim, auth=a) for a in auths]
    assert got[:10] == [(True, None)] * 10
    assert got[10] == (False, "sync/ip")


async def test_two_users_on_two_ips_each_get_their_five() -> None:
    lim = limiter()
    a = [await sync(lim, "10.0.0.1", "Bearer a") for _ in range(6)]
    b = [await sync(lim, "10.0.0.2", "Bearer b") for _ in range(6)]
    assert [ok for ok, _ in a] == [True] * 5 + [False]
    assert [ok for ok, _ in b] == [True] * 5 + [False]


async def test_without_a_valid_token_user_rules_key_by_ip() -> None:
    lim = limiter()
    v = await lim.check("POST", SYNC_PATH, "10.0.0.9", "Bearer nope")
    assert [(r.name, r.counter.algorithm.top(1, T0 + 0.25)[0].key) for r, _ in v.matched] == [
        ("req/ip", "ip:10.0.0.9"),
        ("sync/ip", "ip:10.0.0.9"),
        ("sync/user", "ip:10.0.0.9"),
    ]
    assert v.user is None


async def test_a_failing_user_lookup_keys_by_address_instead_of_failing(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(header: str | None) -> Caller | None:
        raise OSError("database is locked")

    lim = Limiter(LimitsSettings(), caller_for=broken, clock=Clock())
    v = await lim.check("POST", SYNC_PATH, "10.0.0.5", "Bearer a")
    assert v.refused is None and v.user is None
    assert any("could not look up the user" in r.getMessage() for r in caplog.records)


async def test_first_refusal_stops_counting_later_rules_and_tracks() -> None:
    rules = (ThrottleRule("one", 1, 60.0, "ip"), ThrottleRule("two", 100, 60.0, "ip"))
    lim = limiter(throttles=rules, tracks=(ThrottleRule("one", 1000, 60.0, "ip"),))
    for _ in range(3):
        await lim.check("GET", "/x", "10.0.0.1")
    two, track = lim.rule("two"), lim.rule("one", "track")
    assert two.counter.algorithm.top(1, T0 + 0.25)[0].count == 1  # only the first request got that far
    assert track.counter.algorithm.top(1, T0 + 0.25)[0].count == 1  # tracks see admitted requests only
    assert lim.rule("one").counter is not track.counter


async def test_safelist_skips_everything_and_blocklist_wins_over_throttles() -> None:
    lim = limiter(safelist=("10.1.0.0/16",), blocklist=("10.2.0.0/16", "10.1.2.3"))
    for _ in range(20):
        v = await lim.check("POST", SYNC_PATH, "10.1.2.3", "Bearer a")
        assert v.safelisted and not v.matched and v.refused is None  # safelist is checked first
    v = await lim.check("GET", "/", "10.2.9.9")
    assert v.blocked and not v.matched
    assert (await lim.check("GET", "/", "10.3.0.1")).blocked is False


async def test_disabled_turns_throttles_off_but_not_the_blocklist() -> None:
    lim = limiter(enabled=False, blocklist=("10.2.0.0/16",))
    assert [await sync(lim) for _ in range(50)] == [(True, None)] * 50
    assert (await lim.check("GET", "/", "10.2.0.1")).blocked


async def test_dry_run_decides_and_reports_but_lets_through_and_keeps_counting() -> None:
    lim = limiter(dry_run=True)
    verdicts = [await lim.check("POST", SYNC_PATH, "10.0.0.1", "Bearer a") for _ in range(12)]
    assert [v.refused.name if v.refused else None for v in verdicts][4:] == [None] + ["sync/user"] * 5 + ["sync/ip"] * 2
    assert all(len(v.matched) == 3 for v in verdicts)  # every throttle still counted


async def test_methods_and_paths_select_requests() -> None:
    rule = ThrottleRule("api", 1, 60.0, "ip", ("/api/*", "/exact"), ("POST",))
    lim = limiter(throttles=(rule,))
    assert not (await lim.check("GET", "/api/x", "1.1.1.1")).matched
    assert not (await lim.check("POST", "/exactly", "1.1.1.1")).matched
    assert (await lim.check("POST", "/exact", "1.1.1.1")).matched
    assert (await lim.check("POST", "/api/deep/path", "1.1.1.1")).refused is not None


async def test_ip_plus_user_key() -> None:
    lim = limiter(throttles=(ThrottleRule("both", 1, 60.0, "ip+user"),))
    assert (await lim.check("GET", "/", "1.1.1.1", "Bearer a")).refused is None
    assert (await lim.check("GET", "/", "1.1.1.2", "Bearer a")).refused is None
    v = await lim.check("GET", "/", "1.1.1.1", "Bearer a")
    assert v.refused is not None and v.key == "ip:1.1.1.1+user:alice"


async def test_update_limit_changes_the_limit_live_and_a_period_change_starts_fresh() -> None:
    clock = Clock()
    lim = limiter(clock)
    for _ in range(5):
        await sync(lim)
    assert await sync(lim) == (False, "sync/user")
    out = lim.update_limit("sync/user", limit=8)
    assert out.limit == 8 and out.kind == "throttle"
    assert await sync(lim) == (True, None)  # counts kept (7 of 8), limit raised
    lim.update_limit("sync/user", period="2s")
    assert lim.rule("sync/user").period == 2.0
    assert lim.rule("sync/user").policy == '"sync/user";q=8;w=2'
    lim.update_limit("sync/user", enabled=False)
    assert [r["enabled"] for r in lim.snapshot()] == [True, True, False]
    with pytest.raises(KeyError):
        lim.update_limit("nope", limit=1)
    for bad in ({"limit": -1}, {"limit": True}, {"period": "soon"}, {"period": 0}, {"enabled": "yes"}):
        with pytest.raises(ValueError):
            lim.update_limit("sync/user", **bad)


async def test_top_keys_and_describe() -> None:
    lim = limiter(tracks=(ThrottleRule("sync/user", 1000, 60.0, "user", (SYNC_PATH,)),))
    for _ in range(3):
        await sync(lim, "10.0.0.1", "Bearer a")
    await sync(lim, "10.0.0.2", "Bearer b")
    top = lim.top_keys()
    assert top["sync/user"] == [{"key": "user:alice", "count": 3}, {"key": "user:bob", "count": 1}]
    assert top["track:sync/user"][0] == {"key": "user:alice", "count": 3}
    d = lim.describe()
    assert d.store == "memory" and d.store_status == "up" and d.enabled is True
    assert [(r.name, r.kind) for r in d.rules] == [
        ("req/ip", "throttle"), ("sync/ip", "throttle"), ("sync/user", "throttle"), ("sync/user", "track"),
    ]  # fmt: skip
    assert d.rules[2].hot[0] == HotKey("user:alice", 3, 0.75)


async def test_ratelimit_fields_are_structured_field_lists() -> None:
    lim = limiter()
    v = await lim.check("POST", SYNC_PATH, "10.0.0.1", "Bearer a")
    headers = dict(ratelimit_headers(v.matched))
    assert headers[b"ratelimit-policy"] == b'"req/ip";q=300;w=300, "sync/ip";q=10;w=1, "sync/user";q=5;w=1'
    assert headers[b"ratelimit"] == b'"req/ip";r=299;t=300, "sync/ip";r=9;t=1, "sync/user";r=4;t=1'
    assert sf_string('we"ird\\näme') == '"we\\"ird\\\\n?me"'


# --- over HTTP: a real uvicorn server in this process, the limiter's clock frozen ------------------


@dataclass
class InProc:
    url: str
    app: Starlette
    data_dir: Path

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.syncbed
        return state

    def token(self, user: str) -> str:
        return tokens.create_token_at(self.data_dir / SERVER_DB_FILE, user)

    def client(self, source: str = "127.0.0.1", **headers: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=source)
        return httpx.AsyncClient(base_url=self.url, transport=transport, headers=headers, timeout=30)

    def events(self, type: str = EV_REQUEST_THROTTLED) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(e.event) for e in self.state.bus.buffer if e.type == type]


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, clock: Clock | None = None, **limits: object) -> AsyncIterator[InProc]:
    settings = Settings(limits=LimitsSettings(**limits))  # type: ignore[arg-type]
    app = create_app(settings, data_dir=tmp_path)
    server = uvicorn.Server(
        uvicorn.Config(app, **uvicorn_options(host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    )
    task = asyncio.create_task(server.serve())
    for _ in range(600):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    srv = InProc(f"http://127.0.0.1:{port}", app, tmp_path)
    srv.state.limiter.clock = clock or Clock()
    try:
        yield srv
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def batch(n: int = 1) -> dict[str, object]:
    return {"pageVisits": [{"id": uuid.uuid4().hex, "url": "https://example.com/", "visitedAt": 1} for _ in range(n)]}


async def post_sync(c: httpx.AsyncClient, token: str | None, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return await c.post(SYNC_PATH, json=batch(), headers={**auth, **headers})


async def test_http_sixth_sync_is_refused_with_every_field_then_admitted_after_the_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncbed.limiter")
    clock = Clock(T0 + 0.58)
    async with serve(tmp_path, clock) as srv:
        token = srv.token("alice")
        async with srv.client() as c:
            ok = [await post_sync(c, token, **{HEADER_RUN: "r1", HEADER_BATCH: str(i)}) for i in range(5)]
            assert [r.status_code for r in ok] == [200] * 5
            assert (
                ok[0].headers[HEADER_RATELIMIT_POLICY]
                == '"req/ip";q=300;w=300, "sync/ip";q=10;w=1, "sync/user";q=5;w=1'
            )
            assert ok[4].headers[HEADER_RATELIMIT] == '"req/ip";r=295;t=300, "sync/ip";r=5;t=1, "sync/user";r=0;t=1'
            r = await post_sync(c, token, **{HEADER_RUN: "r1", HEADER_BATCH: "5", HEADER_ATTEMPT: "2"})
            assert r.status_code == 429
            assert r.json() == {
                "error": "rate_limited",
                "message": "Rate limit sync/user exceeded: 5 requests per 1 s; retry in 0.42 s.",
                "rule": "sync/user",
                "retry_after": 0.42,
            }
            assert r.headers[HEADER_RETRY_AFTER] == "1"
            assert r.headers[HEADER_RATELIMIT_POLICY] == '"req/ip";q=300;w=300, "sync/ip";q=10;w=1, "sync/user";q=5;w=1'
            assert r.headers[HEADER_RATELIMIT] == '"req/ip";r=294;t=300, "sync/ip";r=4;t=1, "sync/user";r=0;t=1'
            clock.t += 0.42
            r = await post_sync(c, token)
            assert r.status_code == 200 and r.headers[HEADER_RATELIMIT].endswith('"sync/user";r=4;t=1')
        [event] = srv.events()
        assert {k: v for k, v in event.items() if k not in ("id", "ts", "type")} == {
            "run": "r1", "batch": 5, "attempt": 2, "user": "alice", "ip": "127.0.0.1",
            "rule": "sync/user", "key": "user:alice", "retry_after": 0.42, "dry_run": False,
        }  # fmt: skip
        [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("throttled")]
        assert "rule=sync/user key=user:alice count=6 limit=5" in line
        assert srv.state.counters.throttled == 1


async def test_http_per_user_isolation_and_per_ip_limit(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv:
        a, b, c_, d = (srv.token(u) for u in ("alice", "bob", "carol", "dave"))
        async with srv.client("127.0.0.1") as one, srv.client("127.0.0.2") as two:
            # Two users on two addresses at 5/s each: both get their 5, and only 5.
            ra = [(await post_sync(one, a)).status_code for _ in range(6)]
            rb = [(await post_sync(two, b)).status_code for _ in range(6)]
            assert ra == rb == [200] * 5 + [429]
            # One address, three users: the 11th request of that address in the second is refused.
            rc = [(await post_sync(two, c_)).status_code for _ in range(4)]
            rd = [await post_sync(two, d) for _ in range(2)]
            assert rc == [200] * 4 and rd[0].status_code == 429  # 6 + 4 = 10 before it
            assert rd[0].json()["rule"] == "sync/ip"
        assert [e["ip"] for e in srv.events()] == ["127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.2"]


async def test_http_general_rule_per_ip(tmp_path: Path) -> None:
    rules = merge_throttles((ThrottleRule("req/ip", 7, 300.0, "ip"),))
    async with serve(tmp_path, throttles=rules) as srv, srv.client() as c:
        got = [(await c.get(COUNT_PATH)).status_code for _ in range(9)]
        assert got == [401] * 7 + [429, 429]
        r = await c.get("/no/such/page")
        assert r.status_code == 429 and r.json()["rule"] == "req/ip"


async def test_http_safelist_and_blocklist(tmp_path: Path) -> None:
    tiny = (ThrottleRule("req/ip", 1, 300.0, "ip"),)
    async with (
        serve(tmp_path, throttles=tiny, safelist=("127.0.0.1",), blocklist=("127.0.0.2/32",)) as srv,
        srv.client("127.0.0.1") as safe,
        srv.client("127.0.0.2") as bad,
    ):
        for _ in range(5):
            r = await safe.get(COUNT_PATH)
            assert r.status_code == 401 and HEADER_RATELIMIT not in r.headers
        r = await bad.get("/healthz")
        assert r.status_code == 403 and r.json()["error"] == E_FORBIDDEN


async def test_http_forwarded_for_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    per_ip = (ThrottleRule("req/ip", 2, 300.0, "ip"),)
    async with serve(tmp_path, throttles=per_ip, trusted_proxies=("127.0.0.1",)) as srv:
        async with srv.client() as c:
            for client in ("198.51.100.1", "198.51.100.2"):
                xff = {"X-Forwarded-For": f"6.6.6.6, {client}"}
                got = [(await c.get(COUNT_PATH, headers=xff)).status_code for _ in range(3)]
                assert got == [401, 401, 429]
        async with srv.client("127.0.0.2") as untrusted:
            got = [
                (await untrusted.get(COUNT_PATH, headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
                for i in range(3)
            ]
            assert got == [401, 401, 429]  # the header is ignored: all three are 127.0.0.2
        assert [(e["ip"], e["key"]) for e in srv.events()] == [
            ("198.51.100.1", "ip:198.51.100.1"),
            ("198.51.100.2", "ip:198.51.100.2"),
            ("127.0.0.2", "ip:127.0.0.2"),
        ]


async def test_http_disabled_and_dry_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncbed.limiter")
    async with serve(tmp_path / "off", enabled=False) as srv:
        token = srv.token("alice")
        async with srv.client() as c:
            got = [await post_sync(c, token) for _ in range(12)]
        assert {r.status_code for r in got} == {200} and HEADER_RATELIMIT not in got[-1].headers
        assert srv.events() == []
    async with serve(tmp_path / "dry", dry_run=True) as srv:
        token = srv.token("alice")
        async with srv.client() as c:
            got = [await post_sync(c, token) for _ in range(7)]
        assert {r.status_code for r in got} == {200}
        assert got[-1].headers[HEADER_RATELIMIT].endswith('"sync/user";r=0;t=1')
        events = srv.events()
        assert [(e["rule"], e["dry_run"]) for e in events] == [("sync/user", True)] * 2
        assert sum("throttled (dry run) rule=sync/user" in r.getMessage() for r in caplog.records) == 2


async def test_http_limiter_view_needs_the_admin_and_shows_hot_keys(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv:
        token = srv.token("alice")
        async with srv.client() as c:
            for _ in range(3):
                await post_sync(c, token)
            assert (await c.get(LIMITER_PATH)).status_code == 401
            assert (await c.get(LIMITER_PATH, headers={"Authorization": f"Bearer {token}"})).status_code == 403
            admin = {"Authorization": f"Bearer {srv.state.admin_token}"}
            assert (await c.get(LIMITER_PATH, params={"top": "x"}, headers=admin)).status_code == 400
            body = (await c.get(LIMITER_PATH, headers=admin)).content
        view = msgspec.json.decode(body, type=LimiterView)
        assert msgspec.json.encode(view) == body  # every field the server sent is one the type reads
        assert view.store == "memory" and view.store_status == "up"
        by_name = {r.name: r for r in view.rules if r.kind == "throttle"}
        assert by_name["sync/user"].hot == [HotKey("user:alice", 3, 0.75)]
        assert by_name["req/ip"].hot[0].key == "ip:127.0.0.1"
        assert srv.state.limiter.top_keys()["sync/user"] == [{"key": "user:alice", "count": 3}]


async def test_http_live_limit_edit_applies_to_the_next_request(tmp_path: Path) -> None:
    async with serve(tmp_path) as srv:
        token = srv.token("alice")
        async with srv.client() as c:
            srv.state.limiter.update_limit("sync/user", limit=1)
            assert [(await post_sync(c, token)).status_code for _ in range(2)] == [200, 429]
            srv.state.limiter.update_limit("sync/user", enabled=False)
            assert (await post_sync(c, token)).status_code == 200


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window", "gcra"])
async def test_http_200_concurrent_requests_admit_exactly_the_limit(tmp_path: Path, algorithm: str) -> None:
    rule = ThrottleRule("exact", 37, 60.0, "ip", ("/exact",), (), algorithm)  # type: ignore[arg-type]
    async with serve(tmp_path, throttles=(rule,)) as srv:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=srv.url, limits=limits, timeout=60) as c:
            got = await asyncio.gather(*(c.get("/exact") for _ in range(200)))
    codes = [r.status_code for r in got]
    assert codes.count(429) == 163 and codes.count(404) == 37  # the path has no route: passing means 404


async def test_memory_store_with_several_workers_warns_that_limits_multiply(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(server=ServerSettings(workers=3))
    lim = await open_limiter(settings, EventBus(), None)
    assert any("multiplied by up to 3" in r.getMessage() for r in caplog.records)
    await lim.aclose()


# --- the original manual test, against `python -m server` with its defaults and the real clock -----


def test_live_server_sixth_rapid_sync_of_a_user_is_refused_then_admitted(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        for attempt in range(3):
            token = live_server.token(f"user{attempt}")
            headers = {"Authorization": f"Bearer {token}"}
            # Start just after a 1 s window opens, so the six requests share a window (else try again).
            time.sleep(1.0 - time.time() % 1.0 + 0.005)
            started = time.time()
            got = [c.post(SYNC_PATH, json=batch(), headers=headers) for _ in range(6)]
            if int(time.time()) != int(started):
                continue  # a boundary fell inside the burst: not this test's subject
            assert [r.status_code for r in got] == [200] * 5 + [429]
            refused = got[5]
            body = refused.json()
            assert body["error"] == "rate_limited" and body["rule"] == "sync/user" and body["message"]
            assert 0 < body["retry_after"] <= 1.0
            assert refused.headers[HEADER_RETRY_AFTER] == "1"
            assert '"sync/user";q=5;w=1' in refused.headers[HEADER_RATELIMIT_POLICY]
            assert refused.headers[HEADER_RATELIMIT].endswith('"sync/user";r=0;t=1')
            assert got[0].headers[HEADER_RATELIMIT].endswith('"sync/user";r=4;t=1')
            time.sleep(body["retry_after"] + 0.02)
            assert c.post(SYNC_PATH, json=batch(), headers=headers).status_code == 200
            return
    pytest.fail("three bursts of six requests each straddled a window boundary: the machine is far too slow")
