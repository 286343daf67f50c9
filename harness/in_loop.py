"""An ASGI app under uvicorn on 127.0.0.1 in the caller's event loop, so a test can reach into the app."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from sse_starlette import sse as sse_starlette

from server.serving import uvicorn_options


def reset_sse_starlette() -> None:
    """sse-starlette keeps per-thread shutdown state and a process-wide flag; a new event loop needs both fresh."""
    sse_starlette.AppStatus.should_exit = False
    sse_starlette._thread_state.shutdown_state = None


@contextlib.asynccontextmanager
async def serve_app(app: Any, port: int = 0, timeout: float = 30.0, **options: Any) -> AsyncIterator[uvicorn.Server]:
    """Run `app` until the block ends (`options` go to uvicorn); `port_of(server)` is the port it bound."""
    reset_sse_starlette()  # a server stopped earlier in this process leaves the shutdown flag set
    settings = {"host": "127.0.0.1", "port": port, "log_level": "warning", "lifespan": "off",
                "timeout_graceful_shutdown": 2, **options}  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(**settings)))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + timeout
    while not (server.started or task.done()) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    if not server.started:
        server.should_exit = True
        await asyncio.wait_for(task, timeout)  # raises what stopped it, if anything did
        raise RuntimeError(f"uvicorn did not start within {timeout:g} s")
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout)
        reset_sse_starlette()


def port_of(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


def url_of(server: uvicorn.Server) -> str:
    return f"http://127.0.0.1:{port_of(server)}"
