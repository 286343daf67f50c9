"""How syncbed runs under uvicorn: the options every way of starting the app shares."""

from __future__ import annotations

from typing import Any

from server.config import ServerSettings
from server.protocol import LIMITS_STATE_KEY, HttpLimits

# proxy_headers=False: uvicorn would otherwise rewrite the client address from X-Forwarded-For for any
# peer in forwarded_allow_ips (127.0.0.1 by default) before the app sees it. server/client_ip.py is
# the only reader of forwarding headers, and it believes them only from limits.trusted_proxies.
# http: uvicorn's httptools protocol with a header-size cap and read timeouts (server/protocol.py);
# an import string, so `--workers N` (spawned processes) load it by name too.
# timeout_keep_alive: an idle keep-alive connection is closed this many seconds after its last answer.
UVICORN_OPTIONS: dict[str, Any] = {
    "proxy_headers": False,
    "server_header": False,
    "http": "server.protocol:SyncbedHttpProtocol",
    "timeout_keep_alive": 5,
}


def uvicorn_options(**overrides: Any) -> dict[str, Any]:
    """UVICORN_OPTIONS with `overrides` on top (host, port, log settings of the caller)."""
    return {**UVICORN_OPTIONS, **overrides}


def http_limits(server: ServerSettings) -> HttpLimits:
    """The protocol's limits from the server settings (the app's lifespan hands them to uvicorn)."""
    return HttpLimits(header_timeout=float(server.header_timeout_s), body_timeout=float(server.body_timeout_s))


__all__ = ["LIMITS_STATE_KEY", "UVICORN_OPTIONS", "HttpLimits", "http_limits", "uvicorn_options"]
