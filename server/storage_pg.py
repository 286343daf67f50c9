"""Record storage in PostgreSQL: a batch is one statement (so one transaction) over a pooled connection."""

from __future__ import annotations

import time

import msgspec

from server.pg import Pool
from server.storage import (
    TOKEN_ROW_SQL,
    UNPUBLISHED_SELECT,
    StorageUnavailable,
    StoredBatch,
    StoreResult,
    TokenRow,
    Trace,
    once_name,
    stored_batch,
    token_row,
)
from syncbed.contract import PageVisit

# The batch's row and its records in one statement: the batch id drawn first, the records inserted under it
# (ON CONFLICT DO NOTHING: a record already there is a duplicate), the batch row written with the count of
# those inserted. The records travel as one JSON text, encoded by msgspec in C (psycopg dumps a list as an
# array element by element in Python: 5 ms a column of 1,000). Sorted by id, so two batches sharing
# records lock them in one order and cannot deadlock.
_STORE = """
WITH b AS (SELECT nextval(pg_get_serial_sequence('batches', 'id')) AS id),
ins AS (
    INSERT INTO records(user_id, id, url, visited_at, title, duration_ms, tab_id, batch_id)
    SELECT %(uid)s::bigint, r.id, r.url, r."visitedAt", r.title, r."durationMs", r."tabId", b.id
    FROM b, json_to_recordset(%(records)s::json)
        AS r(id text, url text, "visitedAt" bigint, title text, "durationMs" bigint, "tabId" bigint)
    ORDER BY r.id COLLATE "C"
    ON CONFLICT (user_id, id) DO NOTHING
    RETURNING 1
),
n AS (SELECT count(*)::integer AS stored FROM ins),
note AS (INSERT INTO unpublished(name, batch_id, at) SELECT %(once)s::text, b.id, %(received)s::float8 FROM b
         WHERE %(once)s::text IS NOT NULL)
INSERT INTO batches(id, user_id, run, batch, attempt, records, stored, duplicates, received, ms)
SELECT b.id, %(uid)s::bigint, %(run)s::text, %(batch)s::bigint, %(attempt)s::bigint, %(n)s::integer,
       n.stored, %(n)s::integer - n.stored, %(received)s::float8, %(ms)s::float8
FROM b, n
RETURNING stored
"""
_TOKEN_ROW = TOKEN_ROW_SQL.replace("?", "%s")
_encode = msgspec.json.Encoder().encode
# Two batches that still meet in a lock cycle (the sort makes that rare) are told so by PostgreSQL; retried.
_TRIES = 3


class PgStorage:
    """Atomic, idempotent batch writes and per-user counts, shared by every server pointed at the database."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._user_ids: dict[str, int] = {}
        self.damage: str | None = None  # SQLite's notion; PostgreSQL guards its own files
        self.note_unpublished = False  # set when events go to a shared stream (server/unpublished.py)

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    def note(self, exc: BaseException) -> StorageUnavailable:
        return exc if isinstance(exc, StorageUnavailable) else StorageUnavailable(str(exc))

    async def user_id(self, name: str) -> int:
        cached = self._user_ids.get(name)
        if cached is not None:
            return cached
        rows = await self.pool.fetch("reading a user", "SELECT id FROM users WHERE name = %s", (name,))
        if not rows:
            raise StorageUnavailable(f"user {name!r} vanished")
        self._user_ids[name] = int(rows[0][0])
        return int(rows[0][0])

    async def store_batch(self, user: str, visits: list[PageVisit], trace: Trace, ms_so_far: float) -> StoreResult:
        """Store a whole batch in one transaction; records already there count as duplicates."""
        import psycopg

        uid = await self.user_id(user)
        once = once_name() if self.note_unpublished else None
        params = {
            "uid": uid,
            "records": _encode(visits).decode(),  # wire names; a field left out is NULL
            "run": trace.run,
            "batch": trace.batch,
            "attempt": trace.attempt,
            "n": len(visits),
            "received": time.time(),
            "ms": ms_so_far,
            "once": once,
        }
        for attempt in range(1, _TRIES + 1):
            try:
                async with self.pool.connection("storing a batch") as conn:
                    cur = await conn.execute(_STORE, params)
                    row = await cur.fetchone()
            except StorageUnavailable as exc:
                lock_cycle = psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure
                if attempt < _TRIES and isinstance(exc.__cause__, lock_cycle):
                    continue
                raise
            stored = int(row[0]) if row else 0
            return StoreResult(stored=stored, duplicates=len(visits) - stored, once=once)
        raise AssertionError("unreachable: the last try returns or raises")

    async def count(self, user: str) -> int:
        uid = await self.user_id(user)
        rows = await self.pool.fetch("counting records", "SELECT count(*) FROM records WHERE user_id = %s", (uid,))
        return int(rows[0][0]) if rows else 0

    async def token_row(self, lookup: str) -> TokenRow | None:
        return token_row(await self.pool.fetch("reading a token", _TOKEN_ROW, (lookup,)))

    async def unpublished(self, older_than: float, limit: int) -> list[StoredBatch]:
        """Noted batches older than `older_than` (epoch seconds), oldest first."""
        query = UNPUBLISHED_SELECT + "WHERE p.at < %s ORDER BY p.at LIMIT %s"
        rows = await self.pool.fetch("reading unpublished batches", query, (older_than, limit))
        return [stored_batch(r) for r in rows]

    async def published(self, names: list[str]) -> None:
        """Their events are on the stream: the notes go."""
        await self.pool.fetch(
            "forgetting published batches", "DELETE FROM unpublished WHERE name = ANY(%s) RETURNING name", (names,)
        )

    async def problem(self) -> str | None:
        """Why storage cannot serve, or None: a real read of the schema's version row."""
        try:
            await self.pool.fetch("reading the schema version", "SELECT value FROM syncbed_meta LIMIT 1")
        except StorageUnavailable as exc:
            return str(exc)
        return None
