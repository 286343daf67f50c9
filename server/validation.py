"""Sync request bodies -> PageVisits, or every problem with them (first 50), never an exception."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from syncbed import contract
from syncbed.contract import PageVisit, SyncRequest

_decoder = msgspec.json.Decoder(SyncRequest)
_any_decoder = msgspec.json.Decoder()


@dataclass(slots=True)
class Problem:
    """Why a body was refused: an error code, a sentence and the record errors, if any."""

    code: str
    message: str
    errors: list[dict[str, object]] = field(default_factory=list)
    total_errors: int = 0


def parse_body(body: bytes, max_records: int) -> list[PageVisit] | Problem:
    """Fast typed decode; on failure, a slow generic pass that reports every record's errors."""
    try:
        visits = _decoder.decode(body).page_visits
    except msgspec.ValidationError as exc:
        return _explain(body, max_records, str(exc))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        return _invalid_json(body, exc)
    if len(visits) > max_records:
        return _too_many(len(visits), max_records)
    if not contract.patterns_hold(visits):
        return _explain(body, max_records, "a url or id does not match its pattern")
    dupes = _duplicate_ids([v.id for v in visits])
    if dupes:
        return _record_problem(dupes)
    return visits


def _invalid_json(body: bytes, exc: BaseException) -> Problem:
    if not body.strip():
        return Problem(contract.E_INVALID_JSON, 'The request body is empty; send {"pageVisits": [...]}.')
    if isinstance(exc, UnicodeDecodeError):
        return Problem(contract.E_INVALID_JSON, "The request body is not valid UTF-8.")
    if isinstance(exc, RecursionError):
        return Problem(contract.E_INVALID_JSON, "The request body is nested too deeply.")
    return Problem(contract.E_INVALID_JSON, f"The request body is not valid JSON: {exc}.")


def _too_many(n: int, max_records: int) -> Problem:
    return Problem(
        contract.E_BATCH_TOO_LARGE,
        f"A batch may hold at most {max_records} records; this one has {n}. Split it and retry.",
    )


def _explain(body: bytes, max_records: int, first: str) -> Problem:
    try:
        doc = _any_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError) as exc:
        return _invalid_json(body, exc)
    if not isinstance(doc, dict):
        return Problem(
            contract.E_INVALID_JSON,
            f'The body must be a JSON object {{"pageVisits": [...]}}, not {_kind(doc)}.',
        )
    visits = doc.get("pageVisits")
    if not isinstance(visits, list):
        what = "is missing" if "pageVisits" not in doc else f"must be a list, not {_kind(visits)}"
        err: dict[str, object] = {"index": None, "field": "pageVisits", "message": f"pageVisits {what}"}
        return Problem(contract.E_INVALID_RECORDS, f"The body's pageVisits {what}.", [err], 1)
    if len(visits) > max_records:
        return _too_many(len(visits), max_records)
    errors: list[dict[str, object]] = []
    for i, rec in enumerate(visits):
        errors.extend(record_errors(i, rec))
    if not errors:
        # Our checks and msgspec's disagree: report msgspec's own words rather than accept.
        errors.append({"index": None, "field": None, "message": first})
    return _record_problem(errors)


def _record_problem(errors: list[dict[str, object]]) -> Problem:
    bad = len({e["index"] for e in errors})
    n = len(errors)
    message = (
        f"{bad} record(s) are invalid ({n} error(s)); nothing was stored. "
        f"First: record {errors[0]['index']}, {errors[0]['field']}: {errors[0]['message']}."
    )
    return Problem(contract.E_INVALID_RECORDS, message, errors[: contract.MAX_REPORTED_ERRORS], n)


def _duplicate_ids(ids: list[str]) -> list[dict[str, object]]:
    if len(set(ids)) == len(ids):
        return []
    first: dict[str, int] = {}
    errors: list[dict[str, object]] = []
    for i, rid in enumerate(ids):
        if rid in first:
            errors.append({"index": i, "field": "id", "message": f"duplicate id, first at index {first[rid]}"})
        else:
            first[rid] = i
    return errors


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _int_error(value: object, lo: int, hi: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, not {_kind(value)}"
    if not lo <= value <= hi:
        return f"must be between {lo} and {hi}"
    return None


def _text_error(value: object, lo: int, hi: int, ok: Callable[[str], bool] | None, message: str) -> str | None:
    """Why a string field is wrong, or None (a missing one is the required check's business)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be a string, not {_kind(value)}"
    if not lo <= len(value) <= hi:
        span = f"{lo} to {hi}" if lo else f"at most {hi}"
        return f"must be {span} characters, has {len(value)}"
    if ok is not None and not ok(value):
        return message
    return None


# Wire name, length range, pattern check and its message; ids and urls are reported before the integers,
# titles after, as the fields stand in the record.
_TEXT: Final[tuple[tuple[str, int, int, Callable[[str], bool] | None, str], ...]] = (
    ("id", 1, contract.MAX_ID_CHARS, contract.id_ok, contract.ID_MESSAGE),
    ("url", 0, contract.MAX_URL_CHARS, contract.url_ok, contract.URL_MESSAGE),
    ("title", 0, contract.MAX_TITLE_CHARS, contract.title_ok, contract.TITLE_MESSAGE),
)
_INTS: Final = (
    ("visitedAt", 0, contract.MAX_VISITED_AT),
    ("durationMs", 0, contract.INT64_MAX),
    ("tabId", contract.INT64_MIN, contract.INT64_MAX),
)


def record_errors(index: int, rec: object) -> list[dict[str, object]]:
    """Every problem with one record, in wire field names."""
    if not isinstance(rec, dict):
        return [{"index": index, "field": None, "message": f"a record must be an object, not {_kind(rec)}"}]
    out: list[dict[str, object]] = []

    def err(name: str, message: str) -> None:
        out.append({"index": index, "field": name, "message": message})

    for name in contract.REQUIRED_FIELDS:
        if rec.get(name) is None:
            err(name, "is required")
    for name, lo, hi, ok, message in _TEXT[:2]:
        if (problem := _text_error(rec.get(name), lo, hi, ok, message)) is not None:
            err(name, problem)
    for name, low, high in _INTS:
        value = rec.get(name)
        if value is not None and (problem := _int_error(value, low, high)):
            err(name, problem)
    for name, lo, hi, ok, message in _TEXT[2:]:
        if (problem := _text_error(rec.get(name), lo, hi, ok, message)) is not None:
            err(name, problem)
    return out
