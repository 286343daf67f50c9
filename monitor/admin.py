"""The server's admin and history API, as the monitor uses it (thin httpx calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from syncbed import contract as c
from syncbed.faults import FAULT_FIELDS, FaultSettings
from syncbed.paths import admin_token_path, read_admin_token
from syncbed.responses import LimitChanged, LimiterView

TIMEOUT = httpx.Timeout(10.0)
DEFAULT_SERVER = "http://127.0.0.1:3001"  # `python -m server`'s own default
T = TypeVar("T")


class AdminError(Exception):
    """The server refused or could not be reached; the message says why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the server's answer, None when there was none (not reached)


class AdminClient:
    def __init__(self, base_url: str, token: str | None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._transport = transport

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, transport=self._transport) as client:
                response = await client.request(method, self.base_url + path, json=body, headers=self._headers())
        except httpx.HTTPError as exc:
            raise AdminError(f"{method} {path}: {exc.__class__.__name__} {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("message") or response.text
            except ValueError:
                detail = response.text
            raise AdminError(f"{method} {path}: {response.status_code} {detail}".strip(), response.status_code)
        return response

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self._send(method, path, body)
        try:
            return response.json()
        except ValueError:
            return response.text

    async def _answer(self, method: str, path: str, body: dict[str, Any] | None, kind: type[T]) -> T:
        """The 2xx answer decoded as `kind`, the type the server encodes it with."""
        response = await self._send(method, path, body)
        try:
            return msgspec.json.decode(response.content, type=kind)
        except msgspec.DecodeError as exc:
            problem = f"{method} {path}: the answer is not a {kind.__name__} ({exc})"
            raise AdminError(problem, response.status_code) from exc

    async def set_faults(self, **fields: float) -> FaultSettings:
        """PUT the given fault knobs (any of latency_ms, jitter_ms, error_rate, reset_rate); the settings now."""
        unknown = set(fields) - set(FAULT_FIELDS)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return await self._answer("PUT", c.FAULTS_PATH, dict(fields), FaultSettings)

    async def set_limit(self, rule: str, limit: int) -> LimitChanged:
        return await self._answer("PUT", c.LIMITS_PATH, {"rule": rule, "limit": limit}, LimitChanged)

    async def run_details(self, run: str) -> Any:
        return await self._call("GET", f"{c.RUNS_PATH}/{run}")

    async def run_events(self, run: str) -> bytes:
        """The run's stored events as the server exports them: JSON Lines, oldest first."""
        return (await self._send("GET", f"{c.RUNS_PATH}/{run}/events")).content

    async def limiter(self) -> LimiterView:
        """The limiter's rules as the server has them now."""
        return await self._answer("GET", c.LIMITER_PATH, None, LimiterView)


def admin_token_of(given: str | None, data_dir: Path | None) -> tuple[str, str]:
    """(the admin token, where it came from) for the command line: given, else the data directory's file.

    ValueError says what to pass when there is none.
    """
    if given:
        return given, "given with --admin-token"
    token_file = admin_token_path(data_dir)
    token = read_admin_token(data_dir)
    if not token:
        raise ValueError(
            f"no admin token: {token_file} does not exist or is empty; pass --admin-token TOKEN, or "
            "--data-dir DIR with the data directory of the server (it writes DIR/admin-token)"
        )
    return token, f"read from {token_file}"
