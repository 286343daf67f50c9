"""The wire parsing rules every part shares."""

from __future__ import annotations

import pytest

from syncbed import wire


@pytest.mark.parametrize("raw", ["0", "7", "000123", "9" * 18])
def test_ascii_int_reads_ascii_digits(raw: str) -> None:
    assert wire.ascii_int(raw) == int(raw)


@pytest.mark.parametrize("raw", [None, "", "²", "³", "١٢", "12²", "-1", "+1", " 1", "1 ", "1.0", "0x10", "9" * 19])
def test_ascii_int_refuses_everything_else(raw: str | None) -> None:
    assert wire.ascii_int(raw) is None


@pytest.mark.parametrize("run", ["a", "run-1", "A.b_c:d-9", "x" * 64])
def test_run_ids_that_hold(run: str) -> None:
    assert wire.is_run_id(run)


@pytest.mark.parametrize("run", ["", "x" * 65, "<script>", "../../x", "a\n", "a b", "é", None, 5])
def test_run_ids_that_do_not(run: object) -> None:
    assert not wire.is_run_id(run)


def test_single_header_refuses_a_repeat() -> None:
    headers = [(b"authorization", b"Bearer a"), (b"host", b"x"), (b"authorization", b"x")]
    with pytest.raises(wire.RepeatedHeader, match="one Authorization header"):
        wire.single_header(headers, b"authorization")
    assert wire.single_header(headers, b"host") == "x"
    assert wire.single_header(headers, b"missing") is None


def test_list_header_joins_repeats() -> None:
    headers = [(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3")]
    assert wire.list_header(headers, b"x-forwarded-for") == "1.1.1.1,2.2.2.2, 3.3.3.3"
    assert wire.list_header(headers, b"forwarded") is None


def test_run_id_problem_names_the_rule_and_the_value() -> None:
    assert wire.run_id_problem("run-1.a:b_c") is None
    assert wire.run_id_problem("a b") == f"expected {wire.RUN_ID_RULE}, got 'a b'"
    assert wire.run_id_problem("x" * 100) == f"expected {wire.RUN_ID_RULE}, got {'x' * 72!r}"
