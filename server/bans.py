"""Fail2Ban and Allow2Ban: a key that fails `maxretry` times within one findtime window is banned for bantime.

Rack::Attack's semantics (lib/rack/attack/fail2ban.rb): a banned key is refused before anything else is
evaluated or counted; failures count in a fixed, epoch-aligned findtime window (its throttles' counter);
the ban lasts bantime from the moment it is set. Fail2Ban refuses every failing request, the first one
too; Allow2Ban lets them through, the one that sets the ban included, and refuses what follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from server.config import BanRule
from server.rule import Rule
from syncbed.responses import BannedKey, BanView

BanKind = Literal["fail2ban", "allow2ban"]


@dataclass(eq=False)
class Ban:
    """One ban rule: its failure filter (a fixed-window Rule counting failures) and its bans."""

    kind: BanKind
    bantime: float
    statuses: frozenset[int]
    # Which requests it watches, keyed as a throttle is: name, key, paths and methods, limit = maxretry and
    # period = findtime; its fixed-window counter counts the failures.
    filter: Rule
    # The bans as the last sweep (or this worker's own ban) saw them, key -> until: for the limiter view.
    seen: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, r: BanRule, kind: BanKind) -> Ban:
        watch = Rule(r.name, kind, r.maxretry, r.findtime, r.key, r.paths, r.methods)
        return cls(kind, r.bantime, frozenset(r.statuses), watch)

    @property
    def name(self) -> str:
        return self.filter.name

    @property
    def maxretry(self) -> int:
        return self.filter.limit

    @property
    def findtime(self) -> float:
        return self.filter.period

    @property
    def id(self) -> str:
        """The bans' name in the store (the failure counter's is the filter rule's counter id)."""
        return f"{self.kind}:{self.name}"

    @property
    def counts_requests(self) -> bool:
        """The filter is the request itself (Rack's); else the status of its answer."""
        return not self.statuses

    def blocks_failure(self) -> bool:
        """A failing request of a key not banned yet: refused by Fail2Ban, let through by Allow2Ban."""
        return self.kind == "fail2ban"

    def bans_at(self, count: int) -> bool:
        return count >= self.maxretry

    def message(self, until: float, now: float) -> str:
        if until <= now:  # Fail2Ban refusing a failure before any ban
            return (
                f"Refused by the {self.kind} rule {self.name!r}: {self.maxretry} such requests within "
                f"{self.findtime:g} s ban this client for {self.bantime:g} s."
            )
        return f"Banned by the {self.kind} rule {self.name!r} for another {math.ceil(until - now)} s."

    def view(self, now: float) -> BanView:
        banned = [BannedKey(k, round(u, 3), round(u - now, 3)) for k, u in sorted(self.seen.items()) if u > now]
        return BanView(
            name=self.name,
            kind=self.kind,
            maxretry=self.maxretry,
            findtime=self.findtime,
            bantime=self.bantime,
            key=self.filter.key,
            paths=list(self.filter.paths),
            methods=list(self.filter.methods),
            statuses=sorted(self.statuses),
            banned=banned,
        )
