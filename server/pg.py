"""PostgreSQL (server.database = "postgresql://..."): the schema with its one version number, and the pool.

psycopg 3 is imported only when a postgresql:// database is configured: the embedded default never pays for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from server.storage import StorageUnavailable

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("syncbed.pg")

# One number for the whole schema; see docs/cluster.md ("Schema versions") for what changes it.
SCHEMA_VERSION: Final = 3
APPLICATION_NAME: Final = "syncbed"
CONNECT_TIMEOUT_S: Final = 5
# A request waits this long for a pooled connection, then is answered 503 (an outage must not hang it);
# while the last attempt failed for want of the database, only briefly: an outage is answered at once.
ACQUIRE_TIMEOUT_S: Final = 3.0
DOWN_ACQUIRE_TIMEOUT_S: Final = 0.25
# One statement may run this long (server side), one use of a connection this long (client side).
STATEMENT_TIMEOUT_MS: Final = 15_000
OPERATION_TIMEOUT_S: Final = 20.0
POOL_MIN, POOL_MAX = 2, 10
_LOCK_KEY: Final = 0x73796E63  # "sync": servers starting together create the schema once, in turn

TABLES: Final = (
    "syncbed_meta",
    *("users", "tokens", "user_tiers", "records", "batches", "unpublished"),
    *("events", "runs", "history_meta"),
)
DDL: Final = """
CREATE TABLE syncbed_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created double precision NOT NULL
);
CREATE TABLE tokens (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users(id),
    lookup text NOT NULL UNIQUE,
    hash text NOT NULL,
    created double precision NOT NULL,
    revoked double precision
);
CREATE TABLE user_tiers (user_id bigint PRIMARY KEY REFERENCES users(id), tier text NOT NULL);
CREATE TABLE records (
    user_id bigint NOT NULL,
    id text NOT NULL,
    url text NOT NULL,
    visited_at bigint NOT NULL,
    title text,
    duration_ms bigint,
    tab_id bigint,
    batch_id bigint NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE TABLE batches (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    run text,
    batch bigint,
    attempt bigint,
    records integer NOT NULL,
    stored integer NOT NULL,
    duplicates integer NOT NULL,
    received double precision NOT NULL,
    ms double precision NOT NULL
);
CREATE INDEX batches_run ON batches(run, batch, attempt);
CREATE TABLE unpublished (name text PRIMARY KEY, batch_id bigint NOT NULL, at double precision NOT NULL);
CREATE TABLE events (
    seq bigserial PRIMARY KEY,
    id bigint NOT NULL,
    run text NOT NULL,
    type text NOT NULL,
    ts double precision NOT NULL,
    batch bigint,
    attempt bigint,
    records bigint,
    stored bigint,
    duplicates bigint,
    data text NOT NULL
);
CREATE INDEX events_run ON events(run, seq);
CREATE TABLE runs (
    run text PRIMARY KEY,
    "user" text,
    status text NOT NULL DEFAULT 'running',
    announced integer NOT NULL DEFAULT 0,
    started double precision NOT NULL,
    finished double precision,
    last_ts double precision NOT NULL,
    total_records bigint,
    total_batches bigint,
    batch_size bigint,
    mode text,
    concurrency bigint,
    ok_batches bigint,
    failed_batches bigint,
    seconds double precision
);
CREATE INDEX runs_started ON runs(started);
CREATE TABLE history_meta (key text PRIMARY KEY, value text NOT NULL);
"""


class SchemaError(StorageUnavailable):
    """The database holds another schema version, or tables that are not ours: the server must not start."""


def shown(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.split("://", 1)[0] + "://..."
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}"))


def one_line(exc: BaseException) -> str:
    """The driver's message on one line (libpq's span several, with a tab-indented hint)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def connection_options() -> dict[str, Any]:
    """What every connection is opened with: autocommit (a statement is its own transaction) and the timeouts."""
    return {
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": APPLICATION_NAME,
        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    }


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection with the schema in place: created on an empty database, else its version checked."""
    import psycopg

    try:
        conn = psycopg.connect(url, **connection_options())
    except psycopg.Error as exc:
        raise StorageUnavailable(f"cannot connect to the database {shown(url)}: {one_line(exc)}") from None
    try:
        prepare(conn, url)
    except psycopg.Error as exc:
        conn.close()
        raise StorageUnavailable(f"cannot prepare the database {shown(url)}: {one_line(exc)}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def prepare(conn: psycopg.Connection[Any], url: str) -> None:
    """Create every table at SCHEMA_VERSION on a database without them; refuse any other version (SchemaError)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        found = conn.execute(
            "SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_tables "
            "WHERE schemaname = current_schema() AND tablename = ANY(%s)",
            (list(TABLES),),
        ).fetchone()
        present: list[str] = (found[0] if found else None) or []
        if not present:
            conn.execute(DDL)
            conn.execute("INSERT INTO syncbed_meta(key, value) VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
            log.info("created the schema (version %d) in %s", SCHEMA_VERSION, shown(url))
            return
        row = None
        if "syncbed_meta" in present:
            row = conn.execute("SELECT value FROM syncbed_meta WHERE key = 'schema_version'").fetchone()
        version = str(row[0]) if row else ""
        if not (version.isascii() and version.isdigit()):
            raise SchemaError(
                f"the database {shown(url)} holds tables named {', '.join(present)} but no syncbed schema version: "
                "point server.database at a database of its own (createdb syncbed)"
            )
        check_version(int(version), url)


def check_version(found: int, url: str) -> None:
    """SchemaError unless `found` is this server's SCHEMA_VERSION, saying what to do either way."""
    if found == SCHEMA_VERSION:
        return
    where = f"the database {shown(url)} has schema version {found}"
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"{where}, newer than this server's {SCHEMA_VERSION}: run the syncbed release that wrote it, "
            "or point server.database at another database"
        )
    raise SchemaError(
        f"{where}, older than this server's {SCHEMA_VERSION}: back it up, then apply the upgrade steps from "
        f"version {found} in docs/cluster.md (Schema versions), or run the syncbed release that wrote it"
    )


