"""The limiter's JSON answers as Structs: the server encodes them and readers decode them with these types.

The sync answer is `contract.SyncResponse`, the fault settings `faults.FaultSettings`.
"""

from __future__ import annotations

import msgspec


class RuleSettings(msgspec.Struct):
    """One throttle or track as it now is."""

    name: str
    kind: str  # "throttle" | "track"
    limit: int
    period: float  # seconds
    key: str  # "ip" | "user" | "ip+user"
    paths: list[str]
    methods: list[str]
    algorithm: str  # "fixed_window" | "sliding_window" | "gcra"
    enabled: bool


class LimitChanged(RuleSettings):
    """200 answer of PUT /api/v1/admin/limits: the edited rule, and the name the edit asked for."""

    rule: str


class HotKey(msgspec.Struct):
    """A key's use of a rule in the current window; `reset`: seconds until its quota is back."""

    key: str
    count: int
    reset: float


class RuleView(RuleSettings):
    """A rule in the limiter view, with its hottest keys first and its limit per tier (`[limits.tiers]`)."""

    hot: list[HotKey]
    tiers: dict[str, int] = msgspec.field(default_factory=dict)


class BannedKey(msgspec.Struct):
    """A key a ban rule refuses until `until` (epoch seconds), `left` seconds from now."""

    key: str
    until: float
    left: float


class BanView(msgspec.Struct, kw_only=True):
    """A fail2ban or allow2ban rule in the limiter view, with the keys it bans now."""

    name: str
    kind: str  # "fail2ban" | "allow2ban"
    maxretry: int
    findtime: float  # seconds
    bantime: float  # seconds
    key: str  # "ip" | "user" | "ip+user"
    paths: list[str]
    methods: list[str]
    statuses: list[int]  # empty: the request itself is the failure
    banned: list[BannedKey]


class WorkerStats(msgspec.Struct, kw_only=True):
    """One worker's share of a cluster's figures (`stats.workers`, the limiter view's `workers`)."""

    worker: str
    records_per_s: float
    requests_per_s: float
    throttled_per_s: float
    in_flight: int


class LimiterView(msgspec.Struct, omit_defaults=True):
    """200 answer of GET /api/v1/limiter; `workers` only on a cluster (a Redis bus)."""

    enabled: bool
    dry_run: bool
    response: str  # the response style (contract.RESPONSE_STYLES)
    store: str
    store_status: str  # "up" | "down"
    trusted_proxies: list[str]
    safelist: list[str]
    blocklist: list[str]
    rules: list[RuleView]
    bans: list[BanView] = msgspec.field(default_factory=list)
    workers: list[WorkerStats] | None = None
