"""The batch-at-once pattern check decides exactly what the per-value patterns decide."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from syncbed.contract import PageVisit, explain_patterns, id_ok, patterns_hold, url_ok

# Characters that matter to the patterns (controls, space, DEL, the separators) mixed with ordinary ones.
_TRICKY = st.sampled_from(["\x00", "\x01", "\n", "\t", " ", "\x1f", "\x7f", "\x80", "é", "/", ":", "h", "\u2028"])
_TEXT = st.lists(st.one_of(_TRICKY, st.characters()), max_size=12).map("".join)
_SCHEME = st.sampled_from(["http://", "https://", "HTTPS://", "hTtP://", "ftp://", "http:/", "", "https:// "])
_URLS = st.builds(lambda scheme, rest: scheme + rest, _SCHEME, _TEXT)
_IDS = st.one_of(_TEXT.filter(bool), st.sampled_from(["a", "x y", "a\n", "\x00", "id-1"]))


def visit(record_id: str, url: str) -> PageVisit:
    return PageVisit(id=record_id, url=url, visited_at=0)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(_IDS, _URLS), max_size=6))
def test_batch_check_equals_per_value_patterns(pairs: list[tuple[str, str]]) -> None:
    visits = [visit(i, u) for i, u in pairs]
    expected = all(id_ok(i) and url_ok(u) for i, u in pairs)
    assert patterns_hold(visits) == expected


def test_known_cases() -> None:
    good = visit("id-1", "https://example.org/a?b=c")
    assert patterns_hold([good, visit("id 2", "HTTP://x")])
    assert not patterns_hold([good, visit("id-2", "https://example.org/a b")])
    assert not patterns_hold([good, visit("id-2", "https://")])  # no rest
    assert not patterns_hold([good, visit("id-2", "https://x\n")])  # a trailing newline is whitespace too
    assert not patterns_hold([visit("id\x00", "https://x"), good])
    assert not patterns_hold([visit("id\n", "https://x")])
    assert patterns_hold([])
    assert explain_patterns(visit("a\x01", "ftp://x")) == (
        "id must not contain control characters; "
        "url must be an http:// or https:// URL without spaces or control characters"
    )
    assert explain_patterns(good) == ""
