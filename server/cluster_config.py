"""Live configuration for a cluster: admin edits in one Redis hash, announced on pub/sub, applied by every worker.

The worker that takes a PUT applies it, publishes its one `config.changed` event, and writes the fields the
edit set (one hash field each, so two edits of different fields never undo each other) with a version INCR
and a PUBLISH. Every worker, that one included, reads the whole hash when the announcement comes, and at
start, so a worker started later serves the cluster's current settings from its first request. A quiet
second compares the version, so an announcement lost on the way is made up a second later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from server.admin import LIMIT_FIELDS
from server.limiter_redis import redact
from server.stream_redis import BACKOFF_S, COMMAND_TIMEOUT, REDIS_ERRORS, client
from syncbed.faults import FaultError

if TYPE_CHECKING:
    from server.faults import Faults
    from server.throttle import Limiter

log = logging.getLogger("syncbed.admin")

CONFIG_KEY = "syncbed:config"  # field: JSON ["faults", name] or ["limits", kind, rule, name]; value: JSON
VERSION_KEY = "syncbed:config:version"
CHANNEL = "syncbed:config"
START_WAIT_S = 2.0

# KEYS: config hash, version. ARGV: channel, then (field, value) pairs. One atomic edit: fields, version,
# announcement (the version as the message).
_SHARE = """
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], v)
return v
"""


def fault_fields(values: Mapping[str, int | float]) -> dict[str, str]:
    return {json.dumps(["faults", name]): json.dumps(value) for name, value in values.items()}


def limit_fields(kind: str, rule: str, values: Mapping[str, object]) -> dict[str, str]:
    return {json.dumps(["limits", kind, rule, name]): json.dumps(value) for name, value in values.items()}


def parse(raw: Mapping[bytes, bytes]) -> tuple[dict[str, object], dict[tuple[str, str], dict[str, object]]]:
    """The hash as (fault values, {(kind, rule): limit values}); fields of no known shape are left out."""
    faults: dict[str, object] = {}
    limits: dict[tuple[str, str], dict[str, object]] = {}
    for field, value in raw.items():
        try:
            path, val = json.loads(field), json.loads(value)
        except ValueError:
            continue
        if isinstance(path, list) and len(path) == 2 and path[0] == "faults":
            faults[str(path[1])] = val
        elif isinstance(path, list) and len(path) == 4 and path[0] == "limits" and path[3] in LIMIT_FIELDS:
            limits.setdefault((str(path[1]), str(path[2])), {})[path[3]] = val
    return faults, limits


class ClusterConfig:
    """Shares this worker's admin edits and applies everyone's; Redis away: edits wait and go when it is back."""

    def __init__(self, url: str, faults: Faults, limiter: Limiter) -> None:
        self.name = redact(url)
        self.faults = faults
        self.limiter = limiter
        self.version = 0
        self.applied = 0  # how many times the hash changed a setting here (tests and logs)
        self._redis = client(url, COMMAND_TIMEOUT)
        # The subscription waits for announcements as long as there are none: no socket timeout, but a
        # health check, so a Redis that went away is noticed.
        self._listening = aioredis.Redis.from_url(url, socket_connect_timeout=COMMAND_TIMEOUT, health_check_interval=5)
        self._share = self._redis.register_script(_SHARE)
        self._pending: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._warned: set[tuple[str, str]] = set()

    async def start(self) -> None:
        """Take the cluster's current settings (waiting at most a moment for Redis), then listen."""
        try:
            await asyncio.wait_for(self.load(), START_WAIT_S)
        except REDIS_ERRORS as exc:
            log.warning("live settings from %s not read at start (%s): this worker starts with its own", self.name, exc)
        self._listener = asyncio.create_task(self._listen(), name="syncbed-config")

    # --- this worker's edits ----------------------------------------------------------------------------

    def share_faults(self, values: Mapping[str, int | float]) -> None:
        self._send(fault_fields(values))

    def share_limit(self, kind: str, rule: str, values: Mapping[str, object]) -> None:
        self._send(limit_fields(kind, rule, values))

    def _send(self, fields: dict[str, str]) -> None:
        # Off the request path: the PUT has applied it here already; the others get it a round trip later.
        self._pending.update(fields)
        task = asyncio.create_task(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        if not await self._share_pending() and (self._retry is None or self._retry.done()):
            # A timeout on a loaded Redis leaves the listener up, so nothing else would send it: try again.
            self._retry = asyncio.create_task(self._flush_later(), name="syncbed-config-retry")

    async def _flush_later(self) -> None:
        delay = BACKOFF_S[0]
        while self._pending:
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF_S[1])
            await self._share_pending()

    async def _share_pending(self) -> bool:
        """Send the edits not yet shared; False (logged) when Redis did not take them."""
        fields = dict(self._pending)
        if not fields:
            return True
        args: list[str] = [CHANNEL]
        for k, v in fields.items():
            args += [k, v]
        try:
            await self._share(keys=[CONFIG_KEY, VERSION_KEY], args=args)
        except REDIS_ERRORS as exc:
            log.warning("live edit not shared with the cluster yet (%s): sent when %s is back", exc, self.name)
            return False
        for k, v in fields.items():
            if self._pending.get(k) == v:
                del self._pending[k]
        return True

    # --- everyone's edits -------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the version and the hash, and apply what differs from this worker's settings."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(VERSION_KEY)
            pipe.hgetall(CONFIG_KEY)
            version, raw = await pipe.execute()
        self.version = int(version or 0)
        self.apply(raw)

    def apply(self, raw: Mapping[bytes, bytes]) -> None:
        faults, limits = parse(raw)
        changed = {k: v for k, v in faults.items() if getattr(self.faults, k, None) != v}
        if changed:
            try:
                self.faults.update(**changed)
                self.applied += 1
            except FaultError as exc:
                log.warning("live fault setting from the cluster refused: %s", exc)
        for (kind, name), values in limits.items():
            try:
                rule = self.limiter.rule(name, kind)
            except KeyError:
                if (kind, name) not in self._warned:
                    self._warned.add((kind, name))
                    log.warning(
                        "live limit edit for %s %r: no such rule on this worker (its config differs)", kind, name
                    )
                continue
            diff = {k: v for k, v in values.items() if getattr(rule, k) != v}
            if diff:
                try:
                    self.limiter.update_limit(name, kind=kind, **diff)  # type: ignore[arg-type]
                    self.applied += 1
                except ValueError as exc:
                    log.warning("live limit edit for %r from the cluster refused: %s", name, exc)

    async def _listen(self) -> None:
        delay = BACKOFF_S[0]
        while True:
            pubsub = self._listening.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                await self._flush()  # edits made here while Redis was away
                await self.load()  # and the ones made elsewhere meanwhile
                delay = BACKOFF_S[0]
                while True:
                    # Every announcement reads the hash again: cheap, and no edit is skipped by comparing
                    # versions that arrive in a different order than this worker's own share returns.
                    if await pubsub.get_message(timeout=1.0) is not None:
                        await self._flush()
                        await self.load()
                    elif int(await self._redis.get(VERSION_KEY) or 0) != self.version:
                        # An announcement lost on a subscription that failed silently: a second late, not never.
                        await self.load()
            except REDIS_ERRORS as exc:
                log.info("live settings: listening on %s again after %s", self.name, exc.__class__.__name__)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF_S[1])

    async def aclose(self) -> None:
        for task in [*self._tasks, *(t for t in (self._listener, self._retry) if t is not None)]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
                await task
        for redis in (self._redis, self._listening):
            with contextlib.suppress(*REDIS_ERRORS):
                await redis.aclose()
