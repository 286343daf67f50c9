"""Rack::Attack 6.8's acceptance specs (rack/rack-attack spec/acceptance), ported scenario by scenario.

Each runs against a real uvicorn server in this process, time moved through the limiter's clock (their
Timecop). Their addresses 1.2.3.4 and 5.6.7.8 are loopback ones here (127.0.0.1, 127.0.0.2, ...); their
`GET /` is an authenticated `GET /api/v1/count`. A spec that needs what syncbed does not have (a
blocklist or safelist of any request predicate, a period computed per request, custom responders) is
listed in docs/limiter.md ("Rack::Attack parity") with what syncbed does instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import RedisServer
from server import tokens
from server.config import BanRule, ThrottleRule
from syncbed.contract import COUNT_PATH, LIMITER_PATH, RACK_BLOCKED_BODY, RACK_THROTTLED_BODY
from syncbed.events import EV_LIMITER_BAN, EV_LIMITER_UNBAN, EV_REQUEST_THROTTLED
from syncbed.paths import SERVER_DB_FILE
from tests.server.test_throttle import T0, Clock, InProc, serve
from tests.server.test_tiers import config_error

A, B = "127.0.0.1", "127.0.0.2"  # the specs' 1.2.3.4 and 5.6.7.8
BY_IP = (ThrottleRule("by ip", 1, 60.0, "ip"),)  # throttle("by ip", limit: 1, period: 60) { |r| r.ip }
FAIL2BAN = BanRule("fail2ban pentesters", 2, 30.0, 60.0, paths=("/private-place",))
ALLOW2BAN = BanRule("allow2ban pentesters", 2, 30.0, 60.0, paths=("/scarce-resource",))


class Site:
    """The specs' `get path, {}, "REMOTE_ADDR" => ip` against one server."""

    def __init__(self, srv: InProc, clock: Clock) -> None:
        self.srv, self.clock = srv, clock
        self.token = srv.token("alice")
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def get(self, path: str = "/", ip: str = A) -> httpx.Response:
        if ip not in self._clients:
            self._clients[ip] = self.srv.client(ip)
        return await self._clients[ip].get(
            COUNT_PATH if path == "/" else path, headers={"Authorization": f"Bearer {self.token}"}
        )

    async def status(self, path: str = "/", ip: str = A) -> int:
        return (await self.get(path, ip)).status_code

    async def events(self, type: str, n: int) -> list[dict[str, Any]]:
        """The first `n` events of `type` (with Redis the bus is Redis too: they arrive a moment later)."""
        for _ in range(200):
            found = self.srv.events(type)
            if len(found) >= n:
                await asyncio.sleep(0.05)  # and no more than n
                found = self.srv.events(type)
                assert len(found) == n, found
                return found
            await asyncio.sleep(0.025)
        raise AssertionError(f"{n} {type} events did not come: {self.srv.events(type)}")

    def travel(self, seconds: float) -> None:
        self.clock.t += seconds

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()


@asynccontextmanager
async def site(tmp_path: Path, t: float = T0, **limits: object) -> AsyncIterator[Site]:
    clock = Clock(t)
    async with serve(tmp_path, clock, **limits) as srv:
        s = Site(srv, clock)
        try:
            yield s
        finally:
            await s.aclose()


# --- throttling_spec.rb ----------------------------------------------------------------------------


async def test_throttle_allows_one_request_per_minute_by_ip(tmp_path: Path) -> None:
    async with site(tmp_path, response="rack-attack", throttles=BY_IP) as s:
        assert await s.status(ip=A) == 200
        refused = await s.get(ip=A)
        assert refused.status_code == 429 and "retry-after" not in refused.headers
        assert refused.content == RACK_THROTTLED_BODY and refused.headers["content-type"] == "text/plain"
        assert await s.status(ip=B) == 200
        s.travel(60)
        assert await s.status(ip=A) == 200


async def test_throttle_returns_the_windows_retry_after_if_enabled(tmp_path: Path) -> None:
    async with site(tmp_path, t=0.0, response="rack-attack-retry-after", throttles=BY_IP) as s:
        assert await s.status() == 200
        s.travel(25)  # Timecop.freeze(Time.at(25))
        assert (await s.get()).headers["retry-after"] == "35"


