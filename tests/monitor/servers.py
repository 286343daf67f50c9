"""Stand-in servers for the monitor tests (an admin API, an event stream), served in the test's loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.in_loop import serve_app as serve
from harness.in_loop import url_of
from harness.processes import free_port
from syncbed import contract as c
from syncbed.events import BatchStored
from syncbed.faults import FaultSettings
from syncbed.fold import fold
from syncbed.responses import LimitChanged

__all__ = ["AdminRecorder", "EventSource", "free_port", "serve", "url_of"]


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

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        auth = request.headers.get("authorization")
        self.requests.append((request.method, request.url.path, auth, body))
        if auth != f"Bearer {self.token}":
            return JSONResponse(c.error_body(c.E_UNAUTHORIZED, "bad admin token"), status_code=401)
        # Answered in the server's own types, so the monitor decodes what it would get from a real one.
        answer: FaultSettings | LimitChanged
        if request.url.path == c.LIMITS_PATH:
            name, limit = body["rule"], body["limit"]
            answer = LimitChanged(name, "throttle", limit, 1.0, "user", [c.SYNC_PATH], ["POST"], "gcra", True, name)
        else:
            answer = FaultSettings(**body)  # the settings not sent stay at their defaults
        return Response(msgspec.json.encode(answer), media_type="application/json")

    async def run(self, request: Request) -> JSONResponse:
        run = request.path_params["run"]
        self.requests.append((request.method, request.url.path, request.headers.get("authorization"), None))
        stored = BatchStored(ts=1.0, run=run, batch=1, attempt=1, user="u", records=1000, stored=1000, duplicates=0,
                             ms=301.0)  # fmt: skip
        return JSONResponse(msgspec.to_builtins(fold(run, [stored])))


class EventSource:
    """A tiny event stream server: keeps every event (so a restart loses none) and resumes after Last-Event-ID."""

    def __init__(self, token: str, ping: float = 15) -> None:
        self.token = token
        self.ping = ping
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

        return EventSourceResponse(frames(), ping=self.ping)  # type: ignore[arg-type]
