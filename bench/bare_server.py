"""The ingest benchmark's reference: plain Starlette + aiosqlite, no auth, no validation, no limits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def make_app(db_path: Path) -> Starlette:
    lock = asyncio.Lock()
    conn: aiosqlite.Connection | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal conn
        conn = await aiosqlite.connect(db_path)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, url TEXT, visited_at INTEGER, title TEXT,"
            " duration_ms INTEGER, tab_id INTEGER) WITHOUT ROWID"
        )
        yield
        await conn.close()

    async def sync(request: Request) -> JSONResponse:
        visits = json.loads(await request.body())["pageVisits"]
        rows = [
            (v["id"], v["url"], v["visitedAt"], v.get("title"), v.get("durationMs"), v.get("tabId")) for v in visits
        ]
        assert conn is not None
        async with lock:
            await conn.executemany("INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?)", rows)
            await conn.commit()
        return JSONResponse({"accepted": len(rows)})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/api/v1/data/sync", sync, methods=["POST"]), Route("/healthz", healthz)],
                     lifespan=lifespan)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uvicorn.run(make_app(Path(tmp) / "bare.sqlite3"), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
