"""Tiers: a user's tier gives them its own limits ([limits.tiers.NAME]), in the memory and Redis stores."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from harness.processes import RedisServer
from harness.server import CONFIG_FILE
from server.config import ConfigError, LimitsSettings, load_settings
from server.refusals import ratelimit_headers
from server.throttle import Limiter
from syncbed.contract import HEADER_RATELIMIT_POLICY, LIMITER_PATH, SYNC_PATH
from tests.conftest import ServerFactory
from tests.server.test_throttle import Clock, caller_for

TIERS = {"premium": {"sync/user": 10, "sync/ip": 20}, "power": {"sync/user": 8, "sync/ip": 30}}
CONFIG = """
[limits.tiers.premium]
"sync/user" = 10
"sync/ip" = 20
"""


def config_error(tmp_path: Path, toml: str) -> str:
    """The one line a server started on this config file prints."""
    config = tmp_path / "c.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    return str(caught.value)


def tiered(clock: Clock | None = None) -> Limiter:
    return Limiter(LimitsSettings(tiers=TIERS), caller_for=caller_for, clock=clock or Clock())


async def admitted(lim: Limiter, auth: str, n: int, ip: str = "10.0.0.1") -> list[str | None]:
    return [
        (v.refused.name if v.refused else None)
        for v in [await lim.check("POST", SYNC_PATH, ip, auth) for _ in range(n)]
    ]


async def test_a_premium_user_gets_the_tiers_limit_and_a_default_user_the_rules() -> None:
    lim = tiered()
    assert await admitted(lim, "Bearer p", 11) == [None] * 10 + ["sync/user"]  # pat is premium
    assert await admitted(lim, "Bearer a", 6, ip="10.0.0.2") == [None] * 5 + ["sync/user"]


async def test_a_tiers_counters_are_its_own_and_the_fields_carry_its_quota() -> None:
    lim = tiered()
    v = await lim.check("POST", SYNC_PATH, "10.0.0.1", "Bearer p")
    [user_rule] = [r for r, _ in v.matched if r.name == "sync/user"]
    assert (user_rule.tier, user_rule.limit, user_rule.counter.id) == ("premium", 10, "throttle:sync/user@premium:1")
    policy = dict(ratelimit_headers(v.matched))[b"ratelimit-policy"]
    assert policy == b'"req/ip";q=300;w=300, "sync/ip";q=20;w=1, "sync/user";q=10;w=1'
    view = {r.name: r for r in lim.describe().rules}
    assert view["sync/user"].tiers == {"premium": 10, "power": 8} and view["sync/ip"].tiers == {
        "premium": 20,
        "power": 30,
    }
    assert [(h.key, h.count) for h in view["sync/user"].hot] == [("user:pat@premium", 1)]


async def test_a_live_edit_keeps_the_tiers_limit_and_a_new_period_moves_the_tier_too() -> None:
    lim = tiered()
    lim.update_limit("sync/user", limit=3, period="2s")
    variant = lim.rule("sync/user").tiers["premium"]
    assert (variant.limit, variant.period, variant.counter.id) == (10, 2.0, "throttle:sync/user@premium:2")
    assert await admitted(lim, "Bearer a", 4) == [None] * 3 + ["sync/user"]
    lim.update_limit("sync/user", enabled=False)  # a disabled rule is off for every tier
    assert await admitted(lim, "Bearer p", 21, ip="10.0.0.3") == [None] * 20 + ["sync/ip"]


async def test_a_user_with_a_tier_the_config_does_not_name_gets_the_rules_limits() -> None:
    lim = Limiter(LimitsSettings(), caller_for=caller_for, clock=Clock())  # pat is "premium"; no tiers here
    assert await admitted(lim, "Bearer p", 6) == [None] * 5 + ["sync/user"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[limits.tiers.premium]\n"sync/usr" = 10\n',
            "limits.tiers.premium.sync/usr: no throttle of that name (did you mean sync/user?)",
        ),
        ('[limits.tiers.Premium]\n"sync/user" = 10\n', "limits.tiers.Premium: 'Premium' is not a tier name"),
        ('[limits.tiers.default]\n"sync/user" = 10\n', "limits.tiers.default: 'default' is the rules' own limits"),
        (
            '[limits.tiers.premium]\n"sync/user" = "x"\n',
            "limits.tiers.premium.sync/user: expected an integer (the tier's limit), got 'x'",
        ),
        ('[limits.tiers.premium]\n"sync/user" = 0\n', "limits.tiers.premium.sync/user: must be from 1 to"),
        ("[limits.tiers]\npremium = 5\n", "limits.tiers.premium: expected a table of throttle = limit, got 5"),
    ],
)
def test_a_wrong_tier_table_is_one_line_naming_it(tmp_path: Path, toml: str, message: str) -> None:
    assert config_error(tmp_path, toml).startswith(message)


def test_a_tier_may_override_a_custom_throttle(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[[limits.throttle]]\nname = "runs/user"\nlimit = 2\nperiod = 1\nkey = "user"\n'
        '[limits.tiers.premium]\n"runs/user" = 4\n'
    )
    assert load_settings(config, env={}).limits.tiers == {"premium": {"runs/user": 4}}


# --- the real thing: the CLI, a server process, each store ----------------------------------------


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = data_dir / CONFIG_FILE
    command = [sys.executable, "-m", "server", "token", *args, "--data-dir", str(data_dir), "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_token_commands_set_show_and_check_a_tier(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text(CONFIG)
    made = cli(tmp_path, "create", "pat", "--tier", "premium")
    assert made.returncode == 0 and made.stdout.startswith("sb_") and made.stderr == "", made.stderr
    typo = cli(tmp_path, "create", "sam", "--tier", "premium2")
    assert (
        typo.returncode == 0
        and "note: the configuration has no [limits.tiers.premium2] (its tiers: premium)" in typo.stderr
    )
    bad = cli(tmp_path, "create", "kim", "--tier", "Gold Plus")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --tier: 'Gold Plus' is not a tier name"), bad.stderr
    listed = cli(tmp_path, "list").stdout.splitlines()
    assert [line.split("\t")[1:] for line in listed] == [["pat", "active", "premium"], ["sam", "active", "premium2"]]
    moved = cli(tmp_path, "tier", "sam", "default")
    assert moved.returncode == 0 and moved.stdout == "sam is in tier default (within a second on a running server)\n"
    assert cli(tmp_path, "create", "pat").returncode == 0  # a new token keeps the user's tier
    tiers = [line.split("\t")[1::2] for line in cli(tmp_path, "list").stdout.splitlines()]
    assert tiers == [["pat", "premium"], ["sam", "default"], ["pat", "premium"]]


async def burst(url: str, token: str, n: int) -> list[httpx.Response]:
    """n syncs of one record each, sent one after another early in one epoch second (a fixed window)."""
    while time.time() % 1 > 0.2:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        out = []
        for _ in range(n):
            body = {"pageVisits": [{"id": uuid.uuid4().hex, "url": "https://example.com/", "visitedAt": 1}]}
            out.append(await c.post(SYNC_PATH, json=body, headers={"Authorization": f"Bearer {token}"}))
        return out


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_over_http_a_premium_user_is_admitted_ten_a_second_and_told_so(
    server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory, store: str
) -> None:
    args: list[str] = []
    if store == "redis":
        redis = RedisServer(data_dir=tmp_path_factory.mktemp("redis")).start()
        args = ["--store", redis.url]
    try:
        srv = server_factory(config=CONFIG, args=args)
        made = cli(srv.data_dir, "create", "pat", "--tier", "premium")
        assert made.returncode == 0 and made.stderr == "", made.stderr
        premium = made.stdout.strip()
        plain = srv.token("ann")
        got = await burst(srv.url, premium, 11)
        assert [r.status_code for r in got] == [200] * 10 + [429], [r.text for r in got]
        assert '"sync/user";q=10;w=1' in got[0].headers[HEADER_RATELIMIT_POLICY]
        assert got[-1].json()["rule"] == "sync/user"
        got = await burst(srv.url, plain, 6)
        assert [r.status_code for r in got] == [200] * 5 + [429]
        assert '"sync/user";q=5;w=1' in got[0].headers[HEADER_RATELIMIT_POLICY]
        async with httpx.AsyncClient(timeout=10) as c:
            view = (await c.get(srv.url + LIMITER_PATH, headers=srv.admin_headers())).json()
        rules = {r["name"]: r for r in view["rules"]}
        assert rules["sync/user"]["tiers"] == {"premium": 10} and rules["req/ip"]["tiers"] == {}
        # Back to the default tier: the running server applies it within its one-second token cache.
        assert cli(srv.data_dir, "tier", "pat", "default").returncode == 0
        await asyncio.sleep(1.2)
        got = await burst(srv.url, premium, 6)
        assert [r.status_code for r in got] == [200] * 5 + [429]
    finally:
        if store == "redis":
            redis.kill()
