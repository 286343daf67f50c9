"""Tiny real HTTP servers for the monitor tests: uvicorn on a free 127.0.0.1 port in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.serving import uvicorn_options
from syncbed import contract as c
from syncbed.events import BatchStored
from syncbed.fold import fold


@contextlib.asynccontextmanager
async def serve(app: Any, port: int = 0) -> AsyncIterator[uvicorn.Server]:
    """Run `app` until the block ends; the bound port is `server.servers[0].sockets[0]`."""
    from sse_starlette.sse import AppStatus

    AppStatus.should_exit = False  # sse-starlette's shutdown flag is global: a stopped server leaves it set
    config = uvicorn.Config(
        app,
        **uvicorn_options(
            host="127.0.0.1", port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        ),
    )
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
        stored = BatchStored(ts=1.0, run=run, batch=1, attempt=1, user="u", records=1000, stored=1000, duplicates=0,
                             ms=301.0)  # fmt: skip
        return JSONResponse(msgspec.to_builtins(fold(run, [stored])))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EventSource:
    """A tiny event stream server: keeps every event (so a restart loses none) and resumes after Last-Event-ID."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.resume_headers: list[str | None] = []
        self.app = Starlette(routes=[Route(c.EVENTS_PATH, self.stream, methods=["GET"])])

    def publish(self, type_: str, **fields: Any) -> int:
        event_id = len(self.events) + 1
        self.events.append((event_id, type_, {"ts": float(event_id), "type": type_, **fields}))
        return event_id

    async def stream(self, request: Request) -> Any:
        from sse_starlette import EventSourceResponse

        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(c.error_body(c.E_UNAUTHORIZED, "bad admin token"), status_code=401)
        last = request.headers.get(c.HEADER_LAST_EVENT_ID)
        self.resume_headers.append(last)
        after = int(last) if last else 0

        async def frames() -> AsyncIterator[dict[str, Any]]:
            sent = after
            while True:
                while sent < len(self.events):
                    event_id, type_, data = self.events[sent]
                    yield {"id": str(event_id), "event": type_, "data": json.dumps(data)}
                    sent += 1
                await asyncio.sleep(0.02)

        return EventSourceResponse(frames(), ping=15)
