"""The rule engine (safelist, blocklist, throttles, tracks), its live edits and the limiter view."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from server.auth import Caller
from server.client_ip import ClientIp, IpSet
from server.config import ThrottleRule
from server.limiter import Decision, make_algorithm
from server.limiter_store import Counter, MemoryStore, Store, counter_id, open_store
from server.refusals import STYLES
from syncbed.bounds import rule_values
from syncbed.events import LimiterStore
from syncbed.responses import HotKey, LimiterView, RuleSettings, RuleView

if TYPE_CHECKING:
    from server.config import LimitsSettings, Settings
    from server.events import EventBus

log = logging.getLogger("syncbed.limiter")

CallerLookup = Callable[[str | None], Awaitable[Caller | None]]


def sf_string(text: str) -> str:
    """An RFC 8941 sf-string: printable ASCII in quotes, with \\ and " escaped."""
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(eq=False)
class Rule:
    """One throttle or track, with its counters; limit, period and enabled can change live."""

    name: str
    kind: str  # "throttle" | "track"
    limit: int
    period: float
    key: str  # "ip" | "user" | "ip+user"
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    algorithm: str = "fixed_window"
    enabled: bool = True
    tier: str | None = None  # a tier's variant of the rule: its own limit and counters
    tiers: dict[str, Rule] = field(default_factory=dict)  # the variants, by tier
    counter: Counter = field(init=False)
    label: str = field(init=False)  # the rule's sf-string in the RateLimit fields
    policy: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = sf_string(self.name)
        self._exact = frozenset(p for p in self.paths if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in self.paths if p.endswith("*"))
        self._methods = frozenset(m.upper() for m in self.methods)
        self.reset_counter()

    @classmethod
    def from_config(cls, r: ThrottleRule, kind: str) -> Rule:
        return cls(r.name, kind, r.limit, r.period, r.key, r.paths, r.methods, r.algorithm)

    def add_tier(self, tier: str, limit: int) -> None:
        self.tiers[tier] = Rule(
            self.name, self.kind, limit, self.period, self.key, self.paths, self.methods, self.algorithm, tier=tier
        )

    def for_tier(self, tier: str | None) -> Rule:
        return self.tiers.get(tier, self) if tier is not None else self

    def reset_counter(self) -> None:
        # The period is part of the counter's identity: a changed period starts fresh counters. A tier's
        # counters are its own (`name@tier`): each algorithm holds its limit, so two limits cannot share one.
        name = self.name if self.tier is None else f"{self.name}@{self.tier}"
        self.counter = Counter(
            counter_id(self.kind, name, self.period), make_algorithm(self.algorithm, self.limit, self.period)
        )
        self._set_policy()
        for variant in self.tiers.values():
            variant.period = self.period
            variant.reset_counter()

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self.counter.algorithm.set_limit(limit)
        self._set_policy()

    def _set_policy(self) -> None:
        self.policy = f"{self.label};q={self.limit};w={max(1, math.ceil(self.period))}"

    def matches(self, method: str, path: str) -> bool:
        if self._methods and method not in self._methods:
            return False
        if not self.paths:
            return True
        return path in self._exact or any(path.startswith(p) for p in self._prefixes)

    def settings(self) -> RuleSettings:
        return RuleSettings(
            name=self.name,
            kind=self.kind,
            limit=self.limit,
            period=self.period,
            key=self.key,
            paths=list(self.paths),
            methods=list(self.methods),
            algorithm=self.algorithm,
            enabled=self.enabled,
        )

    def as_dict(self) -> dict[str, object]:
        return msgspec.structs.asdict(self.settings())


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
        )

    async def aclose(self) -> None:
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
    return Limiter(limits, store, caller_for=caller_for)
