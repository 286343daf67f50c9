"""Tiny real HTTP servers for the monitor tests: uvicorn on a free 127.0.0.1 port in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncbed import contract as c


@contextlib.asynccontextmanager
async def serve(app: Any, port: int = 0) -> AsyncIterator[uvicorn.Server]:
    """Run `app` until the block ends; the bound port is `server.servers[0].sockets[0]`."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    if not server.started:
        task.result() if task.done() else None
        raise RuntimeError("test server did not start")
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def url_of(server: uvicorn.Server) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}"


class AdminRecorder:
    """A stand-in admin API that records each request (method, path, auth header, JSON body)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[tuple[str, str, str | None, Any]] = []
        self.app = Starlette(
            routes=[
                Route(c.FAULTS_PATH, self.handle, methods=["PUT"]),
                Route(c.LIMITS_PATH, self.handle, methods=["PUT"]),
                Route(c.RUNS_PATH + "/{run}", self.run, methods=["GET"]),
            ]
        )

    async def handle(self, request: Request) -> JSONResponse:
        body = await request.json()
        auth = request.headers.get("authorization")
        self.requests.append((request.method, request.url.path, auth, body))
        if auth != f"Bearer {self.token}":
            return JSONResponse(c.error_body(c.E_UNAUTHORIZED, "bad admin token"), status_code=401)
        return JSONResponse({"ok": True, **body})

    async def run(self, request: Request) -> JSONResponse:
        run = request.path_params["run"]
        self.requests.append((request.method, request.url.path, request.headers.get("authorization"), None))
        return JSONResponse(
            {"run": run, "attempts": [{"batch": 1, "attempt": 1, "status": 200, "records": 1000, "ms": 301}]}
        )
