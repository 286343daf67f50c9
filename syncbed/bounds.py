"""The sane range of a throttle rule's limit and period: one check for every way a value enters.

The TOML file, the admin API and `Limiter.update_limit` all call `rule_values`, so a value the server
refuses at start-up is refused live too, with the same words. Inside these bounds the limiter's
arithmetic stays small: `now / period` is at most ~2e12 windows, a GCRA time fits in 2**53
microseconds, and the RateLimit field's `t=` is at most a week.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# 1 ms: below it a window is shorter than the server's own answer time (and `now / period` grows
# towards float overflow: 1e-300 made every decision raise). A week: the longest quota anyone asks
# of a sync API; a longer period reads as a typo and would put huge `t=` values on the wire.
MIN_PERIOD_S = 0.001
MAX_PERIOD_S = 7 * 86_400.0
# At least 1: a limit of 0 never admits, yet every 429 says "retry after t" (a promise it cannot
# keep) and the client does not count 429s as failed attempts, so it would retry for ever. To
# stop traffic use the blocklist or a rule's `enabled`. 1e9 per period is past any real rate.
MIN_LIMIT = 1
MAX_LIMIT = 1_000_000_000

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class BoundsError(ValueError):
    """A limit or period outside its range; `field` is 'limit' or 'period'."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RuleValues:
    limit: int | None
    period: float | None


def rule_values(limit: object = None, period: object = None) -> RuleValues:
    """Check a rule's limit and/or period (None = not given); the period may be '250ms', '5m', ... or seconds."""
    return RuleValues(_limit(limit) if limit is not None else None, _period(period) if period is not None else None)


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BoundsError("limit", f"expected a whole number from {MIN_LIMIT} to {MAX_LIMIT}, got {value!r}")
    if not MIN_LIMIT <= value <= MAX_LIMIT:
        raise BoundsError("limit", f"must be from {MIN_LIMIT} to {MAX_LIMIT}, got {value}")
    return value


def _period(value: object) -> float:
    wanted = "a duration from 1 ms to 7 days, like '250ms', '1s', '5m', '1h', '1d', or a number of seconds"
    if isinstance(value, bool):
        raise BoundsError("period", f"expected {wanted}, got {value!r}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int past float's range (JSON allows it)
            seconds = math.inf
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise BoundsError("period", f"expected {wanted}, got {value!r}")
    if not math.isfinite(seconds) or not MIN_PERIOD_S <= seconds <= MAX_PERIOD_S:
        raise BoundsError(
            "period", f"must be from 1 ms to 7 days ({MIN_PERIOD_S:g} to {MAX_PERIOD_S:g} s), got {value!r}"
        )
    return seconds
