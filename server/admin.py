"""Admin auth and the admin endpoints: live fault settings, live throttle limits and the limiter view."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from server.admin_token import is_admin
from server.auth import authorization
from server.responses import ApiError, JSONResponse
from syncbed.bounds import BoundsError, rule_values
from syncbed.contract import (
    E_FORBIDDEN,
    E_INVALID_JSON,
    E_INVALID_REQUEST,
    E_NOT_FOUND,
    E_UNAUTHORIZED,
    FAULTS_PATH,
    LIMITER_PATH,
    LIMITS_PATH,
)
from syncbed.events import ConfigChanged
from syncbed.faults import FaultError
from syncbed.responses import LimitChanged
from syncbed.wire import RepeatedHeader, ascii_int

if TYPE_CHECKING:
    from server.state import AppState

log = logging.getLogger("syncbed.admin")

LIMIT_FIELDS = ("limit", "period", "enabled")  # what a limits edit sets; the rest names the rule
MAX_ADMIN_BODY = 64 * 1024
MAX_TOP = 100


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the admin, or a user (by name)."""

    admin: bool
    user: str | None = None


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.syncbed
    return state


def authorization_of(request: Request) -> str | None:
    """The request's one Authorization header; a 400 when it came more than once."""
    try:
        return authorization(request.scope)
    except RepeatedHeader as exc:
        raise ApiError(400, E_INVALID_REQUEST, exc.sentence) from None


async def caller(request: Request) -> Caller:
    """The admin or a user; a 401 when the token is missing or unknown."""
    state = app_state(request)
    header = authorization_of(request)
    if header is None:
        raise ApiError(401, E_UNAUTHORIZED, "A bearer token is required; send Authorization: Bearer <token>.")
    if is_admin(header, state.admin_token):
        return Caller(admin=True)
    user = await state.auth.user_for_authorization(header)
    if user is None:
        raise ApiError(401, E_UNAUTHORIZED, "The bearer token is not valid (unknown, revoked or malformed).")
    return Caller(admin=False, user=user)


async def require_admin(request: Request) -> None:
    """Return when the admin token was sent; else 401 (none/unknown) or 403 (a user's token)."""
    if not (await caller(request)).admin:
        raise ApiError(403, E_FORBIDDEN, "This endpoint needs the admin token, not a user's token.")


async def read_json_object(request: Request, limit: int = MAX_ADMIN_BODY) -> dict[str, object]:
    """The body as a JSON object, or a 400 saying why not (size capped while reading)."""
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ApiError(400, E_INVALID_REQUEST, f"The body is larger than {limit} bytes.")
    except ClientDisconnect:
        raise ApiError(400, E_INVALID_REQUEST, "The client went away before sending the whole body.") from None
    try:
        value = msgspec.json.decode(bytes(body))
    except msgspec.DecodeError as exc:
        raise ApiError(400, E_INVALID_JSON, f"The body is not valid JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise ApiError(400, E_INVALID_JSON, "The body must be a JSON object.")
    return value


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, E_INVALID_REQUEST, f"{field}: {message}", field=field)


async def get_faults(request: Request) -> Response:
    await require_admin(request)
    return JSONResponse(app_state(request).faults.settings())


async def put_faults(request: Request) -> Response:
    """Change any subset of latency_ms, jitter_ms, error_rate, reset_rate; the next request sees it."""
    await require_admin(request)
    body = await read_json_object(request)
    state = app_state(request)
    try:
        now = state.faults.update(**body)
    except FaultError as exc:
        raise invalid(exc.field, exc.reason) from None
    state.bus.publish(msgspec.convert({"what": "faults", "changed": sorted(body), **now}, ConfigChanged))
    if state.cluster is not None:  # one event, from here; every other worker applies it without one
        state.cluster.share_faults({name: now[name] for name in body})
    log.info("config changed: faults %s", now)
    return JSONResponse(state.faults.settings())


@dataclass(frozen=True, slots=True)
class LimitChange:
    rule: str
    limit: int | None
    period: float | None
    enabled: bool | None
    kind: str | None = None


def parse_limit_change(body: dict[str, object]) -> LimitChange:
    """Validate a PUT /admin/limits body; a 422 naming the field when it is wrong."""
    known = {"rule", "limit", "period", "enabled", "kind"}
    for key in body:
        if key not in known:
            raise invalid(key, f"unknown field; known: {', '.join(sorted(known))}")
    rule = body.get("rule")
    if not isinstance(rule, str) or not rule:
        raise invalid("rule", 'the name of a throttle rule is required, e.g. "sync/user"')
    try:
        checked = rule_values(limit=body.get("limit"), period=body.get("period"))
    except BoundsError as exc:
        raise invalid(exc.field, exc.reason) from None
    limit, period = checked.limit, checked.period
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise invalid("enabled", f"expected true or false, got {enabled!r}")
    kind = body.get("kind")
    if kind is not None and kind not in ("throttle", "track"):
        raise invalid("kind", f'expected "throttle" or "track", got {kind!r}')
    if limit is None and period is None and enabled is None:
        raise invalid("limit", "give at least one of limit, period, enabled")
    return LimitChange(rule=rule, limit=limit, period=period, enabled=enabled, kind=kind)


async def put_limits(request: Request) -> Response:
    """Edit one throttle rule live through the limiter engine's update_limit()."""
    await require_admin(request)
    change = parse_limit_change(await read_json_object(request))
    state = app_state(request)
    try:
        rule = state.limiter.update_limit(
            change.rule, limit=change.limit, period=change.period, enabled=change.enabled, kind=change.kind
        )
    except KeyError:
        raise ApiError(404, E_NOT_FOUND, f"There is no throttle rule named {change.rule!r}.", field="rule") from None
    except ValueError as exc:
        raise invalid("rule", str(exc)) from None
    now = {"rule": change.rule, **msgspec.structs.asdict(rule)}
    state.bus.publish(msgspec.convert({**now, "what": "limits"}, ConfigChanged))
    if state.cluster is not None:
        given = {f: getattr(rule, f) for f in LIMIT_FIELDS if getattr(change, f) is not None}
        state.cluster.share_limit(rule.kind, rule.name, given)
    log.info("config changed: limits %s", now)
    return JSONResponse(LimitChanged(**now))


async def limiter_view(request: Request) -> Response:
    """GET /api/v1/limiter (admin token): rules, store, and per rule the hottest keys."""
    state = app_state(request)
    header = authorization_of(request)
    if not is_admin(header, state.admin_token):
        if await state.auth.user_for_authorization(header) is not None:
            raise ApiError(403, E_FORBIDDEN, "The limiter view needs the admin token, not a user's.")
        raise ApiError(
            401, E_UNAUTHORIZED, "The limiter view needs the admin token; send Authorization: Bearer <admin token>."
        )
    raw = request.query_params.get("top", "10")
    top = ascii_int(raw)
    if top is None or not 1 <= top <= MAX_TOP:
        raise ApiError(
            400,
            E_INVALID_REQUEST,
            f"top must be an integer from 1 to {MAX_TOP} in ASCII digits, got {raw[:32]!r}.",
        )
    view = state.limiter.describe(top)
    view.workers = state.bus.worker_shares()  # on a cluster: each worker's share, as of the last stats tick
    return JSONResponse(view)


def routes() -> list[Route]:
    return [
        Route(FAULTS_PATH, get_faults, methods=["GET"]),
        Route(FAULTS_PATH, put_faults, methods=["PUT"]),
        Route(LIMITS_PATH, put_limits, methods=["PUT"]),
        Route(LIMITER_PATH, limiter_view, methods=["GET"]),
    ]
