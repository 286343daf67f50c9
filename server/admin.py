"""Admin auth and the admin endpoints: live fault settings and live throttle limits."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth import authorization
from server.responses import JSONResponse, error_response
from syncbed.bounds import BoundsError, rule_values
from syncbed.contract import (
    E_FORBIDDEN,
    E_INVALID_JSON,
    E_INVALID_REQUEST,
    E_NOT_FOUND,
    E_UNAUTHORIZED,
    E_UNAVAILABLE,
    FAULTS_PATH,
    LIMITS_PATH,
)
from syncbed.events import ConfigChanged
from syncbed.faults import FaultError
from syncbed.wire import RepeatedHeader

if TYPE_CHECKING:
    from server.state import AppState

log = logging.getLogger("syncbed.admin")

MAX_ADMIN_BODY = 64 * 1024
# Request state: whether the request carries the admin token, when the throttle already checked.
ADMIN_STATE_KEY = "syncbed.admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the admin, or a user (by name)."""

    admin: bool
    user: str | None = None


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.syncbed
    return state


def unauthorized(why: str) -> Response:
    return error_response(401, E_UNAUTHORIZED, why, headers={"WWW-Authenticate": "Bearer"})


def is_admin(request: Request, header: str | None) -> bool:
    """Whether `header` (the request's Authorization) is the admin token: the throttle's answer if it has one."""
    known: bool | None = request.scope.get("state", {}).get(ADMIN_STATE_KEY)
    return app_state(request).auth.is_admin(header) if known is None else known


async def caller(request: Request) -> Caller | Response:
    """The admin or a user; a 401 response when the token is missing or unknown."""
    state = app_state(request)
    try:
        header = authorization(request.scope)
    except RepeatedHeader as exc:
        return error_response(400, E_INVALID_REQUEST, exc.sentence)
    if header is None:
        return unauthorized("A bearer token is required; send Authorization: Bearer <token>.")
    if is_admin(request, header):
        return Caller(admin=True)
    user = await state.auth.user_for_authorization(header)
    if user is None:
        return unauthorized("The bearer token is not valid (unknown, revoked or malformed).")
    return Caller(admin=False, user=user)


async def require_admin(request: Request) -> Response | None:
    """None when the admin token was sent; else 401 (none/unknown) or 403 (a user's token)."""
    who = await caller(request)
    if isinstance(who, Response):
        return who
    if not who.admin:
        return error_response(403, E_FORBIDDEN, "This endpoint needs the admin token, not a user's token.")
    return None


async def read_json_object(request: Request, limit: int = MAX_ADMIN_BODY) -> dict[str, object] | Response:
    """The body as a JSON object, or a 400 saying why not (size capped while reading)."""
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return error_response(400, E_INVALID_REQUEST, f"The body is larger than {limit} bytes.")
    except ClientDisconnect:
        return error_response(400, E_INVALID_REQUEST, "The client went away before sending the whole body.")
    try:
        value = msgspec.json.decode(bytes(body))
    except msgspec.DecodeError as exc:
        return error_response(400, E_INVALID_JSON, f"The body is not valid JSON: {exc}.")
    if not isinstance(value, dict):
        return error_response(400, E_INVALID_JSON, "The body must be a JSON object.")
    return value


def invalid(field: str, message: str) -> Response:
    return error_response(422, E_INVALID_REQUEST, f"{field}: {message}", field=field)


async def get_faults(request: Request) -> Response:
    denied = await require_admin(request)
    if denied is not None:
        return denied
    return JSONResponse(app_state(request).faults.snapshot())


async def put_faults(request: Request) -> Response:
    """Change any subset of latency_ms, jitter_ms, error_rate, reset_rate; the next request sees it."""
    denied = await require_admin(request)
    if denied is not None:
        return denied
    body = await read_json_object(request)
    if isinstance(body, Response):
        return body
    state = app_state(request)
    try:
        now = state.faults.update(**body)
    except FaultError as exc:
        return invalid(exc.field, exc.reason)
    state.bus.publish(msgspec.convert({"what": "faults", "changed": sorted(body), **now}, ConfigChanged))
    log.info("config changed: faults %s", now)
    return JSONResponse(now)


@dataclass(frozen=True, slots=True)
class LimitChange:
    rule: str
    limit: int | None
    period: float | None
    enabled: bool | None
    kind: str | None = None


def parse_limit_change(body: dict[str, object]) -> LimitChange | Response:
    """Validate a PUT /admin/limits body; a 422 naming the field when it is wrong."""
    known = {"rule", "limit", "period", "enabled", "kind"}
    for key in body:
        if key not in known:
            return invalid(key, f"unknown field; known: {', '.join(sorted(known))}")
    rule = body.get("rule")
    if not isinstance(rule, str) or not rule:
        return invalid("rule", 'the name of a throttle rule is required, e.g. "sync/user"')
    try:
        checked = rule_values(limit=body.get("limit"), period=body.get("period"))
    except BoundsError as exc:
        return invalid(exc.field, exc.reason)
    limit, period = checked.limit, checked.period
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        return invalid("enabled", f"expected true or false, got {enabled!r}")
    kind = body.get("kind")
    if kind is not None and kind not in ("throttle", "track"):
        return invalid("kind", f'expected "throttle" or "track", got {kind!r}')
    if limit is None and period is None and enabled is None:
        return invalid("limit", "give at least one of limit, period, enabled")
    return LimitChange(rule=rule, limit=limit, period=period, enabled=enabled, kind=kind)


async def put_limits(request: Request) -> Response:
    """Edit one throttle rule live through the limiter engine's update_limit()."""
    denied = await require_admin(request)
    if denied is not None:
        return denied
    body = await read_json_object(request)
    if isinstance(body, Response):
        return body
    change = parse_limit_change(body)
    if isinstance(change, Response):
        return change
    state = app_state(request)
    limiter = state.limiter
    if limiter is None or not hasattr(limiter, "update_limit"):
        return error_response(503, E_UNAVAILABLE, "The limiter is not running, so there are no limits to edit.")
    try:
        extra = {"kind": change.kind} if change.kind else {}
        result = limiter.update_limit(
            change.rule, limit=change.limit, period=change.period, enabled=change.enabled, **extra
        )
        if inspect.isawaitable(result):
            result = await result
    except KeyError:
        return error_response(404, E_NOT_FOUND, f"There is no throttle rule named {change.rule!r}.", field="rule")
    except ValueError as exc:
        return invalid("rule", str(exc))
    now = {"rule": change.rule, **(_as_dict(result) or _change_dict(change))}
    now.pop("what", None)
    state.bus.publish(msgspec.convert({**now, "what": "limits"}, ConfigChanged))
    log.info("config changed: limits %s", now)
    return JSONResponse(now)


def _change_dict(change: LimitChange) -> dict[str, object]:
    pairs = (("limit", change.limit), ("period", change.period), ("enabled", change.enabled))
    return {k: v for k, v in pairs if v is not None}


def _as_dict(result: object) -> dict[str, object] | None:
    """The engine's answer as a plain dict (it may return a dict, a dataclass or nothing)."""
    if isinstance(result, dict):
        return dict(result)
    if result is not None and dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return None


def routes() -> list[Route]:
    return [
        Route(FAULTS_PATH, get_faults, methods=["GET"]),
        Route(FAULTS_PATH, put_faults, methods=["PUT"]),
        Route(LIMITS_PATH, put_limits, methods=["PUT"]),
    ]
