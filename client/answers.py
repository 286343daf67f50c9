"""Reading the server's answer to one sync request: outcome, acknowledgement, RateLimit fields."""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from client.policy import Outcome
from client.ratelimit_fields import Policy, Remaining, parse_policies, parse_remaining
from syncbed.contract import HEADER_RATELIMIT, HEADER_RATELIMIT_POLICY, HEADER_RETRY_AFTER, SyncResponse


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    ack: SyncResponse | None = None  # a 2xx's counts (None if its body was unreadable: still a 2xx)
    policies: Mapping[str, Policy] = field(default_factory=dict)
    remaining: Mapping[str, Remaining] = field(default_factory=dict)


def failure(exc: Exception) -> Answer:
    """No answer at all: timeout, refused or dropped connection."""
    return Answer(Outcome(None, type(exc).__name__, str(exc) or repr(exc)))


def read(response: httpx.Response, *, fields: bool = True) -> Answer:
    """The answer; its RateLimit fields only when `fields` (a scheduler told to ignore them never reads them)."""
    status = response.status_code
    policies: Mapping[str, Policy] = {}
    remaining: Mapping[str, Remaining] = {}
    if fields:
        policies = parse_policies(response.headers.get_list(HEADER_RATELIMIT_POLICY))
        remaining = parse_remaining(response.headers.get_list(HEADER_RATELIMIT))
    if response.is_success:
        try:
            ack: SyncResponse | None = msgspec.json.decode(response.content, type=SyncResponse)
        except msgspec.DecodeError:
            ack = None
        return Answer(Outcome(status), ack, policies, remaining)
    error, message, retry_after, rule, exact = _error_fields(response)
    return Answer(Outcome(status, error, message, retry_after, rule, exact), None, policies, remaining)


def error_body(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON object an error answer carries, or None when its body is anything else."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    return body if isinstance(body, dict) else None


def _error_fields(response: httpx.Response) -> tuple[str, str, float | None, str | None, bool]:
    """(error, message, retry_after, rule, exact) from a JSON error body, tolerating anything else
    (Rack::Attack's plain "Retry later", no Retry-After at all)."""
    body = error_body(response)
    if body is None:
        return "", response.text.strip()[:200], _header_retry_after(response), None, False
    retry_after = body.get("retry_after")
    exact = isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after >= 0
    if not exact:
        retry_after = _header_retry_after(response)
    rule = body.get("rule")
    return (
        str(body.get("error", "")),
        str(body.get("message", "")),
        retry_after,
        rule if isinstance(rule, str) else None,
        exact,
    )


def _header_retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds: delay-seconds, or an HTTP-date (RFC 9110 10.2.3) from now; None if neither."""
    value = response.headers.get(HEADER_RETRY_AFTER, "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())
