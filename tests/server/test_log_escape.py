"""server/log_escape.py: one record per line, whatever a request puts in what is logged."""

from __future__ import annotations

import logging
import sys

from server.log_escape import EscapingFormatter, escape


def test_control_characters_are_written_out() -> None:
    assert escape("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape("\x00\x1b[31m\x7f\x85") == "\\x00\\x1b[31m\\x7f\\x85"
    assert escape("line\u2028sep\u2029") == "line\\u2028sep\\u2029"
    assert escape("plain ascii, ünïcode and a \\ backslash") == "plain ascii, ünïcode and a \\ backslash"


def test_escaping_twice_changes_nothing() -> None:
    once = escape("x\ny\x01")
    assert escape(once) == once


def record(message: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("bad\nINFO forged line")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("t", logging.INFO, __file__, 1, message, None, info)


def test_a_record_is_one_line_and_a_traceback_follows_indented() -> None:
    fmt = EscapingFormatter("%(levelname)s %(message)s")
    assert fmt.format(record("GET /x\nINFO forged")) == "INFO GET /x\\nINFO forged"
    lines = fmt.format(record("boom", exc=True)).split("\n")
    assert lines[0] == "INFO boom"
    assert all(line.startswith("  ") for line in lines[1:])
    assert any("bad\\nINFO forged line" in line for line in lines[1:])
