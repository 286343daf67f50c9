"""The demo's acts, in order, with their captions, and the phase-aware bound each act is measured against.

Under the seed limits (5 syncs/s per user, 0.3 s per batch) and 10 batches an act: sequential is
the "before"; the plan's client, conservative, aggressive and adaptive all need the next window for
their second five, and differ in what they spend on it; the last act changes the server's faults
and limits mid-run. Every act starts just after a window edge, so its figures repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from client.scheduler import ADAPTIVE_CAP
from client.scheduler import MODES as FIXED_MODES
from harness.demo_act import REFERENCE
from syncbed import contract as c
from syncbed.physics import Rule, earliest_finish
from syncbed.responses import RuleSettings

# Requests in flight at most, per client: the bound's C (adaptive: its ceiling, not what it used).
CONCURRENCY = {**FIXED_MODES, c.ADAPTIVE: ADAPTIVE_CAP, REFERENCE: 5}
PHASE = 0.02  # each act starts 2% into a window of the binding rule: just after an edge
MIN_RATIO = 0.99  # time/bound below this is a bug in the bound, not a fast client


@dataclass(frozen=True)
class Change:
    """Admin edits made `at` seconds into an act: a PUT of the faults and one PUT per rule."""

    at: float
    faults: dict[str, float] = field(default_factory=dict)
    limits: tuple[dict[str, Any], ...] = ()
    says: str = ""


@dataclass(frozen=True)
class Act:
    name: str
    client: str  # a sync mode, or "reference" (the plan's client)
    caption: str  # what to look at
    scale: int = 1  # records: this many times the demo's per-act count
    changes: tuple[Change, ...] = ()


SEED_ACTS: tuple[Act, ...] = (
    Act("sequential", c.SEQUENTIAL,
        "The 'before': one batch at a time, 0.3 s each. The limit never binds; latency does: "
        "10 batches take 10 x 0.3 s."),
    Act("plan's client", REFERENCE,
        "The plan's client: groups of 5 awaited together. Its second group comes 0.3 s into the "
        "second and is refused whole (5 x 429); each request sleeps its own retry_after."),
    Act("conservative", c.CONSERVATIVE,
        "5 in flight, paced by the RateLimit fields: the second five wait for the window's edge. "
        "No 429."),
    Act("aggressive", c.AGGRESSIVE,
        "Up to 10 at once against 5 a second: 5 pass, the next come back 429 within milliseconds and "
        "hold the rest back; they go again at the edge. No faster than conservative, and requests wasted."),
    Act("adaptive", c.ADAPTIVE,
        "Knows nothing yet: its first burst probes with aggressive's 10, and the few over 5/s come back "
        "429 at once; from then on paced by the RateLimit fields, 5 at each edge: the bound."),
    Act("faults live", c.ADAPTIVE,
        "Twice the records; 1.5 s in, the admin API sets 25% injected 503s and drops sync/user to "
        "3/s. Adaptive retries the 503s and re-paces to the new limit. The bound is for the limits "
        "at the start.",
        scale=2,
        changes=(Change(1.5, {"error_rate": 0.25}, ({"rule": "sync/user", "limit": 3},),
                        "error_rate 0.25, sync/user 3/1s"),
                 )),
)  # fmt: skip
# What the last act changed, put back when it ends: the server is left as the demo found it.
RESTORE = Change(0.0, {"error_rate": 0.0}, ({"rule": "sync/user", "limit": 5},), "error_rate 0, sync/user 5/1s")


def binds_sync(rule: RuleSettings) -> bool:
    """Whether the server counts a POST to the sync endpoint against `rule` (as server/throttle.py matches)."""
    if not rule.enabled or rule.kind != "throttle" or (rule.methods and "POST" not in rule.methods):
        return False
    return not rule.paths or any(
        c.SYNC_PATH.startswith(p[:-1]) if p.endswith("*") else p == c.SYNC_PATH for p in rule.paths
    )


def rules_at(settings: Sequence[RuleSettings], start: float) -> list[Rule]:
    """The rules a sync starting at wall time `start` meets, each at its phase (windows align to the clock)."""
    return [Rule(s.name, s.limit, s.period, s.algorithm, elapsed=start % s.period) for s in settings if binds_sync(s)]


def bound(batches: int, latency: float, client: str, rules: Sequence[Rule]) -> float:
    """The earliest finish of `batches` for `client`'s concurrency under `rules` as the run found them."""
    return earliest_finish(batches, latency, CONCURRENCY[client], rules)


def binding_period(settings: Sequence[RuleSettings]) -> float:
    """The period of the sync rule with the smallest quota, the first a burst uses up: the acts start at its phase."""
    rules = [s for s in settings if binds_sync(s)]
    return min(rules, key=lambda s: (s.limit, s.period)).period if rules else 1.0


@dataclass(frozen=True)
class Outcome:
    """One act as it went: the client's result, the rules it met and its phase-aware bound."""

    index: int
    act: Act
    result: dict[str, Any]
    rules: tuple[Rule, ...]
    bound: float

    @property
    def seconds(self) -> float:
        return float(self.result.get("duration", 0.0))

    @property
    def throttled(self) -> int:
        return int(self.result.get("throttled", 0))

    @property
    def requests(self) -> int:
        return int(self.result.get("requests", 0))

    @property
    def batches(self) -> int:
        return int(self.result.get("total_batches", 0))

    @property
    def records(self) -> int:
        return int(self.result.get("synced_records", 0))

    @property
    def status(self) -> str:
        return str(self.result.get("status", f"exit {self.result.get('exit')}"))

    @property
    def ratio(self) -> float:
        return self.seconds / self.bound if self.bound > 0 else 0.0

    @property
    def beats_bound(self) -> bool:
        return self.status == "complete" and self.ratio < MIN_RATIO
