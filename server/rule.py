"""A throttle or track rule: what it matches, its counters and its RateLimit policy."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec

from server.config import ThrottleRule
from server.limiter import make_algorithm
from server.limiter_store import Counter, counter_id
from syncbed.responses import RuleSettings


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
