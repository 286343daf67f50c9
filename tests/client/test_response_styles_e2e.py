"""Adaptive against a real server in each response style: complete, exact, within the refusal budget,
the limits it learnt remembered and used on the next run."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from client.manager import SyncManager
from client.window_learner import LEARNED
from server import tokens
from syncbed.contract import RESPONSE_STYLES
from syncbed.paths import SERVER_DB_FILE
from tests.client.fakes import encoded, filled, visits
from tests.conftest import ServerFactory
from tests.server.test_throttle import serve

QUOTA = 5  # the seed's sync/user, which binds a single user's sync
BUDGET = QUOTA + 1  # refusals per run: one window's quota, plus one


@pytest.mark.parametrize("style", RESPONSE_STYLES)
async def test_adaptive_syncs_10k_records_against_each_style_within_the_refusal_budget(
    server_factory: ServerFactory, tmp_path: Path, style: str
) -> None:
    srv = server_factory(args=("--response", style))
    token = srv.token("ann")
    async with await filled(tmp_path / "outbox.db", 10_000) as outbox:
        first = await SyncManager(srv.url, token, outbox, mode="adaptive").sync()
        learnt = await outbox.known_limits(srv.url)
        # The next run, in a fresh window, paces from what was remembered from its first send: no refusal.
        await asyncio.sleep(1.1)
        for chunk in encoded(visits(10_000, seed=2)):
            await outbox.put(chunk)
        second = await SyncManager(srv.url, token, outbox, mode="adaptive").sync()
    assert first.complete, first.failed
    assert (first.synced_records, first.stored, first.duplicates) == (10_000, 10_000, 0)
    assert first.throttled <= BUDGET, first
    assert first.requests == 10 + first.throttled and first.retries == 0
    if style in ("syncbed", "draft-ratelimit"):  # advertised: remembered as the server names them
        assert ("sync/user", QUOTA, 1.0) in learnt, learnt
    else:  # learnt from the refusals: named by the body's rule where it has one
        name = LEARNED if style.startswith("rack-attack") else "sync/user"
        assert learnt == [(name, QUOTA, 1.0)], learnt
    assert second.complete and srv.count(token) == 20_000
    assert second.throttled == 0, second


@pytest.mark.parametrize("style", ["syncbed", "rack-attack"])
async def test_a_blocklisted_client_stops_at_the_first_403_and_keeps_its_records(tmp_path: Path, style: str) -> None:
    # In this test's loop (a real uvicorn server still): a blocklisted /healthz never says the server is up.
    async with (
        serve(tmp_path, response=style, blocklist=("127.0.0.1",)) as srv,
        await filled(tmp_path / "outbox.db", 10_000) as outbox,
    ):
        result = await SyncManager(srv.url, "any-token", outbox, mode="adaptive").sync()
        pending = await outbox.pending()
    assert result.status == "failed" and len(result.failed) == 10 and result.synced_records == 0
    assert result.requests <= 10  # the first burst, already on its way; nothing after it
    assert pending[0] == 10_000
    words = "refused by the server's blocklist" if style == "syncbed" else "Forbidden"
    assert all(f.status == 403 and "the server refuses this client" in f.reason for f in result.failed)
    assert any(words in f.reason for f in result.failed), result.failed


PREMIUM = '[limits.tiers.premium]\n"sync/user" = 10\n'  # sync/ip is 10 too: the tier's 10 a second binds


@pytest.mark.parametrize("style", ["syncbed", "rack-attack"])
async def test_a_premium_users_adaptive_client_uses_the_ten_a_second_it_is_given(
    server_factory: ServerFactory, tmp_path: Path, style: str
) -> None:
    srv = server_factory(config=PREMIUM, args=("--response", style))
    token = tokens.create_token_at(srv.data_dir / SERVER_DB_FILE, "pat", "premium")
    async with await filled(tmp_path / "outbox.db", 30_000) as outbox:
        result = await SyncManager(srv.url, token, outbox, mode="adaptive").sync()
        learnt = await outbox.known_limits(srv.url)
    assert result.complete and srv.count(token) == 30_000, result.failed
    assert result.throttled <= 10 + 1, result
    with contextlib.closing(sqlite3.connect(srv.data_dir / SERVER_DB_FILE)) as db:
        received = [t for (t,) in db.execute("SELECT received FROM batches")]
    per_second = collections.Counter(math.floor(t) for t in received)
    # 30 batches at 10 a second: three windows (four when the first burst starts late in one); at the
    # default 5 it would take six.
    assert max(per_second.values()) == 10 and len(per_second) <= 4, sorted(per_second.items())
    name = "sync/user" if style == "syncbed" else LEARNED
    assert (name, 10, 1.0) in learnt, learnt


HAMMERING = (
    '[[limits.fail2ban]]\nname = "hammering"\nmaxretry = 1\nfindtime = "1m"\nbantime = "1m"\nstatuses = [429]\n'
    '[[limits.fail2ban]]\nname = "probing"\nmaxretry = 1\nfindtime = "1m"\nbantime = "1m"\npaths = ["/wp-admin"]\n'
)


@pytest.mark.parametrize(("mode", "rule"), [("aggressive", "hammering"), ("adaptive", "probing")])
async def test_a_ban_stops_the_sync_with_the_rules_words_and_keeps_the_records(
    server_factory: ServerFactory, tmp_path: Path, mode: str, rule: str
) -> None:
    # aggressive's first 429 bans the address for a minute; adaptive, which may meet none, is banned
    # before it starts (one probe of /wp-admin). Either way the ban's 403 is never retried into.
    srv = server_factory(config=HAMMERING)
    token = srv.token("ann")
    if rule == "probing":
        async with httpx.AsyncClient() as c:
            assert (await c.get(srv.url + "/wp-admin")).status_code == 403
    async with await filled(tmp_path / "outbox.db", 30_000) as outbox:
        while time.time() % 1 > 0.3:  # a first burst of 10 early in one window: 5 of them refused
            await asyncio.sleep(0.01)
        result = await SyncManager(srv.url, token, outbox, mode=mode).sync()
        pending = await outbox.pending()
    with contextlib.closing(sqlite3.connect(srv.data_dir / SERVER_DB_FILE)) as db:  # banned from HTTP: read the file
        [(stored,)] = db.execute("SELECT count(*) FROM records")
    assert result.status in ("partial", "failed") and result.synced_records == stored, result
    if rule == "hammering":
        assert stored > 0 and result.throttled_by.get("sync/user", 0) >= 1, result.throttled_by
    else:
        assert stored == 0 and result.requests <= 10, result  # its first burst, and nothing after it
    banned = [f for f in result.failed if f.status == 403]
    assert banned and all("the server refuses this client" in f.reason for f in banned)
    assert any(f"Banned by the fail2ban rule '{rule}'" in f.reason for f in banned), banned[0].reason
    assert pending[0] == 30_000 - result.synced_records  # nothing lost: what was not stored is still there
    assert result.requests <= result.ok_batches + result.throttled + 10  # no more than one burst past the ban