async def test_throttle_supports_a_limit_per_request_as_a_tier(tmp_path: Path) -> None:
    # limit: ->(req) { req.env["X-APIKey"] == "private-secret" ? 2 : 1 }: here the token's user's tier.
    async with site(tmp_path, throttles=BY_IP, tiers={"private": {"by ip": 2}}) as s:
        assert [await s.status(ip=A) for _ in range(2)] == [200, 429]
        s.token = tokens.create_token_at(s.srv.data_dir / SERVER_DB_FILE, "pat", "private")
        assert [await s.status(ip=B) for _ in range(3)] == [200, 200, 429]


async def test_throttle_notifies_only_when_the_request_is_throttled(tmp_path: Path) -> None:
    async with site(tmp_path, throttles=BY_IP) as s:
        assert (await s.status(ip=B), await s.status(ip=A)) == (200, 200)
        assert s.srv.events(EV_REQUEST_THROTTLED) == []
        assert await s.status(ip=A) == 429
        [event] = s.srv.events(EV_REQUEST_THROTTLED)
        assert (event["rule"], event["key"], event["ip"]) == ("by ip", f"ip:{A}", A)


async def test_throttled_requests_keep_incrementing_the_counter(tmp_path: Path) -> None:
    # customizing_throttled_response_spec "exposes match data": the third request's count is 3.
    async with site(tmp_path, throttles=BY_IP) as s:
        assert [await s.status() for _ in range(3)] == [200, 429, 429]
        [rule] = s.srv.state.limiter.describe().rules
        assert [(h.key, h.count) for h in rule.hot] == [(f"ip:{A}", 3)]


# --- blocking_ip_spec.rb, blocking_subnet_spec.rb, customizing_blocked_response_spec.rb ----------


async def test_blocklist_ip_forbids_that_address_only(tmp_path: Path) -> None:
    async with site(tmp_path, response="rack-attack", blocklist=(A,)) as s:
        blocked = await s.get(ip=A)
        assert (blocked.status_code, blocked.content) == (403, RACK_BLOCKED_BODY)
        assert await s.status(ip=B) == 200


async def test_blocklist_subnet_forbids_the_range(tmp_path: Path) -> None:
    async with site(tmp_path, blocklist=("127.0.0.4/31",)) as s:
        assert [await s.status(ip=f"127.0.0.{n}") for n in (4, 5, 6)] == [403, 403, 200]


# --- safelisting_ip_spec.rb, safelisting_subnet_spec.rb --------------------------------------------


async def test_safelist_ip_wins_over_the_blocklist_and_skips_throttles(tmp_path: Path) -> None:
    async with site(tmp_path, blocklist=("127.0.0.0/8",), safelist=(B,), throttles=BY_IP) as s:
        assert await s.status(ip=A) == 403
        assert [await s.status(ip=B) for _ in range(3)] == [200, 200, 200]  # never counted, never refused


async def test_safelist_subnet(tmp_path: Path) -> None:
    async with site(tmp_path, blocklist=("127.0.0.0/8",), safelist=("127.0.6.0/24",)) as s:
        assert await s.status(ip="127.0.7.0") == 403
        assert (await s.status(ip="127.0.6.0"), await s.status(ip="127.0.6.255")) == (200, 200)


# --- track_throttle_spec.rb -----------------------------------------------------------------------


async def test_a_track_counts_over_its_limit_without_throttling(tmp_path: Path) -> None:
    async with site(tmp_path, throttles=(), tracks=BY_IP) as s:
        assert (await s.status(ip=A), await s.status(ip=B), await s.status(ip=A)) == (200, 200, 200)
        [track] = s.srv.state.limiter.describe().rules
        assert {(h.key, h.count) for h in track.hot} == {(f"ip:{A}", 2), (f"ip:{B}", 1)}
        s.travel(60)
        assert await s.status(ip=A) == 200
        [track] = s.srv.state.limiter.describe().rules
        assert [(h.key, h.count) for h in track.hot] == [(f"ip:{A}", 1)]  # a new window


