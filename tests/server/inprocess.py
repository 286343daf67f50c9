"""A real uvicorn server on a free 127.0.0.1 port, in the test's own event loop, so tests can reach its state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from sse_starlette import sse as sse_starlette
from starlette.applications import Starlette

from server import tokens
from server.app import create_app
from server.config import FaultSettings, LimitsSettings, ServerSettings, Settings
from server.events import EventBus
from server.history import History
from server.serving import uvicorn_options
from server.state import AppState
from syncbed.paths import SERVER_DB_FILE
from tests.conftest import free_port


def reset_sse_starlette() -> None:
    """sse-starlette keeps per-thread shutdown state and a process-wide flag; a new event loop needs both fresh."""
    sse_starlette.AppStatus.should_exit = False
    sse_starlette._thread_state.shutdown_state = None


@dataclass
class InProcessServer:
    app: Starlette
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.syncbed
        return state

    @property
    def bus(self) -> EventBus:
        return self.state.bus

    @property
    def history(self) -> History:
        history: History = self.app.state.history
        return history

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.state.admin_token}"}

    def token(self, user: str) -> str:
        return tokens.create_token_at(self.data_dir / SERVER_DB_FILE, user)


def settings_for(data_dir: Path, **faults: Any) -> Settings:
    return Settings(
        server=ServerSettings(data_dir=data_dir, port=0, log_level="warning"),
        limits=LimitsSettings(enabled=False),
        faults=FaultSettings(**faults),
    )


@contextlib.asynccontextmanager
async def serve(data_dir: Path, settings: Settings | None = None) -> AsyncIterator[InProcessServer]:
    """Start the app under uvicorn on a free port; stop it (lifespan shutdown included) on exit."""
    reset_sse_starlette()
    app = create_app(settings or settings_for(data_dir), data_dir=data_dir)
    port = free_port()
    config = uvicorn.Config(
        app, **uvicorn_options(host="127.0.0.1", port=port, log_config=None, lifespan="on", timeout_graceful_shutdown=3)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(600):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        server.should_exit = True
        await task
        raise RuntimeError("uvicorn did not start")
    try:
        yield InProcessServer(app=app, port=port, data_dir=data_dir)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        reset_sse_starlette()
