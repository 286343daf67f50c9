"""The rule engine (safelist, blocklist, bans, throttles with tiers, tracks), its live edits and the limiter view."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from server.auth import Caller
from server.bans import Ban, BanKind
from server.client_ip import ClientIp, IpSet
from server.config import BanRule
from server.limiter import Decision
from server.limiter_store import MemoryStore, Store, open_store
from server.refusals import STYLES
from server.rule import Rule
from syncbed.bounds import rule_values
from syncbed.events import LimiterBan, LimiterStore, LimiterUnban
from syncbed.responses import HotKey, LimiterView, RuleSettings, RuleView

if TYPE_CHECKING:
    from server.config import LimitsSettings, Settings
    from server.events import EventBus

log = logging.getLogger("syncbed.limiter")

CallerLookup = Callable[[str | None], Awaitable[Caller | None]]
SWEEP_S = 1.0  # how often ended bans are removed (and said so) and the ban list is read again


@dataclass(slots=True)
class Verdict:
    """What the engine decided for one request."""

    ip: str
    blocked: bool = False
    safelisted: bool = False
    operator: bool = False  # the admin token: past the blocklist, no throttle counts or refuses it
    refused: Rule | None = None
    decision: Decision | None = None  # the refusing rule's
    key: str = ""
    user: str | None = None
    tier: str | None = None
    user_known: bool = False
    matched: list[tuple[Rule, Decision]] = field(default_factory=list)  # throttles, for the headers
    at: float | None = None  # the clock the throttles were counted at: the window each one counted in
    banned: Ban | None = None  # the ban rule that refuses this request (403)
    ban_until: float = 0.0


class Limiter:
    """Rack::Attack's order: safelist (pass) -> blocklist (403) -> throttles (first over its limit
    answers 429; later ones are not counted) -> tracks (count, never refuse)."""

    def __init__(
        self,
        limits: LimitsSettings,
        store: Store | None = None,
        *,
        caller_for: CallerLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = limits.enabled
        self.dry_run = limits.dry_run
        self.style = STYLES[limits.response]
        self.store: Store = store or MemoryStore()
        self.clock = clock
        self.client_ip = ClientIp(limits.trusted_proxies)
        self.safelist = IpSet(limits.safelist)
        self.blocklist = IpSet(limits.blocklist)
        self._lists = bool(self.safelist) or bool(self.blocklist)
        self.throttles = [Rule.from_config(r, "throttle") for r in limits.throttles]
        self.tracks = [Rule.from_config(r, "track") for r in limits.tracks]
        kinds: list[tuple[BanKind, tuple[BanRule, ...]]] = [
            ("fail2ban", limits.fail2ban),
            ("allow2ban", limits.allow2ban),
        ]
        self.bans = [Ban.from_config(r, kind) for kind, rules in kinds for r in rules]
        self.counts_statuses = any(not b.counts_requests for b in self.bans)
        self.on_ban: Callable[[LimiterBan | LimiterUnban], None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        for tier, overrides in limits.tiers.items():
            for name, limit in overrides.items():
                self.rule(name, "throttle").add_tier(tier, limit)
        self._caller_for = caller_for

    def blocked(self, ip: str) -> bool:
        return self._lists and ip in self.blocklist and ip not in self.safelist

    async def user(self, v: Verdict, authorization: str | None) -> str | None:
        if not v.user_known:
            v.user_known = True
            if authorization and self._caller_for is not None:
                try:
                    caller = await self._caller_for(authorization)
                except Exception as exc:
                    # The token store failing must not fail the request here: count it by address.
                    log.warning("limiter could not look up the user (%s): keying by address", exc)
                else:
                    if caller is not None:
                        v.user, v.tier = caller
        return v.user

    async def _key(self, rule: Rule, v: Verdict, authorization: str | None) -> str:
        if rule.key == "ip":
            return "ip:" + v.ip
        user = await self.user(v, authorization)
        if user is None:
            return "ip:" + v.ip  # no valid token: the address is all we know
        return "user:" + user if rule.key == "user" else f"ip:{v.ip}+user:{user}"

    async def check(
        self, method: str, path: str, ip: str, authorization: str | None = None, *, admin: bool = False
    ) -> Verdict:
        """`admin`: the request carries the admin token (checked by the caller, in constant time)."""
        v = Verdict(ip)
        if self._lists:
            if ip in self.safelist:
                v.safelisted = True
                return v
            if ip in self.blocklist:
                v.blocked = True
                return v
        if admin:
            # No rule may lock out the edit that would undo it (req/ip at 0), nor the monitor's stream.
            v.operator = True
            return v
        if not self.enabled:
            return v
        now = v.at = self.clock()
        store = self.store
        for ban in self.bans:  # Rack::Attack's blocklists: in order, the first that refuses ends it
            if await self._banned(ban, v, method, path, authorization, now) and not self.dry_run:
                return v
        for rule in self.throttles:
            if not rule.enabled or not rule.matches(method, path):
                continue
            if rule.tiers:
                await self.user(v, authorization)
                rule = rule.for_tier(v.tier)
            key = await self._key(rule, v, authorization)
            d = await store.hit(rule.counter, key, now)
            if d is None:
                continue  # the store is down: fail open
            v.matched.append((rule, d))
            if not d.allowed and v.refused is None:
                v.refused, v.decision, v.key = rule, d, key
                if not self.dry_run:
                    return v
        for rule in self.tracks:
            if rule.enabled and rule.matches(method, path):
                await store.hit(rule.counter, await self._key(rule, v, authorization), now)
        return v

    # --- bans ---------------------------------------------------------------------------------

    async def _banned(
        self, ban: Ban, v: Verdict, method: str, path: str, authorization: str | None, now: float
    ) -> bool:
        """Rack's Fail2Ban.filter: banned keys are refused uncounted; a failing request counts (and may ban)."""
        key = await self._key(ban.filter, v, authorization)
        until = await self.store.banned(ban.id, key, now)
        if until is not None:
            v.banned, v.ban_until, v.key = ban, until, key
            return True
        if not ban.counts_requests or not ban.filter.matches(method, path):
            return False
        await self._fail(ban, v, key, authorization, now)
        if ban.blocks_failure():
            v.banned, v.ban_until, v.key = ban, v.ban_until or now, key
            return True
        return False

    async def _fail(self, ban: Ban, v: Verdict, key: str, authorization: str | None, now: float) -> None:
        d = await self.store.hit(ban.filter.counter, key, now)
        if d is None or not ban.bans_at(d.count):
            return
        until = now + ban.bantime
        if await self.store.ban(ban.id, key, until, ban.bantime):
            ban.seen[key] = v.ban_until = until
            user = await self.user(v, authorization)
            log.info("banned rule=%s key=%s count=%d bantime=%g ip=%s", ban.name, key, d.count, ban.bantime, v.ip)
            if self.on_ban is not None:
                self.on_ban(
                    LimiterBan(rule=ban.name, kind=ban.kind, key=key, ip=v.ip, user=user, count=d.count, until=until)
                )

    async def answered(self, v: Verdict, method: str, path: str, status: int, authorization: str | None) -> None:
        """After the answer: the ban rules that count statuses count this one if it is theirs."""
        if v.banned is not None or v.at is None:
            return
        for ban in self.bans:
            if status in ban.statuses and ban.filter.matches(method, path):
                await self._fail(ban, v, await self._key(ban.filter, v, authorization), authorization, v.at)

    async def sweep(self) -> None:
        """Remove ended bans (each said once, `limiter.unban`) and read the bans again for the view."""
        now = self.clock()
        for ban in self.bans:
            for key in await self.store.expire_bans(ban.id, now):
                log.info("unbanned rule=%s key=%s", ban.name, key)
                if self.on_ban is not None:
                    self.on_ban(LimiterUnban(rule=ban.name, kind=ban.kind, key=key))
            held = await self.store.bans(ban.id, now)
            if held is not None:
                ban.seen = held

    def start(self) -> None:
        if self.bans and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self.sweep()
            except Exception:  # a sweep must never end the sweeping
                log.exception("limiter: sweeping the bans failed")

    # --- live edits and views -----------------------------------------------------------------

    def rule(self, name: str, kind: str | None = None) -> Rule:
        for r in (*self.throttles, *self.tracks):
            if r.name == name and (kind is None or r.kind == kind):
                return r
        raise KeyError(name)

    def update_limit(
        self,
        name: str,
        limit: int | None = None,
        period: float | str | None = None,
        enabled: bool | None = None,
        kind: str | None = None,
    ) -> RuleSettings:
        """Change one rule live (a throttle unless kind='track'); KeyError if unknown, ValueError if bad."""
        rule = self.rule(name, kind or ("throttle" if any(r.name == name for r in self.throttles) else None))
        checked = rule_values(limit=limit, period=period)  # BoundsError is a ValueError
        limit, seconds = checked.limit, checked.period
        if enabled is not None and not isinstance(enabled, bool):
            raise ValueError(f"enabled must be true or false, got {enabled!r}")
        if limit is not None and limit != rule.limit:
            rule.set_limit(limit)
        if seconds is not None and seconds != rule.period:
            rule.period = seconds
            rule.reset_counter()
        if enabled is not None:
            rule.enabled = enabled
        settings = rule.settings()
        log.info("limiter rule %s changed: %s", name, msgspec.structs.asdict(settings))
        return settings

    def set_mode(self, enabled: bool | None = None, dry_run: bool | None = None) -> None:
        if enabled is not None:
            self.enabled = enabled
        if dry_run is not None:
            self.dry_run = dry_run

    def snapshot(self) -> list[dict[str, object]]:
        return [r.as_dict() for r in (*self.throttles, *self.tracks)]

    def _rules_by_label(self) -> Iterable[tuple[str, Rule]]:
        for r in self.throttles:
            yield r.name, r
        for r in self.tracks:
            yield f"track:{r.name}", r

    def _hot(self, rule: Rule, n: int, now: float) -> list[HotKey]:
        """A rule's hottest keys, its tiers' among them (a tier's key reads `user:alice@premium`)."""
        hot = [HotKey(u.key, u.count, round(u.reset, 3)) for u in self.store.top(rule.counter, n, now)]
        for tier, variant in rule.tiers.items():
            hot += [
                HotKey(f"{u.key}@{tier}", u.count, round(u.reset, 3)) for u in self.store.top(variant.counter, n, now)
            ]
        return sorted(hot, key=lambda h: -h.count)[:n] if rule.tiers else hot

    def top_keys(self, n: int = 5) -> dict[str, list[dict[str, object]]]:
        """{rule: [{key, count}, ...]}, hottest first; tracks appear as 'track:<name>'."""
        now = self.clock()
        return {
            label: [{"key": h.key, "count": h.count} for h in self._hot(r, n, now)]
            for label, r in self._rules_by_label()
            if r.enabled
        }

    def describe(self, n: int = 10) -> LimiterView:
        now = self.clock()
        rules = []
        for _, r in self._rules_by_label():
            tiers = {tier: v.limit for tier, v in r.tiers.items()}
            rules.append(RuleView(**msgspec.structs.asdict(r.settings()), hot=self._hot(r, n, now), tiers=tiers))
        return LimiterView(
            enabled=self.enabled,
            dry_run=self.dry_run,
            response=self.style.name,
            store=self.store.name,
            store_status="up" if self.store.up else "down",
            trusted_proxies=list(self.client_ip.trusted.cidrs),
            safelist=list(self.safelist.cidrs),
            blocklist=list(self.blocklist.cidrs),
            rules=rules,
            bans=[b.view(now) for b in self.bans],
        )

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.store.aclose()


async def open_limiter(settings: Settings, bus: EventBus, caller_for: CallerLookup | None) -> Limiter:
    """Build the engine from settings.limits; `limiter.store` events report store outages."""
    limits = settings.limits

    def on_status(store: str, status: str) -> None:
        bus.publish(LimiterStore(store=store, status=status))

    store = open_store(limits.store, on_status)
    if isinstance(store, MemoryStore) and settings.server.workers > 1:
        log.warning(
            "limiter store is 'memory' with %d workers: each worker counts on its own, so every limit "
            "is multiplied by up to %d; use limits.store = 'redis://...' to share the counters",
            settings.server.workers,
            settings.server.workers,
        )
    await store.probe()  # at start-up: a missing Redis is logged and reported before any request
    limiter = Limiter(limits, store, caller_for=caller_for)
    limiter.on_ban = bus.publish
    limiter.start()
    return limiter