# --- fail2ban_spec.rb and allow2ban_spec.rb, in memory and in Redis ---------------------------------

STORES = ["memory", "redis"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> object:
    if request.param == "memory":
        yield "memory"
        return
    redis = RedisServer(data_dir=tmp_path_factory.mktemp("redis")).start()
    yield redis.url
    redis.kill()


async def test_fail2ban_returns_ok_for_many_requests_to_a_path_it_does_not_filter(tmp_path: Path, store: str) -> None:
    async with site(tmp_path, store=store, fail2ban=(FAIL2BAN,)) as s:
        assert [await s.status() for _ in range(2)] == [200, 200]


async def test_fail2ban_forbids_the_filtered_path_at_once_and_the_rest_only_at_maxretry(
    tmp_path: Path, store: str
) -> None:
    async with site(tmp_path, store=store, fail2ban=(FAIL2BAN,)) as s:
        first = await s.get("/private-place")
        assert first.status_code == 403 and first.json()["rule"] == "fail2ban pentesters"
        assert "2 such requests within 30 s ban this client for 60 s" in first.json()["message"]
        assert await s.status() == 200  # not yet at maxretry
        assert await s.status("/private-place") == 403  # the second: the ban
        banned = await s.get()
        assert banned.status_code == 403 and "for another 60 s" in banned.json()["message"]
        assert await s.status(ip=B) == 200  # the ban is the address's


async def test_fail2ban_restores_access_after_bantime(tmp_path: Path, store: str) -> None:
    async with site(tmp_path, store=store, fail2ban=(FAIL2BAN,)) as s:
        assert [await s.status("/private-place"), await s.status("/private-place"), await s.status()] == [403] * 3
        s.travel(60)
        assert await s.status() == 200


async def test_fail2ban_does_not_ban_when_maxretry_is_not_met_within_one_findtime(tmp_path: Path, store: str) -> None:
    async with site(tmp_path, store=store, fail2ban=(FAIL2BAN,)) as s:
        assert await s.status("/private-place") == 403
        s.travel(31)
        assert await s.status("/private-place") == 403
        assert await s.status() == 200


async def test_fail2ban_notifies_each_block_and_publishes_the_ban_and_its_end(tmp_path: Path, store: str) -> None:
    async with site(tmp_path, store=store, fail2ban=(FAIL2BAN,)) as s:
        assert await s.status() == 200
        assert await s.status("/private-place") == 403
        assert s.srv.events(EV_LIMITER_BAN) == []
        assert (await s.status(), await s.status("/private-place"), await s.status()) == (200, 403, 403)
        [ban] = await s.events(EV_LIMITER_BAN, 1)
        assert (ban["rule"], ban["kind"], ban["key"], ban["count"]) == ("fail2ban pentesters", "fail2ban", f"ip:{A}", 2)
        assert ban["until"] == pytest.approx(T0 + 60)
        async with s.srv.client() as c:  # listed: the rule, and whom it bans
            view = (await c.get(LIMITER_PATH, headers={"Authorization": f"Bearer {s.srv.state.admin_token}"})).json()
        [rule] = view["bans"]
        assert (rule["name"], rule["maxretry"], rule["findtime"], rule["bantime"]) == ("fail2ban pentesters", 2, 30, 60)
        assert [(b["key"], b["left"]) for b in rule["banned"]] == [(f"ip:{A}", 60)]
        await s.srv.state.limiter.sweep()
        await asyncio.sleep(0.1)
        assert s.srv.events(EV_LIMITER_UNBAN) == []
        s.travel(60)
        await s.srv.state.limiter.sweep()
        [unban] = await s.events(EV_LIMITER_UNBAN, 1)
        assert (unban["rule"], unban["key"]) == ("fail2ban pentesters", f"ip:{A}")
        assert s.srv.state.limiter.describe().bans[0].banned == []


async def test_a_banned_request_is_neither_counted_nor_filtered(tmp_path: Path, store: str) -> None:
    async with site(tmp_path, store=store, fail2ban=(FAIL2BAN,), throttles=BY_IP) as s:
        assert [await s.status("/private-place") for _ in range(2)] == [403, 403]
        assert [await s.status() for _ in range(3)] == [403, 403, 403]  # "by ip" (1 a minute) never saw them
        s.travel(60)
        assert [await s.status() for _ in range(2)] == [200, 429]


async def test_allow2ban_lets_through_until_maxretry_then_bans(tmp_path: Path, store: str) -> None:
    async with site(tmp_path, store=store, allow2ban=(ALLOW2BAN,)) as s:
        assert [await s.status() for _ in range(2)] == [200, 200]
        assert await s.status("/scarce-resource") == 404  # let through: the server has no such page
        assert await s.status("/scarce-resource") == 404  # the second sets the ban and passes too
        assert await s.status("/scarce-resource") == 403
        refused = await s.get()
        assert refused.status_code == 403 and refused.json()["rule"] == "allow2ban pentesters"
        s.travel(60)
        assert await s.status() == 200


async def test_allow2ban_does_not_ban_when_maxretry_is_not_met_within_one_findtime(tmp_path: Path, store: str) -> None:
    async with site(tmp_path, store=store, allow2ban=(ALLOW2BAN,)) as s:
        assert await s.status("/scarce-resource") == 404
        s.travel(31)
        assert await s.status("/scarce-resource") == 404
        assert await s.status() == 200


# --- beyond the specs: a ban counted on the answer's status (repeated 401s), keyed by address -----


async def test_a_ban_on_repeated_401s_bans_the_address_and_not_a_good_client(tmp_path: Path, store: str) -> None:
    bad_tokens = BanRule("bad tokens", 3, 60.0, 600.0, statuses=(401,))
    async with site(tmp_path, store=store, fail2ban=(bad_tokens,), response="rack-attack") as s:
        good = s.token
        s.token = "sb_nope_nope"
        assert [await s.status(ip=A) for _ in range(3)] == [401, 401, 401]  # each keeps its own answer
        [ban] = await s.events(EV_LIMITER_BAN, 1)
        assert (ban["key"], ban["count"], ban["user"]) == (f"ip:{A}", 3, None)
        s.token = good
        refused = await s.get(ip=A)
        assert (refused.status_code, refused.content) == (403, RACK_BLOCKED_BODY)  # the stock words
        assert await s.status(ip=B) == 200


ONE = 'name = "x"\nmaxretry = 3\nfindtime = "1m"\nbantime = "1h"\n'
TWICE = f"[[limits.fail2ban]]\n{ONE}[[limits.allow2ban]]\n{ONE}"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[limits.fail2ban]]\nname = "x"\nmaxretry = 0\nfindtime = "1m"\nbantime = "1h"\n',
            "limits.fail2ban[0].maxretry: must be from 1 to",
        ),
        (
            '[[limits.fail2ban]]\nname = "x"\nmaxretry = 3\nfindtime = "9d"\nbantime = "1h"\n',
            "limits.fail2ban[0].findtime:",
        ),
        (
            '[[limits.allow2ban]]\nname = "x"\nmaxretry = 3\nfindtime = "1m"\nbantime = 0\n',
            "limits.allow2ban[0].bantime:",
        ),
        (
            '[[limits.fail2ban]]\nname = "x"\nmaxretry = 3\nfindtime = "1m"\nbantime = "1h"\nstatuses = [99]\n',
            "limits.fail2ban[0].statuses[0]: an HTTP status is from 100 to 599, got 99",
        ),
        (
            TWICE,
            "limits.fail2ban: two ban rules are named 'x'",
        ),
        (
            '[[limits.fail2ban]]\nname = "x"\nmaxretry = 3\nfindtime = "1m"\n',
            "limits.fail2ban[0]: missing required key 'bantime'",
        ),
    ],
)
def test_a_wrong_ban_rule_is_one_line_naming_it(tmp_path: Path, toml: str, message: str) -> None:
    assert config_error(tmp_path, toml).startswith(message)
