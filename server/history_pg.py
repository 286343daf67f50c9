"""Run history's SQL in PostgreSQL: the same tables and answers as server/history_sqlite.py, over the shared pool."""

from __future__ import annotations

from server.history_db import RUN_COLUMNS, Chunk, RunRow, event_row, run_updates, unwritten
from server.pg import Pool
from syncbed.events import (
    BATCH_EVENT_TYPES,
    EV_BATCH_REJECTED,
    EV_BATCH_STORED,
    EV_REQUEST_THROTTLED,
)
from syncbed.runs import RunTotals

_COLUMNS = ", ".join(f'"{c}"' for c in RUN_COLUMNS)  # "user" is a reserved word here
_INSERT_EVENT = (
    "INSERT INTO events(id, run, type, ts, batch, attempt, records, stored, duplicates, data) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_SEEN_RUN = (
    'INSERT INTO runs(run, "user", started, last_ts) VALUES (%s, %s, %s, %s) ON CONFLICT (run) DO UPDATE SET '
    'last_ts = GREATEST(runs.last_ts, excluded.last_ts), "user" = coalesce(runs."user", excluded."user")'
)
# A run's first user owns it for good: later claims only read who that is (one statement: atomic across servers).
_CLAIM = (
    'INSERT INTO runs(run, "user", started, last_ts) VALUES (%s, %s, %s, %s) ON CONFLICT (run) DO UPDATE SET '
    '"user" = coalesce(runs."user", excluded."user") RETURNING "user"'
)
_STARTED = (
    "UPDATE runs SET \"user\" = %s, announced = 1, status = 'running', started = LEAST(started, %s), "
    "finished = NULL, total_records = %s, total_batches = %s, batch_size = %s, mode = %s, concurrency = %s "
    "WHERE run = %s"
)
_FINISHED = (
    "UPDATE runs SET status = %s, finished = %s, ok_batches = %s, failed_batches = %s, seconds = %s WHERE run = %s"
)
_LAST_ID = (
    "INSERT INTO history_meta(key, value) VALUES ('last_id', %s) ON CONFLICT (key) DO UPDATE SET "
    "value = GREATEST(history_meta.value::bigint, excluded.value::bigint)::text"
)
_LAST_ID_ROW = "INSERT INTO history_meta(key, value) VALUES ('last_id', '0') ON CONFLICT (key) DO NOTHING"
_WRITTEN = "SELECT value::bigint FROM history_meta WHERE key = 'last_id' FOR UPDATE"
_TYPES = ",".join(f"'{t}'" for t in BATCH_EVENT_TYPES)
_STORED = f"type = '{EV_BATCH_STORED}'"
# server/history_sqlite.py's totals, in PostgreSQL's words; in RunTotals' order.
_TOTALS = f"""
SELECT run,
    count(DISTINCT batch) FILTER (WHERE type IN ({_TYPES})),
    count(DISTINCT batch) FILTER (WHERE {_STORED}),
    count(DISTINCT coalesce(batch::text, '') || ':' || coalesce(attempt::text, '')) FILTER (WHERE type IN ({_TYPES})),
    coalesce(sum(stored) FILTER (WHERE {_STORED}), 0),
    coalesce(sum(records) FILTER (WHERE {_STORED}), 0),
    coalesce(sum(duplicates) FILTER (WHERE {_STORED}), 0),
    count(*) FILTER (WHERE type = '{EV_REQUEST_THROTTLED}'),
    count(*) FILTER (WHERE type = '{EV_BATCH_REJECTED}'),
    count(*)
FROM events WHERE run = ANY(%s) GROUP BY run
"""


class PgHistoryDb:
    """The history tables in the shared database: every server's runs in one place, readable from any."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._open = False

    async def open(self) -> None:
        await self.pool.open()
        self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.pool.close()

    @property
    def is_open(self) -> bool:
        return self._open

    async def last_id(self) -> int:
        rows = await self.pool.fetch(
            "reading the last event id",
            "SELECT GREATEST(coalesce((SELECT max(id) FROM events), 0), "
            "coalesce((SELECT value::bigint FROM history_meta WHERE key = 'last_id'), 0))",
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def save_last_id(self, last_id: int) -> None:
        async with self.pool.connection("saving the last event id") as conn:
            await conn.execute(_LAST_ID, (str(last_id),))

    async def owners(self, runs: list[str]) -> dict[str, str | None]:
        rows = await self.pool.fetch("reading run owners", 'SELECT run, "user" FROM runs WHERE run = ANY(%s)', (runs,))
        return {str(run): user for run, user in rows}

    async def claim(self, run: str, user: str, now: float) -> str | None:
        rows = await self.pool.fetch("claiming a run", _CLAIM, (run, user, now, now))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    async def write(self, chunk: Chunk) -> None:
        async with self.pool.connection("writing run events") as conn, conn.transaction():
            cur = conn.cursor()
            if chunk.shared:
                # The last_id row locked for the transaction: two workers' writers take turns, and the
                # second skips what the first wrote.
                await cur.execute(_LAST_ID_ROW)
                await cur.execute(_WRITTEN)
                row = await cur.fetchone()
                chunk = unwritten(chunk, int(row[0]) if row and row[0] is not None else 0)
            if chunk.events:
                await cur.executemany(_INSERT_EVENT, [event_row(e) for e in chunk.events])
            # Runs in one order: two servers writing the same runs lock their rows without a cycle.
            seen = [(run, *chunk.runs[run]) for run in sorted(chunk.runs)]
            if seen:
                await cur.executemany(_SEEN_RUN, seen)
            for started, params in run_updates(chunk.events):  # in event order
                await cur.execute(_STARTED if started else _FINISHED, params)
            if chunk.last_id is not None:
                await cur.execute(_LAST_ID, (str(chunk.last_id),))

    async def run_row(self, run: str) -> RunRow | None:
        rows = await self.pool.fetch("reading a run", f"SELECT {_COLUMNS} FROM runs WHERE run = %s", (run,))
        return dict(zip(RUN_COLUMNS, rows[0], strict=True)) if rows else None

    async def run_rows(self, user: str | None, limit: int) -> list[RunRow]:
        where = 'WHERE "user" = %s' if user is not None else ""
        params: tuple[object, ...] = (user, limit) if user is not None else (limit,)
        # COLLATE "C": ties in the order SQLite gives them (bytes), whatever the database's collation.
        sql = f'SELECT {_COLUMNS} FROM runs {where} ORDER BY started DESC, run COLLATE "C" LIMIT %s'
        rows = await self.pool.fetch("listing runs", sql, params)
        return [dict(zip(RUN_COLUMNS, r, strict=True)) for r in rows]

    async def totals(self, runs: list[str]) -> dict[str, RunTotals]:
        rows = await self.pool.fetch("counting run totals", _TOTALS, (runs,))
        return {str(r[0]): RunTotals(*(int(v) for v in r[1:])) for r in rows}

    async def events(self, run: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        rows = await self.pool.fetch(
            "reading run events",
            "SELECT seq, data FROM events WHERE run = %s AND seq > %s ORDER BY seq LIMIT %s",
            (run, after_seq, limit),
        )
        return [(int(seq), str(data)) for seq, data in rows]
