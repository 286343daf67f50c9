"""Fault injection for sync requests: a latency floor, injected 503s and dropped connections."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

import msgspec
from starlette.types import Scope, Send

from syncbed.contract import CONTENT_LENGTH_KEY, CONTENT_TYPE_KEY
from syncbed.faults import FAULT_FIELDS, FaultSettings, validate

log = logging.getLogger("syncbed.faults")

Outcome = Literal["ok", "error", "reset"]

# The scope extension that resets this request's connection: server/protocol.py puts it there.
RESET_EXTENSION = "syncbed.reset"


class Faults:
    """Live fault settings plus the per-request draw; `rng` is injectable for tests."""

    def __init__(
        self,
        latency_ms: int = 0,
        jitter_ms: int = 0,
        error_rate: float = 0.0,
        reset_rate: float = 0.0,
        *,
        rng: random.Random | None = None,
    ) -> None:
        clean = validate(
            {
                "latency_ms": latency_ms,
                "jitter_ms": jitter_ms,
                "error_rate": error_rate,
                "reset_rate": reset_rate,
            }
        )
        self.latency_ms = int(clean["latency_ms"])
        self.jitter_ms = int(clean["jitter_ms"])
        self.error_rate = float(clean["error_rate"])
        self.reset_rate = float(clean["reset_rate"])
        self._rng = rng or random.Random()
        # Shared by every waiting hold; update() sets it (never cancels it) and the next wait makes a new one.
        self._changed: asyncio.Future[None] | None = None

    @classmethod
    def from_settings(cls, settings: object) -> Faults:
        """Build from a FaultSettings-like object (anything with the four attributes)."""
        return cls(**{name: getattr(settings, name) for name in FAULT_FIELDS})

    def jitter_share(self) -> float:
        """A request's draw of the jitter, as a fraction: kept while jitter_ms changes under it."""
        return self._rng.random() if self.jitter_ms else 0.0

    def delay_s(self, share: float) -> float:
        """The service time, in seconds, of a request that drew `share` of the jitter."""
        return (self.latency_ms + share * self.jitter_ms) / 1000.0

    def draw(self) -> Outcome:
        """One draw decides: error first (so error_rate is exact), then reset from what is left."""
        if not self.error_rate and not self.reset_rate:
            return "ok"
        u = self._rng.random()
        if u < self.error_rate:
            return "error"
        if u < self.error_rate + self.reset_rate:
            return "reset"
        return "ok"

    async def hold(self, since: float, share: float = 0.0, gone: Callable[[], Awaitable[None]] | None = None) -> bool:
        """Wait until the service time after `since` (a perf_counter time) is over; the request's own work
        ran inside it. The target is read again whenever the settings change, so a lowered latency frees
        holds already waiting. False when `gone()` (it returns when the client hangs up) returned first."""
        watcher: asyncio.Future[None] | None = None
        try:
            while (left := since + self.delay_s(share) - time.perf_counter()) > 0:
                if watcher is None and gone is not None:
                    watcher = asyncio.ensure_future(gone())  # only once there is a wait: no wait costs nothing
                changed = self._changed_future()
                await asyncio.wait(
                    [changed] if watcher is None else [changed, watcher], timeout=left, return_when="FIRST_COMPLETED"
                )
                if watcher is not None and watcher.done():
                    return False
            return True
        finally:
            if watcher is not None:
                watcher.cancel()

    def _changed_future(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        # One left unset by an earlier event loop (a test's) cannot be awaited on this one.
        if self._changed is None or self._changed.get_loop() is not loop:
            self._changed = loop.create_future()
        return self._changed

    def update(self, **changes: object) -> dict[str, int | float]:
        """Apply a validated partial change atomically (all or nothing); return the new settings."""
        clean = validate(changes)
        for key, value in clean.items():
            setattr(self, key, value)
        if clean:
            log.info("faults changed: %s", ", ".join(f"{k}={v}" for k, v in clean.items()))
            if self._changed is not None:
                self._changed.set_result(None)  # every waiting hold reads the new target
                self._changed = None
        return self.snapshot()

    def settings(self) -> FaultSettings:
        return FaultSettings(self.latency_ms, self.jitter_ms, self.error_rate, self.reset_rate)

    def snapshot(self) -> dict[str, int | float]:
        return msgspec.structs.asdict(self.settings())


def reset_of(scope: MutableMapping[str, Any]) -> Callable[[], None] | None:
    """The scope's reset extension, or None when the server is not syncbed's protocol."""
    extensions = scope.get("extensions") or {}
    reset = extensions.get(RESET_EXTENSION)
    return reset if callable(reset) else None


async def drop_connection(scope: Scope, send: Send) -> None:
    """Make the client see a dropped connection: no byte of an answer, an RST where the server allows it.

    ASGI has no "reset" message and gives no access to the socket. syncbed's own protocol
    (server/protocol.py) puts a `syncbed.reset` extension in the scope: it sets SO_LINGER to zero and
    aborts the transport, so the kernel sends an RST and the client reads nothing at all (ECONNRESET).
    Under another server the fallback starts a response that promises a body (Content-Length) and
    returns without sending it: the client reads a status line at most and then sees the connection
    close mid-response (uvicorn logs "ASGI callable returned without completing response."). The
    caller must return right after this.
    """
    reset = reset_of(scope)
    if reset is not None:
        log.info("injected fault: dropping the connection (reset)")
        reset()
        return
    log.info("injected fault: dropping the connection (no reset available: an incomplete answer)")
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (CONTENT_TYPE_KEY, b"application/json"),
                (CONTENT_LENGTH_KEY, b"64"),
                (b"connection", b"close"),
            ],
        }
    )
