"""One log line per request: method, path, status, user, records, the batch's run/batch/attempt and time."""

from __future__ import annotations

import logging
import time

from starlette.types import Message, Receive, Scope, Send

from server.log_escape import escape
from server.middleware import HttpMiddleware

log = logging.getLogger("syncbed.access")


class AccessLogMiddleware(HttpMiddleware):
    """Outermost middleware, so throttled and failed requests are logged too."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 0
        state = scope.setdefault("state", {})
        state["syncbed.arrived"] = started  # where a request's service time (and latency_ms) starts

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if log.isEnabledFor(logging.INFO):
                ms = (time.perf_counter() - started) * 1000
                client = scope.get("client") or ("-", 0)
                extra = ""
                if "syncbed.records" in state:
                    extra = f" records={state['syncbed.records']} stored={state.get('syncbed.stored')}"
                if "syncbed.error" in state:
                    extra += f" error={state['syncbed.error']}"
                if "syncbed.rule" in state:
                    extra += f" rule={state['syncbed.rule']}"
                if "syncbed.trace" in state:
                    extra += f" trace={state['syncbed.trace']}"
                # Escaped here as well as by the formatter: the line stays one line under any logging set-up.
                log.info(
                    "%s %s %s user=%s ip=%s%s %.1fms",
                    escape(scope["method"]), escape(scope["path"]), status or "dropped",
                    escape(str(state.get("syncbed.user", "-"))),
                    client[0], extra, ms,
                )  # fmt: skip
