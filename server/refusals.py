"""How a refusal is worded in each response style (limits.response): status, headers, body; pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec

from syncbed import contract

if TYPE_CHECKING:
    from server.limiter import Decision
    from server.rule import Rule

Headers = list[tuple[bytes, bytes]]
_JSON = b"application/json"
_TEXT = b"text/plain"  # what Rack::Attack 6.8 sends, without a charset
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Style:
    """What one style tells a client: RateLimit fields, a Retry-After, and how its bodies are written."""

    name: contract.ResponseStyle
    fields: bool  # RateLimit-Policy and RateLimit on every answer a rule counted
    retry_after: Literal["decision", "window", ""]  # ceil of the wait, Rack::Attack's period - now % period, none
    body: Literal["json+retry", "json", "rack"]  # retry_after in the body, without it, Rack's fixed text bodies


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style("syncbed", fields=True, retry_after="decision", body="json+retry"),
        Style("rack-attack", fields=False, retry_after="", body="rack"),
        Style("rack-attack-retry-after", fields=False, retry_after="window", body="rack"),
        Style("draft-ratelimit", fields=True, retry_after="", body="json"),
        Style("retry-after-only", fields=False, retry_after="decision", body="json"),
    )
}
assert tuple(STYLES) == contract.RESPONSE_STYLES


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    content_type: bytes
    body: bytes
    headers: Headers


def ratelimit_headers(matched: list[tuple[Rule, Decision]]) -> Headers:
    """RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11), one item per rule."""
    policy = ", ".join(r.policy for r, _ in matched)
    state = ", ".join(f"{r.label};r={d.remaining};t={max(0, math.ceil(d.reset))}" for r, d in matched)
    return [(contract.HEADER_RATELIMIT_POLICY_KEY, policy.encode()), (contract.HEADER_RATELIMIT_KEY, state.encode())]


def window_retry_after(period: float, now: float) -> int:
    """Rack::Attack's Retry-After: `period - (epoch_time % period)`, epoch_time a whole second."""
    return max(1, math.ceil(period - (math.floor(now) % period)))


def throttled(style: Style, rule: Rule, d: Decision, now: float, matched: list[tuple[Rule, Decision]]) -> Refusal:
    """The 429 for a request `rule` refused at `now`."""
    headers: Headers = []
    if style.retry_after == "decision":
        headers.append((contract.HEADER_RETRY_AFTER_KEY, str(max(1, math.ceil(d.retry_after))).encode()))
    elif style.retry_after == "window":
        headers.append((contract.HEADER_RETRY_AFTER_KEY, str(window_retry_after(rule.period, now)).encode()))
    if style.fields:
        headers += ratelimit_headers(matched)
    if style.body == "rack":
        return Refusal(429, _TEXT, contract.RACK_THROTTLED_BODY, headers)
    if style.body == "json+retry":
        retry = round(d.retry_after, 3)
        message = f"Rate limit {rule.name} exceeded: {rule.limit} requests per {rule.period:g} s; retry in {retry:g} s."
        body = contract.error_body(contract.E_RATE_LIMITED, message, rule=rule.name, retry_after=retry)
    else:  # the limit is the client's to learn: the body names the rule only
        body = contract.error_body(contract.E_RATE_LIMITED, f"Rate limit {rule.name} exceeded.", rule=rule.name)
    return Refusal(429, _JSON, _encode(body), headers)


def forbidden(style: Style, message: str, **details: object) -> Refusal:
    """The 403 of the blocklist (or a ban): Rack::Attack's "Forbidden\\n", else the JSON error shape."""
    if style.body == "rack":
        return Refusal(403, _TEXT, contract.RACK_BLOCKED_BODY, [])
    return Refusal(403, _JSON, _encode(contract.error_body(contract.E_FORBIDDEN, message, **details)), [])
