"""Bearer tokens on a real SQLite file: the format, what is stored, listing and revoking."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from server import schema, tokens


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = schema.connect(tmp_path / "server.sqlite3")
    yield c
    c.close()


def test_a_token_is_prefix_lookup_and_secret() -> None:
    assert tokens.split_token("sb_abc123_s3cr_et") == ("abc123", "s3cr_et")  # the secret may hold "_"
    for bad in ("", "sb", "sb_abc", "sb__secret", "sb_abc_", "xx_abc_secret", "SB_abc_secret", "abc_secret"):
        assert tokens.split_token(bad) is None, bad


def test_only_the_secrets_hash_is_stored(conn: sqlite3.Connection) -> None:
    token = tokens.create_token(conn, "alice")
    parts = tokens.split_token(token)
    assert parts is not None
    lookup, secret = parts
    assert len(lookup) == 12 and len(secret) >= 43  # 48 and 256 random bits
    ((stored_lookup, stored_hash, revoked),) = conn.execute("SELECT lookup, hash, revoked FROM tokens").fetchall()
    assert (stored_lookup, revoked) == (lookup, None)
    assert stored_hash == tokens.hash_secret(secret) and secret not in stored_hash
    assert tokens.verify(stored_hash, secret)
    assert not tokens.verify(stored_hash, secret + "x")


def test_tokens_of_one_user_share_the_user_row(conn: sqlite3.Connection) -> None:
    first = tokens.create_token(conn, "alice")
    second = tokens.create_token(conn, "alice")
    tokens.create_token(conn, "bob")
    assert first != second
    assert conn.execute("SELECT name FROM users ORDER BY id").fetchall() == [("alice",), ("bob",)]
    assert tokens.ensure_user(conn, "alice") == tokens.ensure_user(conn, "alice") == 1


def test_create_token_at_a_path_makes_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "new" / "server.sqlite3"
    token = tokens.create_token_at(path, "carol")
    conn = sqlite3.connect(path)
    try:
        (row,) = conn.execute("SELECT u.name, t.lookup FROM tokens t JOIN users u ON u.id = t.user_id").fetchall()
    finally:
        conn.close()
    assert row == ("carol", token.split("_")[1])


def test_list_shows_lookups_users_and_revocations_oldest_first(conn: sqlite3.Connection) -> None:
    a = tokens.create_token(conn, "alice")
    b = tokens.create_token(conn, "bob")
    assert tokens.revoke(conn, b) == 1
    listed = tokens.list_tokens(conn)
    assert [(t.lookup, t.user, t.revoked is None) for t in listed] == [
        (a.split("_")[1], "alice", True),
        (b.split("_")[1], "bob", False),
    ]
    assert all(a not in repr(t) and b not in repr(t) for t in listed)  # no secret to print


def test_revoke_by_token_by_lookup_or_by_user(conn: sqlite3.Connection) -> None:
    a1, a2, a3 = (tokens.create_token(conn, "alice") for _ in range(3))
    b = tokens.create_token(conn, "bob")
    assert tokens.revoke(conn, a1) == 1  # the whole token
    assert tokens.revoke(conn, a1) == 0  # already revoked: nothing more
    assert tokens.revoke(conn, a2.split("_")[1]) == 1  # its lookup id
    assert tokens.revoke(conn, "alice") == 1  # every token alice has left: a3
    assert tokens.revoke(conn, "nobody") == 0
    live = conn.execute("SELECT lookup FROM tokens WHERE revoked IS NULL").fetchall()
    assert live == [(b.split("_")[1],)]
    assert a3 != b
