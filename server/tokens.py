"""Bearer tokens: only a hash is stored; a public lookup part finds the row, the hash is compared in constant time.

The same SQL runs on an sqlite3 connection (the data directory's file) or a psycopg one (server.database).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import psycopg

PREFIX = "sb"

Conn: TypeAlias = "sqlite3.Connection | psycopg.Connection[Any]"


def hash_secret(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is as good as a slow one here.
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """'sb_<lookup>_<secret>' -> (lookup, secret), or None when it is not one of ours."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    lookup: str
    user: str
    created: float
    revoked: float | None
    tier: str | None = None


def _execute(conn: Conn, sql: str, params: tuple[object, ...] = ()) -> Any:
    """One statement, its `?` placeholders written as psycopg wants them (%s) on a PostgreSQL connection."""
    if isinstance(conn, sqlite3.Connection):
        return conn.execute(sql, params)
    return conn.execute(sql.replace("?", "%s"), params)


def ensure_user(conn: Conn, name: str) -> int:
    _execute(conn, "INSERT INTO users(name, created) VALUES (?, ?) ON CONFLICT(name) DO NOTHING", (name, time.time()))
    row = _execute(conn, "SELECT id FROM users WHERE name = ?", (name,)).fetchone()
    return int(row[0])


def set_tier(conn: Conn, user: str, tier: str | None) -> None:
    """Put the user (created if needed) in `tier`; None: back to the rules' own limits."""
    user_id = ensure_user(conn, user)
    if tier is None:
        _execute(conn, "DELETE FROM user_tiers WHERE user_id = ?", (user_id,))
    else:
        _execute(
            conn,
            "INSERT INTO user_tiers(user_id, tier) VALUES (?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET tier = excluded.tier",
            (user_id, tier),
        )


def create_token(conn: Conn, user: str, tier: str | None = None) -> str:
    """Create the user if needed and return a new bearer token (shown once, never stored); `tier` sets the user's."""
    user_id = ensure_user(conn, user)
    if tier is not None:
        set_tier(conn, user, tier)
    lookup = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    _execute(
        conn,
        "INSERT INTO tokens(user_id, lookup, hash, created) VALUES (?, ?, ?, ?)",
        (user_id, lookup, hash_secret(secret), time.time()),
    )
    return f"{PREFIX}_{lookup}_{secret}"


def connect(where: Path | str) -> Conn:
    """The token tables of an SQLite file (a path) or of a postgresql:// URL, the schema in place."""
    if isinstance(where, str):
        from server import pg

        return pg.connect(where)
    from server import schema

    return schema.connect(where)


def create_token_at(where: Path | str, user: str, tier: str | None = None) -> str:
    """create_token in the SQLite file or PostgreSQL URL `where` (tests, benchmarks and scripts share it)."""
    conn = connect(where)
    try:
        return create_token(conn, user, tier)
    finally:
        conn.close()


def list_tokens(conn: Conn) -> list[TokenInfo]:
    rows = _execute(
        conn,
        "SELECT t.lookup, u.name, t.created, t.revoked, ut.tier FROM tokens t JOIN users u ON u.id = t.user_id "
        "LEFT JOIN user_tiers ut ON ut.user_id = u.id ORDER BY t.created",
    ).fetchall()
    return [TokenInfo(*row) for row in rows]


def revoke(conn: Conn, what: str) -> int:
    """Revoke one token (by token or its lookup id) or every token of a user; returns how many."""
    parts = split_token(what)
    lookup = parts[0] if parts else what
    now = time.time()
    cur = _execute(conn, "UPDATE tokens SET revoked = ? WHERE lookup = ? AND revoked IS NULL", (now, lookup))
    if cur.rowcount:
        return int(cur.rowcount)
    cur = _execute(
        conn,
        "UPDATE tokens SET revoked = ? WHERE revoked IS NULL AND user_id = (SELECT id FROM users WHERE name = ?)",
        (now, what),
    )
    return int(cur.rowcount)


def verify(row_hash: str, secret: str) -> bool:
    return hmac.compare_digest(row_hash, hash_secret(secret))
