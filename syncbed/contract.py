"""The wire contract: the one definition server, client and monitor share."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Final, Literal, get_args

import msgspec

from syncbed.wire import RUN_ID_PATTERN

# --- endpoints -------------------------------------------------------------
SYNC_PATH: Final = "/api/v1/data/sync"
COUNT_PATH: Final = "/api/v1/data/count"
HEALTH_PATH: Final = "/healthz"
LIMITER_PATH: Final = "/api/v1/limiter"
EVENTS_PATH: Final = "/api/v1/events"
RUNS_PATH: Final = "/api/v1/runs"
FAULTS_PATH: Final = "/api/v1/admin/faults"
LIMITS_PATH: Final = "/api/v1/admin/limits"

# --- headers ---------------------------------------------------------------
HEADER_RUN: Final = "X-Sync-Run"
HEADER_BATCH: Final = "X-Sync-Batch"
HEADER_ATTEMPT: Final = "X-Sync-Attempt"
HEADER_RETRY_AFTER: Final = "Retry-After"
HEADER_RATELIMIT: Final = "RateLimit"
HEADER_RATELIMIT_POLICY: Final = "RateLimit-Policy"
HEADER_LAST_EVENT_ID: Final = "Last-Event-ID"

# The same names as an ASGI scope carries them (lower case, bytes), for servers reading raw headers.
HEADER_RUN_KEY: Final = HEADER_RUN.lower().encode()
HEADER_BATCH_KEY: Final = HEADER_BATCH.lower().encode()
HEADER_ATTEMPT_KEY: Final = HEADER_ATTEMPT.lower().encode()
HEADER_RETRY_AFTER_KEY: Final = HEADER_RETRY_AFTER.lower().encode()
HEADER_RATELIMIT_KEY: Final = HEADER_RATELIMIT.lower().encode()
HEADER_RATELIMIT_POLICY_KEY: Final = HEADER_RATELIMIT_POLICY.lower().encode()
AUTHORIZATION_KEY: Final = b"authorization"
CONTENT_TYPE_KEY: Final = b"content-type"
CONTENT_LENGTH_KEY: Final = b"content-length"

# --- limits ----------------------------------------------------------------
DEFAULT_BATCH_RECORDS: Final = 1000
DEFAULT_BODY_BYTES: Final = 2 * 1024 * 1024
MAX_ID_CHARS: Final = 128
MAX_URL_CHARS: Final = 2048
MAX_TITLE_CHARS: Final = 1024
INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
# 9999-12-31T23:59:59.999Z: anything later is a unit mistake (seconds vs ms).
MAX_VISITED_AT: Final = 253_402_300_799_999

# http(s) scheme, a non-empty rest, and no whitespace or control characters anywhere. \Z, not $: a $
# would let one trailing newline through.
URL_PATTERN: Final = r"^[hH][tT][tT][pP][sS]?://[^\x00-\x20\x7f]+\Z"
ID_PATTERN: Final = r"^[^\x00-\x1f\x7f]+\Z"

# --- records ---------------------------------------------------------------
# The two patterns are not msgspec `pattern=` constraints: those cost one regex call per field, 2,000
# per batch and three quarters of decoding it. `patterns_hold` checks a whole batch in a few C scans.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
Url = Annotated[str, msgspec.Meta(max_length=MAX_URL_CHARS)]
VisitedAt = Annotated[int, msgspec.Meta(ge=0, le=MAX_VISITED_AT)]
Title = Annotated[str, msgspec.Meta(max_length=MAX_TITLE_CHARS)]
DurationMs = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
TabId = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


# gc=False: its fields are strings and integers, so it can never be part of a reference cycle, and a
# batch's 1,000 of them need not be tracked (and walked) by the garbage collector.
class PageVisit(msgspec.Struct, rename="camel", forbid_unknown_fields=False, omit_defaults=True, gc=False):
    """One browsing record; `id` is client-generated and unique per user."""

    id: Id
    url: Url
    visited_at: VisitedAt
    title: Title | None = None
    duration_ms: DurationMs | None = None
    tab_id: TabId | None = None


URL_MESSAGE: Final = "must be an http:// or https:// URL without spaces or control characters"
ID_MESSAGE: Final = "must not contain control characters"
# PostgreSQL's text cannot hold U+0000, so no store may accept it: a record is valid on every backend or on none.
TITLE_MESSAGE: Final = "must not contain the NUL character (U+0000)"
_URL: Final = re.compile(URL_PATTERN)
_ID: Final = re.compile(ID_PATTERN)
# In UTF-8 a control character is always its own single byte (every byte of a longer sequence is >= 0x80),
# so deleting every other byte value leaves exactly the control characters.
_NOT_CONTROL: Final = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # JSON may carry a lone surrogate escape


def patterns_hold(visits: Sequence[PageVisit]) -> bool:
    """Whether every url matches URL_PATTERN, every id ID_PATTERN and every title title_ok, for the whole batch at once.

    Concatenated values hold a control character iff one value does, found in one C pass. Urls are
    joined by spaces, which they may not contain: counting spaces proves none does, and then " http://"
    and " https://" occur once per url exactly when each starts with a scheme.
    """
    n = len(visits)
    if n == 0:
        return True
    if _utf8("".join([v.id for v in visits])).translate(None, _NOT_CONTROL):
        return False
    if "\x00" in "".join([v.title for v in visits if v.title is not None]):
        return False
    urls = _utf8(" " + " ".join([v.url for v in visits]) + " ")
    if urls.count(b" ") != n + 1 or urls.translate(None, _NOT_CONTROL):
        return False
    low = urls.lower()  # bytes.lower() touches ASCII letters only
    if low.count(b" http://") + low.count(b" https://") != n:
        return False
    return b" http:// " not in low and b" https:// " not in low  # a scheme with nothing after it


def url_ok(url: str) -> bool:
    return _URL.match(url) is not None


def id_ok(record_id: str) -> bool:
    return _ID.match(record_id) is not None


def title_ok(title: str) -> bool:
    return "\x00" not in title


def explain_patterns(visit: PageVisit) -> str:
    """Which pattern one record breaks, in wire field names ("" if none)."""
    problems = [f"id {ID_MESSAGE}"] if not id_ok(visit.id) else []
    if not url_ok(visit.url):
        problems.append(f"url {URL_MESSAGE}")
    if visit.title is not None and not title_ok(visit.title):
        problems.append(f"title {TITLE_MESSAGE}")
    return "; ".join(problems)


class SyncRequest(msgspec.Struct, rename="camel"):
    """Body of POST /api/v1/data/sync."""

    page_visits: list[PageVisit]


class SyncResponse(msgspec.Struct):
    """200 answer of POST /api/v1/data/sync."""

    accepted: int
    stored: int
    duplicates: int


# Wire spellings the per-record validator reports as missing, every one, not just msgspec's first.
REQUIRED_FIELDS: Final = ("id", "url", "visitedAt")

# --- errors ----------------------------------------------------------------
E_INVALID_JSON: Final = "invalid_json"
E_UNAUTHORIZED: Final = "unauthorized"
E_FORBIDDEN: Final = "forbidden"
E_NOT_FOUND: Final = "not_found"
E_METHOD_NOT_ALLOWED: Final = "method_not_allowed"
E_BATCH_TOO_LARGE: Final = "batch_too_large"
E_UNSUPPORTED_MEDIA_TYPE: Final = "unsupported_media_type"
E_INVALID_RECORDS: Final = "invalid_records"
E_INVALID_REQUEST: Final = "invalid_request"
E_RATE_LIMITED: Final = "rate_limited"
E_INJECTED_FAULT: Final = "injected_fault"
E_UNAVAILABLE: Final = "unavailable"
E_TOO_MANY_SUBSCRIBERS: Final = "too_many_subscribers"
E_HEADERS_TOO_LARGE: Final = "headers_too_large"  # 431, from server/protocol.py
E_REQUEST_TIMEOUT: Final = "request_timeout"  # 408, headers that never finished arriving
MAX_REPORTED_ERRORS: Final = 50


# --- response styles: how a server words a refusal (limits.response, docs/limiter.md) ----------------
# syncbed: JSON with retry_after, Retry-After, RateLimit fields. rack-attack: stock Rack::Attack 6.8,
# byte for byte (429 text/plain "Retry later\n", 403 "Forbidden\n", no headers); -retry-after: with its
# integer Retry-After. draft-ratelimit: RateLimit fields, JSON without retry_after, no Retry-After.
# retry-after-only: JSON without retry_after, Retry-After, no RateLimit fields.
ResponseStyle = Literal["syncbed", "rack-attack", "rack-attack-retry-after", "draft-ratelimit", "retry-after-only"]
RESPONSE_STYLES: Final[tuple[ResponseStyle, ...]] = get_args(ResponseStyle)
RACK_THROTTLED_BODY: Final = b"Retry later\n"
RACK_BLOCKED_BODY: Final = b"Forbidden\n"


def is_temporary(status: int | None) -> bool:
    """Whether a batch send that ended so (None: no answer) may succeed if sent again after a pause."""
    # 429 is temporary too, but its wait is the server's Retry-After, not a backoff: callers test it first.
    return status is None or status >= 500 or status == 408


# --- runs ------------------------------------------------------------------
SEQUENTIAL: Final = "sequential"
CONSERVATIVE: Final = "conservative"
AGGRESSIVE: Final = "aggressive"
ADAPTIVE: Final = "adaptive"
SYNC_MODES: Final = (SEQUENTIAL, CONSERVATIVE, AGGRESSIVE, ADAPTIVE)


class RunStart(msgspec.Struct):
    """Body of POST /api/v1/runs: what a client announces about its run."""

    total_records: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
    total_batches: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    mode: Annotated[str, msgspec.Meta(max_length=32)] = "unknown"
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1
    run: Annotated[str, msgspec.Meta(pattern=RUN_ID_PATTERN)] | None = None


class RunFinish(msgspec.Struct):
    """Body of POST /api/v1/runs/{id}/finish."""

    status: Annotated[str, msgspec.Meta(pattern=r"^(complete|partial|failed)$")]
    ok_batches: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] = 0
    failed_batches: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] = 0
    seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0


def error_body(code: str, message: str, **details: object) -> dict[str, object]:
    """The one JSON error shape: {"error", "message", ...details}."""
    return {"error": code, "message": message, **details}
