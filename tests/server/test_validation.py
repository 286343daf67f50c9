"""Sync bodies as bytes -> PageVisits or a Problem that names the record index and the wire field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.validation import Problem, _explain, parse_body, record_errors
from syncbed import contract
from syncbed.contract import PageVisit

MAX = 10


def rec(i: int = 0, **fields: Any) -> dict[str, Any]:
    """A valid wire record, with `fields` replacing or adding keys (None drops a key)."""
    out: dict[str, Any] = {"id": f"v-{i}", "url": f"https://example.com/{i}", "visitedAt": 1_700_000_000_000 + i}
    for name, value in fields.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def body(*records: object) -> bytes:
    return json.dumps({"pageVisits": list(records)}).encode()


def problem(raw: bytes, max_records: int = MAX) -> Problem:
    result = parse_body(raw, max_records)
    assert isinstance(result, Problem), result
    return result


def only_error(raw: bytes) -> dict[str, object]:
    p = problem(raw)
    assert p.code == contract.E_INVALID_RECORDS
    assert p.total_errors == len(p.errors) == 1, p.errors
    return p.errors[0]


def test_a_valid_batch_decodes_every_field() -> None:
    raw = body(rec(0, title="T", durationMs=1500, tabId=-7, extra="ignored"), rec(1))
    visits = parse_body(raw, MAX)
    assert visits == [
        PageVisit(
            id="v-0", url="https://example.com/0", visited_at=1_700_000_000_000, title="T", duration_ms=1500, tab_id=-7
        ),
        PageVisit(id="v-1", url="https://example.com/1", visited_at=1_700_000_000_001),
    ]


def test_an_empty_list_and_a_full_batch_are_accepted() -> None:
    assert parse_body(body(), MAX) == []
    assert len(parse_body(body(*(rec(i) for i in range(MAX))), MAX)) == MAX  # type: ignore[arg-type]


def test_optional_fields_may_be_null_and_the_limits_themselves_pass() -> None:
    edge = rec(
        id="x" * contract.MAX_ID_CHARS,
        url="HTTP://" + "a" * (contract.MAX_URL_CHARS - 7),
        visitedAt=contract.MAX_VISITED_AT,
        title="t" * contract.MAX_TITLE_CHARS,
        durationMs=contract.INT64_MAX,
        tabId=contract.INT64_MIN,
    )
    nulls = {**rec(1), "title": None, "durationMs": None, "tabId": None}
    visits = parse_body(body(edge, nulls), MAX)
    assert isinstance(visits, list) and len(visits) == 2
    assert visits[1].title is None and visits[1].tab_id is None


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b" \r\n\t", "empty"),
        (b"{", "not valid JSON"),
        (b'{"pageVisits": [}', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (b"[]", "not a list"),
        (b'"pageVisits"', "not a string"),
        (b"null", "not null"),
        (b"42", "not a number"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_invalid_json(raw: bytes, words: str) -> None:
    p = problem(raw)
    assert p.code == contract.E_INVALID_JSON
    assert words in p.message, p.message
    assert p.errors == [] and p.total_errors == 0


def test_a_missing_or_wrong_page_visits_names_the_field_without_an_index() -> None:
    missing = problem(b'{"visits": []}')
    assert missing.code == contract.E_INVALID_RECORDS
    assert missing.errors == [{"index": None, "field": "pageVisits", "message": "pageVisits is missing"}]
    assert missing.total_errors == 1
    wrong = problem(b'{"pageVisits": {"id": "a"}}')
    assert wrong.errors == [
        {"index": None, "field": "pageVisits", "message": "pageVisits must be a list, not an object"}
    ]
    assert wrong.message == "The body's pageVisits must be a list, not an object."


def test_too_many_records_is_batch_too_large_whether_or_not_they_are_valid() -> None:
    valid = problem(body(*(rec(i) for i in range(MAX + 1))))
    assert valid.code == contract.E_BATCH_TOO_LARGE
    assert f"at most {MAX} records; this one has {MAX + 1}" in valid.message
    invalid = problem(body(*({"id": i} for i in range(MAX + 1))))  # the slow path counts first as well
    assert invalid.code == contract.E_BATCH_TOO_LARGE
    assert invalid.errors == []


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"id": None}, "id", "is required"),
        ({"url": None}, "url", "is required"),
        ({"visitedAt": None}, "visitedAt", "is required"),
        ({"id": 7}, "id", "must be a string, not a number"),
        ({"id": ""}, "id", f"must be 1 to {contract.MAX_ID_CHARS} characters, has 0"),
        ({"id": "é" * (contract.MAX_ID_CHARS + 1)}, "id", f"must be 1 to {contract.MAX_ID_CHARS} characters, has 129"),
        ({"id": "a\nb"}, "id", contract.ID_MESSAGE),
        ({"url": ["https://x"]}, "url", "must be a string, not a list"),
        ({"url": "ftp://example.com"}, "url", contract.URL_MESSAGE),
        ({"url": "https://"}, "url", contract.URL_MESSAGE),
        ({"url": "https://a b"}, "url", contract.URL_MESSAGE),
        ({"url": "https://a\n"}, "url", contract.URL_MESSAGE),
        ({"url": "https://" + "a" * contract.MAX_URL_CHARS}, "url", f"at most {contract.MAX_URL_CHARS} characters"),
        ({"visitedAt": True}, "visitedAt", "must be an integer, not a boolean"),
        ({"visitedAt": 1.5}, "visitedAt", "must be an integer, not a number"),
        ({"visitedAt": "1700000000000"}, "visitedAt", "must be an integer, not a string"),
        ({"visitedAt": -1}, "visitedAt", f"must be between 0 and {contract.MAX_VISITED_AT}"),
        ({"visitedAt": contract.MAX_VISITED_AT + 1}, "visitedAt", f"must be between 0 and {contract.MAX_VISITED_AT}"),
        ({"durationMs": -1}, "durationMs", f"must be between 0 and {contract.INT64_MAX}"),
        ({"durationMs": contract.INT64_MAX + 1}, "durationMs", "must be between 0"),
        ({"tabId": contract.INT64_MIN - 1}, "tabId", f"must be between {contract.INT64_MIN} and"),
        ({"tabId": False}, "tabId", "must be an integer, not a boolean"),
        ({"title": 3}, "title", "must be a string, not a number"),
        ({"title": "t" * (contract.MAX_TITLE_CHARS + 1)}, "title", f"at most {contract.MAX_TITLE_CHARS} characters"),
    ],
)
def test_one_bad_field_is_reported_at_its_index_under_its_wire_name(
    fields: dict[str, Any], field: str, message: str
) -> None:
    raw = body(rec(0), rec(1), rec(2, **fields))
    err = only_error(raw)
    assert err["index"] == 2 and err["field"] == field
    assert message in str(err["message"]), err
    assert record_errors(2, rec(2, **fields)) == [err]  # the slow pass is the reporter, called directly too


def test_a_record_that_is_not_an_object_has_no_field() -> None:
    err = only_error(body(rec(0), ["v-1"]))
    assert err == {"index": 1, "field": None, "message": "a record must be an object, not a list"}


def test_every_problem_of_every_record_is_listed_and_the_message_quotes_the_first() -> None:
    raw = body(rec(0), {"id": 5, "visitedAt": True}, rec(2), rec(3, url="mailto:x"))
    p = problem(raw)
    assert p.code == contract.E_INVALID_RECORDS
    assert [(e["index"], e["field"]) for e in p.errors] == [(1, "url"), (1, "id"), (1, "visitedAt"), (3, "url")]
    assert p.total_errors == 4
    assert p.message == ("2 record(s) are invalid (4 error(s)); nothing was stored. First: record 1, url: is required.")


def test_the_error_list_is_capped_but_the_count_is_not() -> None:
    n = contract.MAX_REPORTED_ERRORS + 7
    p = problem(body(*(rec(i, visitedAt=-1) for i in range(n))), max_records=n)
    assert len(p.errors) == contract.MAX_REPORTED_ERRORS
    assert p.total_errors == n
    assert [e["index"] for e in p.errors] == list(range(contract.MAX_REPORTED_ERRORS))
    assert p.message.startswith(f"{n} record(s) are invalid ({n} error(s))")


def test_duplicate_ids_in_one_batch_point_at_the_first() -> None:
    raw = body(rec(0), rec(1, id="v-0"), rec(2), rec(3, id="v-2"), rec(4, id="v-0"))
    p = problem(raw)
    assert p.code == contract.E_INVALID_RECORDS
    assert p.errors == [
        {"index": 1, "field": "id", "message": "duplicate id, first at index 0"},
        {"index": 3, "field": "id", "message": "duplicate id, first at index 2"},
        {"index": 4, "field": "id", "message": "duplicate id, first at index 0"},
    ]
    assert p.message.startswith("3 record(s) are invalid (3 error(s))")


def test_when_the_slow_pass_finds_nothing_the_decoders_own_words_are_reported() -> None:
    p = _explain(body(rec(0)), MAX, "Expected `int`, got `str` - at `$.pageVisits[0]`")
    assert p.code == contract.E_INVALID_RECORDS
    assert p.errors == [{"index": None, "field": None, "message": "Expected `int`, got `str` - at `$.pageVisits[0]`"}]
    assert p.total_errors == 1
