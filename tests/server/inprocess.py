"""A real uvicorn server on a free 127.0.0.1 port, in the test's own event loop, so tests can reach its state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from harness.in_loop import port_of, serve_app
from server import tokens
from server.app import create_app
from server.config import FaultSettings, LimitsSettings, ServerSettings, Settings
from server.events import EventBus
from server.history import History
from server.state import AppState
from syncbed.paths import SERVER_DB_FILE


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
    app = create_app(settings or settings_for(data_dir), data_dir=data_dir)
    options = {"log_config": None, "log_level": None, "lifespan": "on", "timeout_graceful_shutdown": 3}
    async with serve_app(app, **options) as server:
        yield InProcessServer(app=app, port=port_of(server), data_dir=data_dir)
