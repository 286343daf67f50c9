"""Read the IETF RateLimit / RateLimit-Policy fields (Structured Field lists, draft 11) with http-sf."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, cast

import http_sf


@dataclass(frozen=True, slots=True)
class Policy:
    """One `RateLimit-Policy` item: `quota` requests per `window` seconds."""

    name: str
    quota: int
    window: float


@dataclass(frozen=True, slots=True)
class Remaining:
    """One `RateLimit` item: `remaining` requests left, reset in `reset` seconds."""

    name: str
    remaining: int
    reset: float


Members = list[tuple[str, dict[str, Any]]]


def usable(quota: float, window: float) -> bool:
    """A policy the pacer can spend: at least one request per positive, finite window.

    A zero quota gives the pacer nothing to spend (the server's 429 and Retry-After say when to come
    back); an infinite or non-positive window would stall it.
    """
    return quota >= 1 and 0 < window < math.inf


def parse_members(values: Sequence[str]) -> Members:
    """(name, parameters) of each string-named item; [] when the field is not a Structured Field list.

    The field's lines are one list joined by commas (RFC 9110 5.3); a field that does not parse is
    ignored whole (RFC 9651 4.2). Items named by anything but a string or token are skipped.
    """
    text = ", ".join(v for v in values if v.strip())
    if not text:
        return []
    try:
        parsed = http_sf.parse(text.encode("latin-1"), tltype="list")
    except (http_sf.StructuredFieldError, UnicodeEncodeError):
        return []
    members: Members = []
    # tltype="list" always gives a list of (value, parameters) pairs: parse_list collects
    # parse_item / parse_innerlist results, both (value, dict); only the declared type is wider.
    for name, params in cast(list[tuple[Any, dict[str, Any]]], parsed):
        if isinstance(name, http_sf.Token):
            name = str(name)
        if type(name) is str and name:  # an inner list's "name" is a list
            members.append((name, params))
    return members


def _number(params: dict[str, Any], key: str) -> float | None:
    """A parameter that is a finite number (an sf-integer or sf-decimal), else None."""
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_policies(values: Sequence[str]) -> Mapping[str, Policy]:
    """Every usable `RateLimit-Policy` item (see `usable`), by name; the others are ignored.

    Read-only: one server sends the same policy text on every answer, so the result is cached on it.
    """
    return _policies(tuple(values))


@lru_cache(maxsize=32)
def _policies(values: tuple[str, ...]) -> Mapping[str, Policy]:
    found: dict[str, Policy] = {}
    for name, params in parse_members(values):
        # The draft leaves a missing window to the server; one second is the common case.
        quota, window = _number(params, "q"), _number(params, "w") if "w" in params else 1.0
        if quota is not None and window is not None and usable(quota, window):
            found[name] = Policy(name, int(quota), window)
    return MappingProxyType(found)  # shared by every answer that carried this text


def parse_remaining(values: Sequence[str]) -> dict[str, Remaining]:
    """Every usable `RateLimit` item (r >= 0, t >= 0 when given), by name; a missing t reads as 0."""
    found: dict[str, Remaining] = {}
    for name, params in parse_members(values):
        remaining, reset = _number(params, "r"), _number(params, "t")
        if remaining is None or remaining < 0:
            continue
        if "t" in params and (reset is None or reset < 0):
            continue
        found[name] = Remaining(name, int(remaining), reset or 0.0)
    return found
