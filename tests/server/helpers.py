"""Small builders shared by the server tests."""

from __future__ import annotations

import itertools

import msgspec

_seq = itertools.count()


def visit(i: int | None = None, prefix: str = "v", **over: object) -> dict[str, object]:
    n = next(_seq) if i is None else i
    rec: dict[str, object] = {
        "id": f"{prefix}-{n}",
        "url": f"https://example.com/page/{n}",
        "visitedAt": 1_700_000_000_000 + n,
        "title": f"Page {n}",
        "durationMs": 1500,
        "tabId": 7,
    }
    rec.update(over)
    return rec


def batch(n: int, prefix: str = "v", start: int = 0) -> bytes:
    return msgspec.json.encode({"pageVisits": [visit(start + i, prefix) for i in range(n)]})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
