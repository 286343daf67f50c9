"""Bearer tokens: only a hash is stored; a public lookup part finds the row, the hash is compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "sb"


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


def ensure_user(conn: sqlite3.Connection, name: str) -> int:
    conn.execute("INSERT OR IGNORE INTO users(name, created) VALUES (?, ?)", (name, time.time()))
    row = conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
    return int(row[0])


def create_token(conn: sqlite3.Connection, user: str) -> str:
    """Create the user if needed and return a new bearer token (shown once, never stored)."""
    user_id = ensure_user(conn, user)
    lookup = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO tokens(user_id, lookup, hash, created) VALUES (?, ?, ?, ?)",
        (user_id, lookup, hash_secret(secret), time.time()),
    )
    return f"{PREFIX}_{lookup}_{secret}"


def create_token_at(db_path: Path, user: str) -> str:
    """create_token on the database file at `db_path` (tests, benchmarks and scripts share it)."""
    from server import schema

    conn = schema.connect(db_path)
    try:
        return create_token(conn, user)
    finally:
        conn.close()


def list_tokens(conn: sqlite3.Connection) -> list[TokenInfo]:
    rows = conn.execute(
        "SELECT t.lookup, u.name, t.created, t.revoked FROM tokens t JOIN users u ON u.id = t.user_id "
        "ORDER BY t.created"
    ).fetchall()
    return [TokenInfo(*row) for row in rows]


def revoke(conn: sqlite3.Connection, what: str) -> int:
    """Revoke one token (by token or its lookup id) or every token of a user; returns how many."""
    parts = split_token(what)
    lookup = parts[0] if parts else what
    now = time.time()
    cur = conn.execute("UPDATE tokens SET revoked = ? WHERE lookup = ? AND revoked IS NULL", (now, lookup))
    if cur.rowcount:
        return cur.rowcount
    cur = conn.execute(
        "UPDATE tokens SET revoked = ? WHERE revoked IS NULL AND user_id = (SELECT id FROM users WHERE name = ?)",
        (now, what),
    )
    return cur.rowcount


def verify(row_hash: str, secret: str) -> bool:
    return hmac.compare_digest(row_hash, hash_secret(secret))