class Pool:
    """One process's connections to server.database, shared by storage, history and auth; open while one uses it."""

    def __init__(self, url: str, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        self._users = 0
        self._opening = asyncio.Lock()
        self._checking: asyncio.Task[None] | None = None
        self._reachable = True  # false from a connection error until a connection serves again

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        """Check the schema (created on an empty database) and fill the pool; StorageUnavailable if it cannot."""
        async with self._opening:
            self._users += 1
            if self._pool is not None:
                return
            try:
                self._pool = await self._start()
            except BaseException:
                self._users -= 1
                raise

    async def _start(self) -> AsyncConnectionPool:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        await asyncio.to_thread(lambda: connect(self.url).close())  # SchemaError says what to do
        pool = AsyncConnectionPool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            kwargs=connection_options(),
            timeout=ACQUIRE_TIMEOUT_S,
            # Short, so a connection slot given up during an outage is tried afresh by the next request.
            reconnect_timeout=ACQUIRE_TIMEOUT_S * 2,
            name="syncbed",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            await pool.close()
            raise StorageUnavailable(f"cannot connect to the database {shown(self.url)}: {one_line(exc)}") from None
        return pool

    async def close(self) -> None:
        async with self._opening:
            self._users = max(0, self._users - 1)
            if self._users or self._pool is None:
                return
            pool, self._pool = self._pool, None
            if self._checking is not None:
                self._checking.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._checking
            await pool.close()

    @contextlib.asynccontextmanager
    async def connection(self, doing: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection for one operation; a driver error or a timeout leaves as StorageUnavailable."""
        import psycopg

        pool = self._pool
        if pool is None:
            raise StorageUnavailable("storage is closed")
        wait = ACQUIRE_TIMEOUT_S if self._reachable else DOWN_ACQUIRE_TIMEOUT_S
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_S), pool.connection(timeout=wait) as conn:
                yield conn
            self._reachable = True
        except psycopg.Error as exc:
            self._lost(exc)
            raise StorageUnavailable(f"{doing}: {one_line(exc)}") from exc
        except TimeoutError:
            raise StorageUnavailable(f"{doing}: no answer from the database in {OPERATION_TIMEOUT_S:g} s") from None

    async def fetch(self, doing: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Every row of one statement."""
        async with self.connection(doing) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    def _lost(self, exc: BaseException) -> None:
        """After a lost connection, answer the next requests at once and check the idle connections now
        (one check at a time), so the broken ones go at once rather than one failed request each."""
        pool = self._pool
        if pool is None or not connection_lost(exc):
            return
        self._reachable = False
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(pool.check())
            self._checking.add_done_callback(lambda t: t.cancelled() or t.exception())


# SQLSTATEs of a session the server ended: admin shutdown, crash shutdown, cannot connect now.
_ENDED: Final = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(exc: BaseException) -> bool:
    """The database is out of reach (no answer, refused, ended), not merely this statement failing."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _ENDED
