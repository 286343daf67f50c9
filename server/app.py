"""The Starlette application: routes, middleware and the lifespan that opens and closes everything."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import admin as admin_api
from server import runs, sse
from server.access_log import AccessLogMiddleware
from server.admin_token import ensure_admin_token
from server.auth import Auth
from server.config import Settings
from server.cors import cors_middleware
from server.database import stores
from server.events import bus_url, open_bus
from server.faults import Faults
from server.ingest import SyncEndpoint
from server.responses import ApiError, JSONResponse, error_response
from server.serving import LIMITS_STATE_KEY, http_limits
from server.state import AppState
from server.storage import StorageUnavailable
from server.throttle import open_limiter
from server.throttle_middleware import ThrottleMiddleware
from syncbed import contract
from syncbed.gc_settle import settle
from syncbed.paths import private_dir

log = logging.getLogger("syncbed.server")


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.syncbed
    return state


async def healthz(request: Request) -> Response:
    problem = await _state(request).storage.problem()
    if problem is not None:
        raise ApiError(503, contract.E_UNAVAILABLE, f"Storage cannot serve: {problem}.")
    return JSONResponse({"status": "ok"})


async def count(request: Request) -> Response:
    state = _state(request)
    user = await state.auth.user_for_scope(request.scope)
    if user is None:
        raise ApiError(
            401, contract.E_UNAUTHORIZED, "A valid bearer token is required; send Authorization: Bearer <token>."
        )
    return JSONResponse({"count": await state.storage.count(user)})  # a storage error: storage_error's 503


async def http_error(request: Request, exc: Exception) -> Response:
    """Every HTTPException in the error shape: the routes' ApiError, and the router's own 404 and 405."""
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ApiError):
        return exc.response()
    if exc.status_code == 404:
        return error_response(404, contract.E_NOT_FOUND, f"No such endpoint: {request.url.path}.")
    if exc.status_code == 405:
        allow = allowed_methods(request)
        return error_response(
            405,
            contract.E_METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {request.url.path}; use {allow}.",
            headers={"Allow": allow},
        )
    return error_response(exc.status_code, "http_error", str(exc.detail))


async def storage_error(request: Request, exc: Exception) -> Response:
    """Any storage error on any route (auth, records, run history) is a 503, logged on one line."""
    _state(request).storage.note(exc)
    request.scope.setdefault("state", {})["syncbed.error"] = contract.E_UNAVAILABLE
    log.warning("storage unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, contract.E_UNAVAILABLE, "Storage is unavailable right now; retry later.")


def allowed_methods(request: Request) -> str:
    """Every method some route of this path takes (RFC 9110 15.5.6): one path may have several routes."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(request.url.path):
            methods |= route.methods
    return ", ".join(sorted(methods))


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "The server hit an unexpected error; it has been logged.")


def create_app(settings: Settings, *, data_dir: Path | None = None) -> Starlette:
    """Build the app; nothing is opened until the lifespan starts."""
    data_dir = data_dir or settings.server.data_dir

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        private_dir(data_dir)
        admin = ensure_admin_token(data_dir, settings.server.admin_token)
        storage, history = stores(settings.server.database, data_dir)  # SQLite in data_dir, or PostgreSQL
        await storage.open()
        bus = open_bus(bus_url(settings), settings.server.bus_maxlen)
        f = settings.faults
        faults = Faults(
            latency_ms=f.latency_ms, jitter_ms=f.jitter_ms, error_rate=f.error_rate, reset_rate=f.reset_rate
        )
        await history.open(bus)  # before any event: ids continue after the last one stored
        auth = Auth(storage.token_row)
        state = AppState(
            settings=settings,
            storage=storage,
            auth=auth,
            bus=bus,
            faults=faults,
            history=history,
            admin_token=admin,
            limiter=await open_limiter(settings, bus, auth.caller_for_authorization),
        )
        unpublished = None
        if bus.shared:  # a cluster: live edits through Redis, taken from it before the first request
            from server.bus_redis import RedisBus, share_hot_keys
            from server.cluster_config import ClusterConfig
            from server.unpublished import Unpublished

            assert isinstance(bus, RedisBus)

            state.cluster = ClusterConfig(bus_url(settings), faults, state.limiter)
            await state.cluster.start()
            share_hot_keys(bus, state.limiter)
            unpublished = Unpublished(storage, bus)
        app.state.syncbed = state
        app.state.history = history  # the run routes' way in (server/runs.py)
        bus.stats.add_source("faults", faults.snapshot)
        c = state.counters  # ingest and throttle count here; the 1 Hz stats event reads it
        bus.stats.read_from(lambda: (c.records, c.requests, c.throttled, state.in_flight))
        bus.stats.add_source("limiter", state.limiter.top_keys)
        bus.stats.add_source("rules", state.limiter.snapshot)
        bus.stats.add_source("response", lambda: state.limiter.style.name)
        await bus.start()
        if unpublished is not None:
            await unpublished.start()
        try:
            yield {LIMITS_STATE_KEY: http_limits(settings.server)}  # lifespan state: read by server/protocol.py
        finally:
            if state.cluster is not None:
                await state.cluster.aclose()
            await state.limiter.aclose()
            await bus.close()
            if unpublished is not None:
                await unpublished.aclose()
            await history.close()  # writes what is still queued: the history stays exact
            await storage.close()

    routes = [
        Route(contract.HEALTH_PATH, healthz, methods=["GET"]),
        Route(contract.COUNT_PATH, count, methods=["GET"]),
        Route(contract.SYNC_PATH, SyncEndpoint()),
        *sse.routes(),
        *runs.routes(),
        *admin_api.routes(),
    ]
    # CORS outermost: preflights never reach the limiter, and a 429 still carries the CORS headers.
    cors = cors_middleware(settings.server.cors_origins)
    middleware = [*cors, Middleware(AccessLogMiddleware), Middleware(ThrottleMiddleware)]
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_error,
            sqlite3.DatabaseError: storage_error,
            StorageUnavailable: storage_error,
            Exception: server_error,
        },
    )


def from_environment() -> Starlette:
    """Factory for multi-worker uvicorn: each worker rebuilds Settings from SYNCBED_* variables."""
    import os

    from server.config import load_settings
    from server.logs import configure_logging

    config = os.environ.get("SYNCBED_CONFIG")
    settings = load_settings(Path(config) if config else None)
    configure_logging(settings.server.log_level)
    app = create_app(settings)
    settle()  # each worker is a process of its own
    return app
