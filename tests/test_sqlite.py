"""The PRAGMAs every syncbed SQLite file is opened with, on sqlite3 and aiosqlite connections."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from syncbed.sqlite import CLIENT_BUSY_TIMEOUT_MS, SERVER_BUSY_TIMEOUT_MS, apply_pragmas, apply_pragmas_async, pragmas


def settings(conn: sqlite3.Connection) -> tuple[object, ...]:
    return tuple(
        conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("busy_timeout", "journal_mode", "synchronous")
    )


def test_the_busy_timeout_comes_first_so_the_switch_to_wal_waits_for_a_lock() -> None:
    first, *rest = pragmas(1234)
    assert first == "PRAGMA busy_timeout=1234"
    assert rest == ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"]
    assert pragmas(2.9)[0] == "PRAGMA busy_timeout=2"  # type: ignore[arg-type]  # whole milliseconds only


def test_a_sqlite3_connection_gets_all_three(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "a.sqlite3")
    try:
        apply_pragmas(conn, CLIENT_BUSY_TIMEOUT_MS)
        assert settings(conn) == (CLIENT_BUSY_TIMEOUT_MS, "wal", 1)  # 1 is NORMAL
    finally:
        conn.close()
    fresh = sqlite3.connect(tmp_path / "a.sqlite3")
    try:
        assert settings(fresh)[1] == "wal"  # WAL stays with the file; the other two are per connection
    finally:
        fresh.close()


async def test_an_aiosqlite_connection_gets_the_same(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "b.sqlite3") as conn:
        await apply_pragmas_async(conn, SERVER_BUSY_TIMEOUT_MS)
        got = []
        for name in ("busy_timeout", "journal_mode", "synchronous"):
            async with conn.execute(f"PRAGMA {name}") as cur:
                row = await cur.fetchone()
                assert row is not None
                got.append(row[0])
    assert got == [SERVER_BUSY_TIMEOUT_MS, "wal", 1]
