"""The rule engine and client identity, without HTTP: order, keys, modes, live edits, headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.client_ip import ClientIp, IpSet, forwarded_for, parse_ip
from server.config import DEFAULT_THROTTLES, LimitsSettings, ThrottleRule, load_settings
from server.throttle import Limiter, ratelimit_headers, sf_string
from syncbed.contract import SYNC_PATH

T0 = 1_700_000_400.0


class Clock:
    def __init__(self, t: float = T0 + 0.25) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


USERS = {"Bearer a": "alice", "Bearer b": "bob"}


async def user_for(header: str | None) -> str | None:
    return USERS.get(header or "")


def limiter(clock: Clock | None = None, **kw: object) -> Limiter:
    return Limiter(LimitsSettings(**kw), user_for=user_for, clock=clock or Clock())  # type: ignore[arg-type]


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
    assert out["limit"] == 8 and out["kind"] == "throttle"
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
    assert d["store"] == "memory" and d["store_status"] == "up" and d["enabled"] is True
    rules = d["rules"]
    assert isinstance(rules, list) and [r["name"] for r in rules] == ["req/ip", "sync/ip", "sync/user", "sync/user"]
    assert rules[2]["hot"][0] == {"key": "user:alice", "count": 3, "reset": 0.75}


async def test_ratelimit_fields_are_structured_field_lists() -> None:
    lim = limiter()
    v = await lim.check("POST", SYNC_PATH, "10.0.0.1", "Bearer a")
    headers = dict(ratelimit_headers(v.matched))
    assert headers[b"ratelimit-policy"] == b'"req/ip";q=300;w=300, "sync/ip";q=10;w=1, "sync/user";q=5;w=1'
    assert headers[b"ratelimit"] == b'"req/ip";r=299;t=300, "sync/ip";r=9;t=1, "sync/user";r=4;t=1'
    assert sf_string('we"ird\\näme') == '"we\\"ird\\\\n?me"'


def test_a_config_throttle_with_a_default_name_replaces_it_others_are_added(tmp_path: Path) -> None:
    cfg = tmp_path / "limits.toml"
    cfg.write_text(
        '[[limits.throttle]]\nname = "sync/user"\nlimit = 50\nperiod = "1s"\nkey = "user"\n'
        'paths = ["/api/v1/data/sync"]\nmethods = ["POST"]\nalgorithm = "gcra"\n'
        '[[limits.throttle]]\nname = "count/ip"\nlimit = 2\nperiod = "5m"\n'
    )
    rules = load_settings(cfg, env={}).limits.throttles
    assert [r.name for r in rules] == ["req/ip", "sync/ip", "sync/user", "count/ip"]
    assert rules[2].limit == 50 and rules[2].algorithm == "gcra" and rules[3].period == 300.0
    assert DEFAULT_THROTTLES[2].limit == 5


def test_bad_cidrs_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match=r"limits\.blocklist"):
        limiter(blocklist=("10.0.0.0/33",))


# --- client identity --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4:8080 ", "1.2.3.4"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ('"[2001:db8::1]"', "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("[::1", None),
    ],
)
def test_parse_ip(raw: str, want: str | None) -> None:
    assert parse_ip(raw) == want


def test_forwarded_header_for_params() -> None:
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"'
    assert forwarded_for(value) == ["192.0.2.60", '"[2001:db8:cafe::17]:4711"']


def test_client_ip_believes_forwarded_headers_only_from_trusted_proxies() -> None:
    plain = ClientIp()
    assert plain.resolve("127.0.0.1", "6.6.6.6") == "127.0.0.1"  # nobody trusted: the peer
    cip = ClientIp(("127.0.0.1", "10.0.0.0/8"))
    assert cip.resolve("203.0.113.9", "6.6.6.6") == "203.0.113.9"  # untrusted peer: header ignored
    assert cip.resolve("127.0.0.1", "198.51.100.7") == "198.51.100.7"
    # A client-forged leftmost entry is skipped: the rightmost untrusted hop is the client.
    assert cip.resolve("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.1.1") == "198.51.100.7"
    assert cip.resolve("127.0.0.1", "10.0.0.2, 10.1.1.1") == "10.0.0.2"  # all trusted: the leftmost
    assert cip.resolve("127.0.0.1", "garbage, 10.1.1.1") == "10.1.1.1"  # unparseable hop: stop before it
    assert cip.resolve("127.0.0.1", None, "for=198.51.100.8") == "198.51.100.8"
    assert cip.resolve("127.0.0.1", "198.51.100.7", "for=1.1.1.1") == "198.51.100.7"  # XFF first
    assert cip.resolve("127.0.0.1") == "127.0.0.1"
    assert cip.resolve(None) == "unknown"
    assert cip.resolve("::ffff:203.0.113.9") == "203.0.113.9"


def test_ip_set_matches_cidrs_of_both_families() -> None:
    s = IpSet(("10.0.0.0/8", "2001:db8::/32", "192.0.2.1"))
    assert "10.200.0.1" in s and "2001:db8:1::5" in s and "192.0.2.1" in s
    assert "192.0.2.2" not in s and "not-an-ip" not in s and "::1" not in s
    assert not IpSet(())
