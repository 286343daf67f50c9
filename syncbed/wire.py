"""Reading the wire: integers, run ids and headers, parsed one way by every part."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

# A run id: what a client may name its run, in X-Sync-Run, POST /api/v1/runs, ?run= and URLs.
RUN_ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,64}\Z"
RUN_ID_RULE: Final = "1 to 64 characters of A-Z a-z 0-9 . _ : -"
_RUN_ID: Final = re.compile(RUN_ID_PATTERN)

# 18 digits always fit a signed 64-bit integer; anything longer is refused before int() sees it.
MAX_DIGITS: Final = 18

RawHeaders = Iterable[tuple[bytes, bytes]]


class RepeatedHeader(ValueError):
    """A header that must appear once came more than once; `name` says which."""

    def __init__(self, name: str) -> None:
        super().__init__(f"send one {name} header, not several")
        self.name = name

    @property
    def sentence(self) -> str:
        """The 400's message, the same wherever a repeat is refused."""
        return f"Send one {self.name} header, not several: which of them is meant cannot be known."


def ascii_int(raw: str | None) -> int | None:
    """A non-negative integer written in ASCII digits only, or None.

    `str.isdigit()` alone is true for superscripts and other scripts' digits, which `int()` refuses or misreads.
    """
    if not raw or len(raw) > MAX_DIGITS or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def is_run_id(value: object) -> bool:
    return isinstance(value, str) and _RUN_ID.match(value) is not None


def run_id_problem(value: str) -> str | None:
    """None for a run id, else what is wrong with `value`, for a 4xx message ("run: " + this)."""
    if is_run_id(value):
        return None
    return f"expected {RUN_ID_RULE}, got {value[:72]!r}"


def header_values(headers: RawHeaders, name: bytes) -> list[str]:
    """Every value of header `name` (lower-case bytes, as ASGI gives them), in order."""
    return [v.decode("latin-1") for k, v in headers if k == name]


def first_header(headers: RawHeaders, name: bytes) -> str | None:
    """The first value of header `name`, for headers whose repeats do not matter (Content-Type)."""
    return next((v.decode("latin-1") for k, v in headers if k == name), None)


def single_header(headers: RawHeaders, name: bytes) -> str | None:
    """The one value of a header that must not repeat; RepeatedHeader if it does."""
    found: bytes | None = None
    for k, v in headers:  # one pass, no list: this runs on every request
        if k == name:
            if found is not None:
                raise RepeatedHeader(name.decode("latin-1").title())
            found = v
    return None if found is None else found.decode("latin-1")


def list_header(headers: RawHeaders, name: bytes) -> str | None:
    """A list-valued header (X-Forwarded-For): repeated fields joined by commas (RFC 9110 5.3)."""
    found = header_values(headers, name)
    return ",".join(found) if found else None


def server_url_problem(server: str) -> str | None:
    """Why `server` cannot be synced to (a sentence), or None when it is an http(s) URL with a host."""
    import httpx  # here, not at the top: the server imports this module and never needs httpx

    try:
        url = httpx.URL(server)
    except httpx.InvalidURL as exc:
        return f"the server URL {server!r} is not valid ({exc})"
    if url.scheme not in ("http", "https") or not url.host:
        return f"the server URL must look like http://HOST:PORT or https://HOST, got {server!r}"
    return None
