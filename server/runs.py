"""Run endpoints: announce, finish, list, inspect and export a run's events as JSON Lines."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from server.admin import Caller, app_state, caller, read_json_object
from server.history import History
from server.responses import ApiError, JSONResponse
from server.storage import StorageUnavailable
from syncbed.contract import (
    E_FORBIDDEN,
    E_INVALID_REQUEST,
    E_NOT_FOUND,
    E_UNAVAILABLE,
    RUNS_PATH,
    RunFinish,
    RunStart,
)
from syncbed.events import RunFinished, RunStarted
from syncbed.runs import RunList
from syncbed.wire import ascii_int, run_id_problem

MAX_LIST = 500
T = TypeVar("T", RunStart, RunFinish)


def history_of(request: Request) -> History:
    history: History = request.app.state.history
    return history


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _invalid(message: str, field: str | None = None) -> ApiError:
    if field is None:
        return ApiError(422, E_INVALID_REQUEST, message)
    return ApiError(422, E_INVALID_REQUEST, message, field=field)


async def _body(request: Request, kind: type[T]) -> T:
    raw = await read_json_object(request)
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        # msgspec says e.g. "Expected `int` >= 1 - at `$.batch_size`": name the field plainly.
        text = str(exc)
        m = re.search(r"\$\.(\w+)", text)
        raise _invalid(f"Invalid {kind.__name__} body: {text}.", m.group(1) if m else None) from None


async def _user_caller(request: Request) -> Caller:
    who = await caller(request)
    if who.admin or who.user is None:
        raise ApiError(
            403, E_FORBIDDEN, "Runs are announced and finished with the syncing user's token, not the admin token."
        )
    return who


def _run_id(request: Request) -> str:
    run = str(request.path_params["run"])
    problem = run_id_problem(run)
    if problem is not None:
        raise _invalid(f"run: {problem}", "run")
    return run


async def _visible_run(request: Request, who: Caller) -> tuple[str, dict[str, object]]:
    """The run's row if this caller may see it: the admin sees all, a user only their own."""
    run = _run_id(request)
    history = history_of(request)
    await history.flush()
    row = await history.run_row(run)
    if row is None:
        raise ApiError(404, E_NOT_FOUND, f"There is no run {run!r}.")
    if not who.admin and row.get("user") != who.user:  # a run without an owner (older data) is the admin's
        raise ApiError(403, E_FORBIDDEN, f"Run {run!r} belongs to another user.")
    return run, row


async def start_run(request: Request) -> Response:
    """POST /api/v1/runs: announce a run; re-announcing one's own run id is allowed (a client retry)."""
    who = await _user_caller(request)
    body = await _body(request, RunStart)
    run = body.run or new_run_id()
    assert who.user is not None
    try:
        owner = await history_of(request).claim(run, who.user)
    except StorageUnavailable:
        raise ApiError(503, E_UNAVAILABLE, "Storage is unavailable right now; retry the announcement later.") from None
    if owner != who.user:
        raise ApiError(
            403,
            E_FORBIDDEN,
            f"Run {run!r} belongs to another user; announce a run id of your own, or leave run out and the "
            "server picks one.",
            field="run",
        )
    app_state(request).bus.publish(RunStarted(**{**msgspec.structs.asdict(body), "run": run, "user": who.user}))
    return JSONResponse({"run": run}, status_code=201)


async def finish_run(request: Request) -> Response:
    """POST /api/v1/runs/{run}/finish: the client's verdict on its run."""
    who = await _user_caller(request)
    run, _ = await _visible_run(request, who)
    body = await _body(request, RunFinish)
    app_state(request).bus.publish(RunFinished(**{**msgspec.structs.asdict(body), "run": run, "user": who.user}))
    return JSONResponse({"run": run, "status": body.status})


async def list_runs(request: Request) -> Response:
    """GET /api/v1/runs[?limit=N]: recent runs, newest first, with totals and status."""
    who = await caller(request)
    raw = request.query_params.get("limit", "50")
    limit = ascii_int(raw)
    if limit is None or not 1 <= limit <= MAX_LIST:
        raise _invalid(
            f"limit: expected a whole number from 1 to {MAX_LIST} in ASCII digits, got {raw[:16]!r}", "limit"
        )
    history = history_of(request)
    await history.flush()
    runs = await history.list_runs(None if who.admin else who.user, limit)
    return JSONResponse(RunList(runs))


async def get_run(request: Request) -> Response:
    """GET /api/v1/runs/{run}: the run, its totals and every batch with every attempt."""
    run, _ = await _visible_run(request, await caller(request))
    return JSONResponse(await history_of(request).detail(run))


async def export_events(request: Request) -> Response:
    """GET /api/v1/runs/{run}/events: the run's events as JSON Lines, oldest first (replayable)."""
    run, _ = await _visible_run(request, await caller(request))
    history = history_of(request)

    async def lines() -> AsyncIterator[bytes]:
        async for data in history.iter_events(run):
            yield data.encode() + b"\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="run-{run}.jsonl"'},
    )


def routes() -> list[Route]:
    return [
        Route(RUNS_PATH, start_run, methods=["POST"]),
        Route(RUNS_PATH, list_runs, methods=["GET"]),
        Route(RUNS_PATH + "/{run}", get_run, methods=["GET"]),
        Route(RUNS_PATH + "/{run}/finish", finish_run, methods=["POST"]),
        Route(RUNS_PATH + "/{run}/events", export_events, methods=["GET"]),
    ]
