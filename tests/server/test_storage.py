"""Storage on a real SQLite file: atomic idempotent batches, per-user counts, and damage said once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.storage import (
    Storage,
    StorageDamaged,
    StorageUnavailable,
    Trace,
    check_database,
    damaged_message,
    is_damage,
)
from server.tokens import create_token_at
from syncbed.contract import PageVisit
from syncbed.sqlite import SERVER_BUSY_TIMEOUT_MS
from tests.server.helpers import rows


def visits(n: int, start: int = 0, url: str = "https://example.com/") -> list[PageVisit]:
    return [PageVisit(id=f"v-{i}", url=f"{url}{i}", visited_at=1_700_000_000_000 + i) for i in range(start, start + n)]


def not_a_database(path: Path) -> sqlite3.DatabaseError:
    """The error SQLite itself raises for a file that is not a database."""
    path.write_bytes(b"this is not an SQLite file, just text " * 200)
    conn = sqlite3.connect(path)
    try:
        conn.execute("SELECT * FROM sqlite_schema").fetchall()
    except sqlite3.DatabaseError as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("SQLite read garbage as a database")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    path = tmp_path / "server.sqlite3"
    for user in ("alice", "bob"):
        create_token_at(path, user)  # a user exists once a token is made for them
    s = Storage(path)
    await s.open()
    yield s
    await s.close()


async def test_open_puts_both_connections_in_wal_with_the_servers_busy_timeout(store: Storage) -> None:
    assert rows(store.path, "PRAGMA journal_mode") == [("wal",)]  # WAL is a property of the file
    for conn in (store._writer, store.reader):
        assert conn is not None
        for pragma, want in (("busy_timeout", SERVER_BUSY_TIMEOUT_MS), ("synchronous", 1)):  # 1 = NORMAL
            async with conn.execute(f"PRAGMA {pragma}") as cur:
                assert await cur.fetchone() == (want,), pragma


async def test_open_creates_the_schema_on_a_new_file(tmp_path: Path) -> None:
    s = Storage(tmp_path / "new.sqlite3")
    await s.open()
    try:
        tables = {str(r[0]) for r in rows(s.path, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert {"users", "tokens", "records", "batches"} <= tables
        assert await s.problem() is None
    finally:
        await s.close()


async def test_a_batch_is_stored_with_its_trace(store: Storage) -> None:
    result = await store.store_batch("alice", visits(3), Trace("run-1", 4, 2), 12.5)
    assert (result.stored, result.duplicates) == (3, 0)
    assert await store.count("alice") == 3
    (batch,) = rows(store.path, "SELECT id, run, batch, attempt, records, stored, duplicates, ms FROM batches")
    assert batch[1:] == ("run-1", 4, 2, 3, 3, 0, 12.5)
    stored = rows(store.path, "SELECT id, url, visited_at, batch_id FROM records ORDER BY id")
    assert stored == [(f"v-{i}", f"https://example.com/{i}", 1_700_000_000_000 + i, batch[0]) for i in range(3)]


async def test_a_batch_without_trace_headers_stores_nulls(store: Storage) -> None:
    await store.store_batch("alice", visits(1), Trace(), 0.0)
    assert rows(store.path, "SELECT run, batch, attempt FROM batches") == [(None, None, None)]


async def test_a_resent_record_is_a_duplicate_and_the_first_copy_stays(store: Storage) -> None:
    await store.store_batch("alice", visits(3), Trace(), 0.0)
    again = await store.store_batch("alice", visits(4, start=1, url="https://other.example/"), Trace(), 0.0)
    assert (again.stored, again.duplicates) == (2, 2)
    assert await store.count("alice") == 5
    assert rows(store.path, "SELECT url FROM records WHERE id = 'v-1'") == [("https://example.com/1",)]
    assert rows(store.path, "SELECT stored, duplicates FROM batches ORDER BY id") == [(3, 0), (2, 2)]


async def test_ids_are_unique_per_user_not_across_users(store: Storage) -> None:
    await store.store_batch("alice", visits(3), Trace(), 0.0)
    other = await store.store_batch("bob", visits(3), Trace(), 0.0)
    assert (other.stored, other.duplicates) == (3, 0)
    assert (await store.count("alice"), await store.count("bob")) == (3, 3)


async def test_a_batch_is_stored_whole_or_not_at_all(store: Storage) -> None:
    await store.store_batch("alice", visits(1), Trace(), 0.0)
    bad = visits(5, start=10)
    bad[3] = PageVisit(id="v-13", url=None, visited_at=1)  # type: ignore[arg-type]  # NOT NULL fails mid-batch
    with pytest.raises(StorageUnavailable):
        await store.store_batch("alice", bad, Trace("run-1", 1, 1), 0.0)
    assert await store.count("alice") == 1
    assert rows(store.path, "SELECT count(*) FROM batches") == [(1,)]
    assert store.damage is None  # a failed write is not damage
    after = await store.store_batch("alice", visits(2, start=10), Trace(), 0.0)  # the transaction was closed
    assert after.stored == 2


async def test_concurrent_batches_do_not_share_a_transaction(store: Storage) -> None:
    results = await asyncio.gather(
        *(store.store_batch("alice", visits(50, start=i * 50), Trace(), 0.0) for i in range(8))
    )
    assert [r.stored for r in results] == [50] * 8
    assert await store.count("alice") == 400
    assert rows(store.path, "SELECT sum(records), sum(stored) FROM batches") == [(400, 400)]


async def test_an_unknown_user_is_unavailable_not_created(store: Storage) -> None:
    with pytest.raises(StorageUnavailable, match="user 'mallory' vanished"):
        await store.store_batch("mallory", visits(1), Trace(), 0.0)
    assert rows(store.path, "SELECT count(*) FROM users WHERE name = 'mallory'") == [(0,)]


async def test_a_closed_storage_says_so(store: Storage) -> None:
    await store.close()
    with pytest.raises(StorageUnavailable, match="storage is closed"):
        await store.store_batch("alice", visits(1), Trace(), 0.0)
    with pytest.raises(StorageUnavailable, match="storage is closed"):
        await store.count("alice")
    assert await store.problem() == "storage is closed"


async def test_noted_damage_stops_every_read_and_write_and_is_logged_once(
    store: Storage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exc = not_a_database(tmp_path / "garbage")
    caplog.set_level(logging.ERROR, logger="syncbed.storage")
    first = store.note(exc)
    assert isinstance(first, StorageDamaged)
    assert isinstance(store.note(exc), StorageDamaged)
    assert len([r for r in caplog.records if "is damaged" in r.getMessage()]) == 1
    assert str(store.path) in caplog.records[0].getMessage()
    with pytest.raises(StorageDamaged):
        await store.store_batch("alice", visits(1), Trace(), 0.0)
    with pytest.raises(StorageDamaged):
        await store.count("alice")
    assert await store.problem() == f"the database is damaged ({exc})"
    assert rows(store.path, "SELECT count(*) FROM batches") == [(0,)]  # refused before writing


def test_note_keeps_other_errors_temporary(tmp_path: Path) -> None:
    s = Storage(tmp_path / "x.sqlite3")
    busy = sqlite3.OperationalError("database is locked")
    noted = s.note(busy)
    assert type(noted) is StorageUnavailable and str(noted) == "database is locked"
    already = StorageUnavailable("closed")
    assert s.note(already) is already
    assert s.damage is None


def test_is_damage_knows_sqlites_own_damage_codes(tmp_path: Path) -> None:
    assert is_damage(not_a_database(tmp_path / "garbage"))
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode = sqlite3.SQLITE_CORRUPT | (1 << 8)  # an extended code
    assert is_damage(corrupt)
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    assert not is_damage(full)
    assert not is_damage(sqlite3.DatabaseError("no code"))
    assert not is_damage(ValueError("not sqlite"))


def test_the_damage_sentence_names_the_file_and_what_to_do() -> None:
    path = Path("/data/server.sqlite3")
    text = damaged_message(path, "file is\n  not a database" + "x" * 300)
    assert text.startswith("the database /data/server.sqlite3 is damaged (file is not a database")
    assert "\n" not in text
    assert len(text) < 200 + 200  # the detail is cut at 200 characters
    assert text.endswith(
        "; restore it from a backup, or move it and its -wal and -shm files aside to start with an empty one"
    )
    assert "); stop the server and restore" in damaged_message(path, "x", running=True)


def test_check_database_passes_a_missing_an_empty_and_a_sound_file(tmp_path: Path) -> None:
    check_database(tmp_path / "missing.sqlite3")
    (tmp_path / "empty.sqlite3").touch()
    check_database(tmp_path / "empty.sqlite3")
    sound = tmp_path / "sound.sqlite3"
    create_token_at(sound, "alice")
    check_database(sound)


def test_check_database_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "server.sqlite3"
    not_a_database(path)
    with pytest.raises(StorageDamaged) as caught:
        check_database(path)
    assert str(caught.value) == damaged_message(path, "file is not a database")


def test_check_database_refuses_a_file_with_a_garbled_table(tmp_path: Path) -> None:
    path = tmp_path / "server.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [(f"row {i}" * 20,) for i in range(2000)])
    conn.commit()
    conn.close()
    page = 4096
    with path.open("r+b") as fh:
        fh.seek(5 * page + 8)  # inside a leaf of t, past its page header: the b-tree's cells go bad
        fh.write(b"\xff" * (page - 16))
    with pytest.raises(StorageDamaged, match=r"is damaged \("):
        check_database(path)


async def test_open_on_a_file_that_is_not_a_database_is_damage_and_leaves_nothing_open(tmp_path: Path) -> None:
    path = tmp_path / "server.sqlite3"
    not_a_database(path)
    s = Storage(path)
    with pytest.raises(StorageDamaged, match="file is not a database"):
        await s.open()
    assert s._writer is None and s._reader is None
