"""Who is calling: bearer token -> user name, with a short cache so auth costs no query per request."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import aiosqlite
from starlette.types import Scope

from server import tokens
from server.storage import TokenRow, sqlite_token_row
from syncbed.contract import AUTHORIZATION_KEY
from syncbed.wire import RepeatedHeader, single_header

# A revoked token stops working within this many seconds (the CLI revokes from another process).
CACHE_SECONDS = 1.0
_MAX_CACHE = 10_000

# lookup id -> the active token with that id, or None: a RecordStore's token_row.
RowLookup = Callable[[str], Awaitable[TokenRow | None]]


class Caller(NamedTuple):
    """Who a valid token speaks for, and the user's tier (None: the rules' own limits)."""

    name: str
    tier: str | None = None


def authorization(scope: Scope) -> str | None:
    """The request's one Authorization header; RepeatedHeader when it came more than once.

    Every reader goes through here: two layers that each pick "the" header of several (the first,
    or all joined) would disagree on who the caller is, and a limit keyed by user would miss it.
    """
    return single_header(scope["headers"], AUTHORIZATION_KEY)


class Auth:
    """Resolves Authorization headers against the tokens table (an SQLite connection's, or any store's token_row)."""

    def __init__(
        self, source: aiosqlite.Connection | RowLookup, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._row: RowLookup = (
            functools.partial(sqlite_token_row, source) if isinstance(source, aiosqlite.Connection) else source
        )
        self._clock = clock
        self._cache: dict[str, tuple[Caller | None, float]] = {}
        # One query per token at a time: a burst of ten requests that all miss the cache waits for
        # the first one's answer instead of queueing ten queries on the connection's thread.
        self._pending: dict[str, asyncio.Future[Caller | None]] = {}

    def _done(self, token: str, lookup: asyncio.Future[Caller | None]) -> None:
        self._pending.pop(token, None)
        if not lookup.cancelled():
            lookup.exception()  # retrieved, so a lookup whose callers all left logs no warning

    @staticmethod
    def bearer(header: str | None) -> str | None:
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    async def user_for_authorization(self, header: str | None) -> str | None:
        """The user a bearer header authenticates, or None (missing, malformed, unknown, revoked)."""
        caller = await self.caller_for_authorization(header)
        return None if caller is None else caller.name

    async def caller_for_authorization(self, header: str | None) -> Caller | None:
        """The user and tier a bearer header authenticates, or None; a tier change applies within CACHE_SECONDS."""
        token = self.bearer(header)
        if token is None:
            return None
        now = self._clock()
        hit = self._cache.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        lookup = self._pending.get(token)
        if lookup is None:
            lookup = self._pending[token] = asyncio.ensure_future(self._lookup(token))
            lookup.add_done_callback(lambda done: self._done(token, done))
        # Shielded: one caller giving up (a client hung up) does not cancel the others' answer.
        caller = await asyncio.shield(lookup)
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        self._cache[token] = (caller, now + CACHE_SECONDS)
        return caller

    async def user_for_scope(self, scope: Scope) -> str | None:
        """The request's user: what an earlier layer (the throttle) found, else a lookup, remembered in scope."""
        state = scope.setdefault("state", {})
        user: str | None = state.get("syncbed.user")
        if user is None:
            try:
                header = authorization(scope)
            except RepeatedHeader:
                return None  # the throttle answers these 400 first; no handler may pick one of them
            user = await self.user_for_authorization(header)
            state["syncbed.user"] = user
        return user

    async def _lookup(self, token: str) -> Caller | None:
        parts = tokens.split_token(token)
        if parts is None:
            return None
        lookup, secret = parts
        row = await self._row(lookup)
        if row is None or not tokens.verify(row[0], secret):
            return None
        return Caller(row[1], row[2])
