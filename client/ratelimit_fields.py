"""Parse the IETF RateLimit / RateLimit-Policy fields (Structured Field lists, draft 11)."""

from __future__ import annotations

from dataclasses import dataclass


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


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside double-quoted strings."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            buf.append(ch)
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def _bare(value: str) -> str | float | bool:
    """A bare item: string, number (int or decimal), boolean or token."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if value in ("?1", "?0"):
        return value == "?1"
    try:
        return float(value)
    except ValueError:
        return value


def parse_list(text: str) -> list[tuple[str, dict[str, str | float | bool]]]:
    """A Structured Field list: [(item, {param: value})]; malformed members are skipped."""
    members: list[tuple[str, dict[str, str | float | bool]]] = []
    for member in _split(text, ","):
        pieces = _split(member, ";")
        item = _bare(pieces[0])
        if not isinstance(item, str) or not item:
            continue
        params: dict[str, str | float | bool] = {}
        for piece in pieces[1:]:
            key, eq, value = piece.partition("=")
            key = key.strip()
            if key:
                params[key] = _bare(value) if eq else True
        members.append((item, params))
    return members


def _number(params: dict[str, str | float | bool], key: str) -> float | None:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, float):
        return None
    return value


def parse_policies(values: list[str]) -> dict[str, Policy]:
    """Every well-formed `RateLimit-Policy` item (q >= 0, w > 0), by name."""
    found: dict[str, Policy] = {}
    for name, params in parse_list(",".join(values)):
        quota, window = _number(params, "q"), _number(params, "w")
        if quota is None or quota < 0:
            continue
        # The draft's default window is unspecified by the server; one second is the common case.
        window = window if window is not None and window > 0 else 1.0
        found[name] = Policy(name, int(quota), window)
    return found


def parse_remaining(values: list[str]) -> dict[str, Remaining]:
    """Every well-formed `RateLimit` item (r >= 0), by name; a missing t reads as 0."""
    found: dict[str, Remaining] = {}
    for name, params in parse_list(",".join(values)):
        remaining, reset = _number(params, "r"), _number(params, "t")
        if remaining is None or remaining < 0:
            continue
        found[name] = Remaining(name, int(remaining), max(0.0, reset or 0.0))
    return found
