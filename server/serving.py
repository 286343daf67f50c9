"""How syncbed runs under uvicorn: the options every way of starting the app shares."""

from __future__ import annotations

from typing import Any

# proxy_headers=False: uvicorn would otherwise rewrite the client address from X-Forwarded-For for any
# peer in forwarded_allow_ips (127.0.0.1 by default) before the app sees it. server/client_ip.py is
# the only reader of forwarding headers, and it believes them only from limits.trusted_proxies.
UVICORN_OPTIONS: dict[str, Any] = {
    "proxy_headers": False,
    "server_header": False,
}


def uvicorn_options(**overrides: Any) -> dict[str, Any]:
    """UVICORN_OPTIONS with `overrides` on top (host, port, log settings of the caller)."""
    return {**UVICORN_OPTIONS, **overrides}
