"""Token -> user against a real SQLite file: the cache, and one query for a burst of cache misses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from server import schema
from server.auth import Auth
from server.tokens import create_token_at


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Path, aiosqlite.Connection]]:
    path = tmp_path / "server.sqlite3"
    schema.connect(path).close()
    conn = await aiosqlite.connect(path, isolation_level=None)
    yield path, conn
    await conn.close()


class CountingAuth(Auth):
    """The real lookup, counted."""

    lookups = 0

    async def _lookup(self, token: str) -> str | None:
        self.lookups += 1
        return await super()._lookup(token)


async def test_a_burst_of_misses_shares_one_query(db: tuple[Path, aiosqlite.Connection]) -> None:
    path, conn = db
    token = create_token_at(path, "alice")
    auth = CountingAuth(conn, "admin")
    users = await asyncio.gather(*(auth.user_for_authorization(f"Bearer {token}") for _ in range(10)))
    assert users == ["alice"] * 10
    assert auth.lookups == 1
    assert await auth.user_for_authorization(f"Bearer {token}") == "alice"
    assert auth.lookups == 1  # cached
    assert await auth.user_for_authorization("Bearer sb_nope_nope") is None


async def test_one_caller_leaving_does_not_cancel_the_others(db: tuple[Path, aiosqlite.Connection]) -> None:
    path, conn = db
    token = create_token_at(path, "bob")
    auth = CountingAuth(conn, "admin")
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
    auth = Auth(conn, "admin")
    one = {"headers": [(b"authorization", f"Bearer {token}".encode())]}
    assert await auth.user_for_scope(one) == "carol"
    two = {"headers": [(b"authorization", f"Bearer {token}".encode()), (b"authorization", b"x")]}
    assert await auth.user_for_scope(two) is None  # neither the first nor the joined pair is picked
