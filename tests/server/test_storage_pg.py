"""The storage contract on both backends (SQLite file, real PostgreSQL): once, duplicates, all or nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest

from server import pg, tokens
from server.database import stores
from server.storage import RecordStore, StorageUnavailable, Trace
from server.tokens import create_token_at
from syncbed.contract import PageVisit
from tests.conftest import PostgresServer

BACKENDS = ("sqlite", "postgres")


def visits(n: int, start: int = 0, url: str = "https://example.com/") -> list[PageVisit]:
    return [PageVisit(id=f"v-{i}", url=f"{url}{i}", visited_at=1_700_000_000_000 + i) for i in range(start, start + n)]


class Backend:
    """One backend under test: its server.database value and how to read its batches table."""

    def __init__(self, database: str, data_dir: Path, batches: Callable[[], list[tuple[object, ...]]]) -> None:
        self.database = database
        self.data_dir = data_dir
        self.batches = batches

    def token(self, user: str) -> str:
        where: Path | str = self.data_dir / "server.sqlite3" if self.database == "sqlite" else self.database
        return create_token_at(where, user)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    sql = "SELECT records, stored, duplicates FROM batches ORDER BY id"
    if request.param == "sqlite":
        from tests.server.helpers import rows

        return Backend("sqlite", tmp_path, lambda: rows(tmp_path / "server.sqlite3", sql))
    url = request.getfixturevalue("pg_url")

    def read() -> list[tuple[object, ...]]:
        with psycopg.connect(url) as conn:
            return list(conn.execute(sql).fetchall())

    return Backend(url, tmp_path, read)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[RecordStore]:
    for user in ("alice", "bob"):
        backend.token(user)  # a user exists once a token is made for them
    s, _ = stores(backend.database, backend.data_dir)
    await s.open()
    yield s
    await s.close()


async def test_a_batch_is_stored_once_and_again_is_all_duplicates(store: RecordStore, backend: Backend) -> None:
    first = await store.store_batch("alice", visits(5), Trace("run-1", 0, 1), 1.0)
    assert (first.stored, first.duplicates) == (5, 0)
    again = await store.store_batch("alice", visits(5), Trace("run-1", 0, 2), 1.0)
    assert (again.stored, again.duplicates) == (0, 5)
    overlap = await store.store_batch("alice", visits(4, start=3), Trace(), 0.0)
    assert (overlap.stored, overlap.duplicates) == (2, 2)
    assert await store.count("alice") == 7
    assert backend.batches() == [(5, 5, 0), (5, 0, 5), (4, 2, 2)]  # counted in the batch's own transaction


async def test_ids_are_unique_per_user_not_across_users(store: RecordStore) -> None:
    await store.store_batch("alice", visits(3), Trace(), 0.0)
    other = await store.store_batch("bob", visits(3), Trace(), 0.0)
    assert (other.stored, other.duplicates) == (3, 0)
    assert (await store.count("alice"), await store.count("bob")) == (3, 3)


async def test_a_batch_with_a_bad_record_stores_nothing(store: RecordStore, backend: Backend) -> None:
    await store.store_batch("alice", visits(1), Trace(), 0.0)
    bad = visits(5, start=10)
    bad[3] = PageVisit(id="v-13", url=None, visited_at=1)  # type: ignore[arg-type]  # NOT NULL fails mid-batch
    with pytest.raises(StorageUnavailable):
        await store.store_batch("alice", bad, Trace("run-1", 1, 1), 0.0)
    assert await store.count("alice") == 1
    assert len(backend.batches()) == 1
    after = await store.store_batch("alice", visits(2, start=10), Trace(), 0.0)  # nothing was left half done
    assert after.stored == 2


async def test_concurrent_batches_that_share_records_store_each_once(store: RecordStore) -> None:
    # Overlapping, in opposite orders: on PostgreSQL they run on separate connections at once.
    batches = [visits(200, start=(i % 4) * 100) for i in range(8)]
    for b in batches[1::2]:
        b.reverse()
    results = await asyncio.gather(*(store.store_batch("alice", b, Trace(), 0.0) for b in batches))
    assert sum(r.stored for r in results) == 500  # ids 0..499, each stored by exactly one batch
    assert sum(r.duplicates for r in results) == 8 * 200 - 500
    assert await store.count("alice") == 500


async def test_an_unknown_user_is_unavailable_not_created(store: RecordStore) -> None:
    with pytest.raises(StorageUnavailable, match="user 'mallory' vanished"):
        await store.store_batch("mallory", visits(1), Trace(), 0.0)


async def test_tokens_are_rows_of_the_same_store(store: RecordStore, backend: Backend) -> None:
    token = backend.token("carol")
    lookup = token.split("_")[1]
    row = await store.token_row(lookup)
    assert row is not None and row[1] == "carol"
    assert await store.token_row("nope") is None


async def test_a_closed_store_says_so(store: RecordStore) -> None:
    assert await store.problem() is None
    await store.close()
    with pytest.raises(StorageUnavailable, match="storage is closed"):
        await store.store_batch("alice", visits(1), Trace(), 0.0)
    with pytest.raises(StorageUnavailable, match="storage is closed"):
        await store.count("alice")
    assert await store.problem() == "storage is closed"


def test_the_schema_is_made_once_and_its_version_checked(pg_url: str) -> None:
    pg.connect(pg_url).close()
    pg.connect(pg_url).close()  # a second start finds it and checks it
    with psycopg.connect(pg_url, autocommit=True) as conn:
        version = conn.execute("SELECT value FROM syncbed_meta WHERE key = 'schema_version'").fetchall()
        assert version == [(str(pg.SCHEMA_VERSION),)]
        conn.execute("UPDATE syncbed_meta SET value = '99' WHERE key = 'schema_version'")
    newer = f"schema version 99, newer than this server's {pg.SCHEMA_VERSION}: run the syncbed"
    with pytest.raises(pg.SchemaError, match=newer):
        pg.connect(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE syncbed_meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.raises(pg.SchemaError, match=f"schema version 0, older than this server's {pg.SCHEMA_VERSION}: back"):
        pg.connect(pg_url)


def test_a_version_1_database_upgraded_by_the_documented_steps_is_served(pg_url: str) -> None:
    pg.connect(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # what a version 1 server created
        conn.execute("DROP TABLE unpublished")
        conn.execute("DROP TABLE user_tiers")
        conn.execute("UPDATE syncbed_meta SET value = '1' WHERE key = 'schema_version'")
    older = f"older than this server's {pg.SCHEMA_VERSION}: back it up, then apply the upgrade steps"
    with pytest.raises(pg.SchemaError, match=older):
        pg.connect(pg_url)
    docs = (Path(__file__).parents[2] / "docs" / "cluster.md").read_text()
    for version in range(2, pg.SCHEMA_VERSION + 1):
        step = docs.split(f"<!-- upgrade to {version} -->", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
        with psycopg.connect(pg_url) as conn, conn.transaction():  # psql -1 -f step.sql
            conn.execute(step)
    pg.connect(pg_url).close()
    assert tokens.create_token_at(pg_url, "pat", "premium").startswith("sb_")  # the new table is there, used
    conn = tokens.connect(pg_url)
    try:
        assert [(t.user, t.tier) for t in tokens.list_tokens(conn)] == [("pat", "premium")]
    finally:
        conn.close()


def test_a_database_holding_other_tables_of_our_names_is_refused(postgres: PostgresServer) -> None:
    url = postgres.create_database("foreign_records")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE records (x integer)")
        with pytest.raises(pg.SchemaError, match="holds tables named records but no syncbed schema version"):
            pg.connect(url)
    finally:
        postgres.drop_database("foreign_records")


def test_servers_starting_together_create_the_schema_once(pg_url: str) -> None:
    # The advisory lock: five connections racing to create the tables all end with one schema.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda _: pg.connect(pg_url).close(), range(5)))
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM syncbed_meta").fetchone() == (1,)


def test_an_unreachable_database_is_one_sentence() -> None:
    from harness.processes import free_port

    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/db"
    with pytest.raises(StorageUnavailable) as caught:
        pg.connect(url)
    text = str(caught.value)
    assert text.startswith(f"cannot connect to the database postgresql://nobody:***@127.0.0.1:{url.split(':')[3]}")
    assert "secret" not in text and "\n" not in text
