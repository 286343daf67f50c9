"""Reading the server's answer to one sync request: outcome, acknowledgement, RateLimit fields."""

from __future__ import annotations

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
    error, message, retry_after, rule = _error_fields(response)
    return Answer(Outcome(status, error, message, retry_after, rule), None, policies, remaining)


def error_body(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON object an error answer carries, or None when its body is anything else."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    return body if isinstance(body, dict) else None


def _error_fields(response: httpx.Response) -> tuple[str, str, float | None, str | None]:
    """(error, message, retry_after, rule) from a JSON error body, tolerating anything else."""
    body = error_body(response)
    if body is None:
        return "", response.text.strip()[:200], _header_retry_after(response), None
    retry_after = body.get("retry_after")
    if not isinstance(retry_after, int | float) or isinstance(retry_after, bool):
        retry_after = _header_retry_after(response)
    rule = body.get("rule")
    return (
        str(body.get("error", "")),
        str(body.get("message", "")),
        retry_after,
        rule if isinstance(rule, str) else None,
    )


def _header_retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get(HEADER_RETRY_AFTER, ""))
    except ValueError:
        return None
