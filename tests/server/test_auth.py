"""Token -> user against a real SQLite file: the cache, and one query for a burst of cache misses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from server import schema, tokens
from server.auth import CACHE_SECONDS, Auth
from server.tokens import create_token_at


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Path, aiosqlite.Connection]]:
    path = tmp_path / "server.sqlite3"
    schema.connect(path).close()
    conn = await aiosqlite.connect(path, isolation_level=None)
    yield path, conn
    await conn.close()


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def revoke_at(path: Path, what: str) -> None:
    conn = schema.connect(path)
    try:
        assert tokens.revoke(conn, what) == 1
    finally:
        conn.close()


class CountingAuth(Auth):
    """The real lookup, counted."""

    lookups = 0

    async def _lookup(self, token: str) -> str | None:
        self.lookups += 1
        return await super()._lookup(token)


async def test_a_burst_of_misses_shares_one_query(db: tuple[Path, aiosqlite.Connection]) -> None:
    path, conn = db
    token = create_token_at(path, "alice")
    auth = CountingAuth(conn)
    users = await asyncio.gather(*(auth.user_for_authorization(f"Bearer {token}") for _ in range(10)))
    assert users == ["alice"] * 10
    assert auth.lookups == 1
    assert await auth.user_for_authorization(f"Bearer {token}") == "alice"
    assert auth.lookups == 1  # cached
    assert await auth.user_for_authorization("Bearer sb_nope_nope") is None


async def test_one_caller_leaving_does_not_cancel_the_others(db: tuple[Path, aiosqlite.Connection]) -> None:
    path, conn = db
    token = create_token_at(path, "bob")
    auth = CountingAuth(conn)
    first = asyncio.create_task(auth.user_for_authorization(f"Bearer {token}"))
    second = asyncio.create_task(auth.user_for_authorization(f"Bearer {token}"))
    await asyncio.sleep(0)
    first.cancel()  # the first caller's client hung up while its lookup ran
    assert await second == "bob"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert auth.lookups == 1


async def test_a_repeated_authorization_authenticates_nobody(db: tuple[Path, aiosqlite.Connection]) -> None:
    path, conn = db
    token = create_token_at(path, "carol")
    auth = Auth(conn)
    one = {"headers": [(b"authorization", f"Bearer {token}".encode())]}
    assert await auth.user_for_scope(one) == "carol"
    two = {"headers": [(b"authorization", f"Bearer {token}".encode()), (b"authorization", b"x")]}
    assert await auth.user_for_scope(two) is None  # neither the first nor the joined pair is picked


async def test_a_revoked_token_works_until_its_cache_entry_expires(db: tuple[Path, aiosqlite.Connection]) -> None:
    path, conn = db
    token = create_token_at(path, "dave")
    clock = Clock()
    auth = CountingAuth(conn, clock=clock)
    assert await auth.user_for_authorization(f"Bearer {token}") == "dave"
    revoke_at(path, token)  # as `python -m server token revoke` does, from another connection
    clock.now += CACHE_SECONDS - 0.01
    assert await auth.user_for_authorization(f"Bearer {token}") == "dave"  # still the cached answer
    assert auth.lookups == 1
    clock.now += 0.01  # the entry lives [t, t + CACHE_SECONDS): at its end it is gone
    assert await auth.user_for_authorization(f"Bearer {token}") is None
    assert auth.lookups == 2


async def test_an_unknown_token_is_cached_as_nobody(db: tuple[Path, aiosqlite.Connection]) -> None:
    _, conn = db
    clock = Clock()
    auth = CountingAuth(conn, clock=clock)
    for _ in range(3):
        assert await auth.user_for_authorization("Bearer sb_abc_def") is None
    assert auth.lookups == 1  # a flood of one bad token costs one query a second, not one a request
    clock.now += CACHE_SECONDS
    assert await auth.user_for_authorization("Bearer sb_abc_def") is None
    assert auth.lookups == 2


async def test_headers_that_are_not_a_bearer_token_query_nothing(db: tuple[Path, aiosqlite.Connection]) -> None:
    _, conn = db
    auth = CountingAuth(conn, clock=Clock())
    for header in (None, "", "Bearer", "Bearer   ", "Basic abc", "Token sb_a_b", "sb_a_b"):
        assert await auth.user_for_authorization(header) is None, header
    assert auth.lookups == 0


def test_bearer_takes_the_scheme_in_any_case_and_trims_the_value() -> None:
    assert Auth.bearer("Bearer abc") == "abc"
    assert Auth.bearer("bearer  abc ") == "abc"
    assert Auth.bearer("BEARER abc def") == "abc def"
    assert Auth.bearer("Bearerabc") is None
    assert Auth.bearer("Basic abc") is None


async def test_a_user_found_by_an_earlier_layer_is_not_looked_up_again(db: tuple[Path, aiosqlite.Connection]) -> None:
    _, conn = db
    auth = CountingAuth(conn)
    scope = {"headers": [(b"authorization", b"Bearer sb_x_y")], "state": {"syncbed.user": "erin"}}
    assert await auth.user_for_scope(scope) == "erin"
    assert auth.lookups == 0
    fresh: dict[str, object] = {"headers": [(b"authorization", b"Bearer sb_x_y")]}
    assert await auth.user_for_scope(fresh) is None
    assert auth.lookups == 1
