"""The connection settings every SQLite file of syncbed is opened with, for sqlite3 and aiosqlite alike."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import aiosqlite

SERVER_BUSY_TIMEOUT_MS: Final = 30_000
CLIENT_BUSY_TIMEOUT_MS: Final = 10_000  # the client's outbox


def pragmas(busy_timeout_ms: int) -> tuple[str, ...]:
    """The PRAGMAs a connection runs first; busy_timeout comes first so the switch to WAL waits for a lock too."""
    return (
        f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
        "PRAGMA journal_mode=WAL",
        # NORMAL in WAL loses no committed transaction on a process crash, only on an OS crash or power
        # loss; a lost outbox delete merely resends an already stored (idempotent) batch.
        "PRAGMA synchronous=NORMAL",
    )


def apply_pragmas(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    for pragma in pragmas(busy_timeout_ms):
        conn.execute(pragma)


async def apply_pragmas_async(conn: aiosqlite.Connection, busy_timeout_ms: int) -> None:
    for pragma in pragmas(busy_timeout_ms):
        await conn.execute(pragma)
