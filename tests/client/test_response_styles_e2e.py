"""Adaptive against a real server in each response style: complete, exact, within the refusal budget,
the limits it learnt remembered and used on the next run."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import sqlite3
from pathlib import Path

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
