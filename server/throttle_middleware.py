"""The rule engine as ASGI middleware: every HTTP request checked, refusals worded in the server's style."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.types import Message, Receive, Scope, Send

from server import refusals
from server.admin_token import is_admin
from server.auth import authorization as authorization_of
from server.middleware import HttpMiddleware
from server.responses import send_bytes, send_error
from syncbed import contract
from syncbed.events import RequestThrottled
from syncbed.wire import RepeatedHeader, ascii_int, first_header, is_run_id

if TYPE_CHECKING:
    from server.state import AppState
    from server.throttle import Limiter, Verdict

log = logging.getLogger("syncbed.limiter")


async def send_refusal(send: Send, r: refusals.Refusal) -> None:
    await send_bytes(send, r.status, r.content_type, r.body, r.headers)


class ThrottleMiddleware(HttpMiddleware):
    """Applies the engine to every HTTP request; adds the RateLimit fields where the style has them."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = scope.setdefault("state", {})
        try:
            authorization = authorization_of(scope)
        except RepeatedHeader as exc:
            # Decided here, before anything is counted, for every endpoint: which of two tokens is "the"
            # caller is exactly what a limit keyed by user must not have to guess.
            st["syncbed.error"] = contract.E_INVALID_REQUEST
            await send_error(send, 400, contract.E_INVALID_REQUEST, exc.sentence)
            return
        state: AppState | None = getattr(scope["app"].state, "syncbed", None)
        if state is None:  # before the lifespan has built it
            await self.app(scope, receive, send)
            return
        limiter = state.limiter
        ip = limiter.client_ip.for_scope(scope)
        if scope["path"] == contract.HEALTH_PATH:
            # Never counted, and never waits on a limiter store that may be hung: only the blocklist
            # (addresses in memory) applies.
            if limiter.blocked(ip):
                await self._block(limiter, scope, send, ip)
            else:
                await self.app(scope, receive, send)
            return
        # With limits off the bypass changes nothing; the admin routes ask is_admin for themselves.
        admin = limiter.enabled and is_admin(authorization, state.admin_token)
        v = await limiter.check(scope["method"], scope["path"], ip, authorization, admin=admin)
        if v.user is not None:
            st["syncbed.user"] = v.user
        if v.blocked:
            await self._block(limiter, scope, send, ip)
            return
        if v.banned is not None and not limiter.dry_run:
            await self._banned(limiter, scope, send, v)
            return
        method, path = scope["method"], scope["path"]
        if v.refused is not None:
            await self._report(limiter, state, scope, v, authorization)
            if not limiter.dry_run:
                assert v.decision is not None and v.at is not None
                if limiter.counts_statuses:
                    await limiter.answered(v, method, path, 429, authorization)
                await send_refusal(send, refusals.throttled(limiter.style, v.refused, v.decision, v.at, v.matched))
                return
        if v.matched:
            st["syncbed.admitted"] = v.at
        extra = refusals.ratelimit_headers(v.matched) if v.matched and limiter.style.fields else []
        if not extra and not limiter.counts_statuses:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if limiter.counts_statuses:
                    # Counted before the answer leaves: the failure that bans is answered with the ban set.
                    await limiter.answered(v, method, path, message["status"], authorization)
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _block(limiter: Limiter, scope: Scope, send: Send, ip: str) -> None:
        scope["state"]["syncbed.error"] = contract.E_FORBIDDEN
        log.info("blocked ip=%s %s %s", ip, scope["method"], scope["path"])
        message = f"Requests from {ip} are refused by the server's blocklist."
        await send_refusal(send, refusals.forbidden(limiter.style, message))

    @staticmethod
    async def _banned(limiter: Limiter, scope: Scope, send: Send, v: Verdict) -> None:
        ban = v.banned
        assert ban is not None and v.at is not None
        scope["state"]["syncbed.error"] = contract.E_FORBIDDEN
        scope["state"]["syncbed.rule"] = ban.name
        log.info(
            "banned by %s rule=%s key=%s ip=%s %s %s", ban.kind, ban.name, v.key, v.ip, scope["method"], scope["path"]
        )
        message = ban.message(v.ban_until, v.at)
        await send_refusal(send, refusals.forbidden(limiter.style, message, rule=ban.name))

    async def _report(
        self, limiter: Limiter, state: AppState, scope: Scope, v: Verdict, authorization: str | None
    ) -> None:
        rule, d = v.refused, v.decision
        assert rule is not None and d is not None
        user = await limiter.user(v, authorization)  # for the event, even when the rule keys by IP
        st = scope["state"]
        if user is not None:
            st["syncbed.user"] = user
        st["syncbed.rule"] = rule.name
        dry = limiter.dry_run
        if not dry:
            st["syncbed.error"] = contract.E_RATE_LIMITED
        log.info(
            "throttled%s rule=%s key=%s count=%d limit=%d retry_after=%.3f ip=%s user=%s %s %s",
            " (dry run)" if dry else "", rule.name, v.key, d.count, rule.limit, d.retry_after, v.ip,
            user or "-", scope["method"], scope["path"],
        )  # fmt: skip
        headers = scope["headers"]
        run = first_header(headers, contract.HEADER_RUN_KEY)
        state.bus.publish(
            RequestThrottled(
                run=run if is_run_id(run) else None,  # the history keeps it only under the user's own run
                batch=ascii_int(first_header(headers, contract.HEADER_BATCH_KEY)),  # for the event: a bad one is None
                attempt=ascii_int(first_header(headers, contract.HEADER_ATTEMPT_KEY)),
                user=user,
                ip=v.ip,
                rule=rule.name,
                key=v.key,
                retry_after=round(d.retry_after, 3),
                dry_run=dry,
            )
        )
        if not dry and scope["path"] == contract.SYNC_PATH:
            state.stats_request(records=0, status=429)
