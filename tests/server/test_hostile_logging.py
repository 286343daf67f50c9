"""Hostile requests against the log: a request cannot forge a log line or put control bytes into the log."""

from __future__ import annotations

import logging
import re
import sys

import pytest

from server.log_escape import EscapingFormatter, escape
from tests.conftest import LiveServer, ServerFactory, wait_until
from tests.server.raw import exchange

FORGED = "2026-12-02 07:00:00,000 WARNING syncbed.admin: FORGED"
# A log record starts with the formatter's timestamp; a forged one starts with the attacker's.
RECORD_START = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def raw_request(srv: LiveServer, head: bytes) -> bytes:
    """Send bytes as they are (no client library normalises them) and read the answer until close."""
    return exchange(srv, head, timeout=5)


def hostile_requests(srv: LiveServer) -> list[bytes]:
    forged_path = "/healthz%0a" + FORGED.replace(" ", "%20")
    paths = [
        forged_path,
        forged_path.replace("%0a", "%0d"),
        "/healthz%00nul",
        "/healthz%1b[31mred%7f%C2%85nel%E2%80%A8ls%E2%80%A9ps%09tab",
    ]
    answers = [raw_request(srv, f"GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()) for p in paths]
    # Raw control bytes in the request line or a header never get past the HTTP parser: 400, logged without them.
    answers.append(raw_request(srv, b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    answers.append(
        raw_request(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x00b\r\nX-Sync-Run: r\x00\r\n\r\n")
    )
    return answers


def assert_clean_log(srv: LiveServer) -> None:
    raw = srv.log_path.read_bytes()
    assert b"\x00" not in raw
    assert not re.search(rb"[\x01-\x09\x0b-\x1f\x7f]", raw), "a control byte reached the log"
    text = raw.decode()
    assert not re.search("[\x80-\x9f\u2028\u2029]", text), "a C1 control or Unicode line break reached the log"
    for line in raw.split(b"\n"):
        assert not line.startswith(FORGED[:23].encode()), f"forged log line: {line!r}"
        if line:
            assert RECORD_START.match(line) or line.startswith(b"  "), f"a line that is not a record: {line!r}"
    # The escaped form is there, readable, on the access log's one line.
    assert "GET /healthz\\n" + FORGED in text
    assert "GET /healthz\\r" + FORGED in text
    assert "GET /healthz\\x00nul 404" in text
    assert "\\x1b[31mred\\x7f\\x85nel\\u2028ls\\u2029ps\\ttab 404" in text


@pytest.mark.parametrize("workers", [1, 2])
def test_a_request_cannot_forge_a_log_line_or_write_control_bytes(server_factory: ServerFactory, workers: int) -> None:
    srv = server_factory(args=["--workers", str(workers)] if workers > 1 else [])
    answers = hostile_requests(srv)
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 400 Bad Request",
    ]
    wait_until(lambda: "tab 404" in srv.log(), 10, "the access log line of the last path")
    assert_clean_log(srv)


def test_escape_writes_each_control_character_visibly() -> None:
    text = "a\nb\rc\td\x00e\x1b\x7f\x85\x9f\u2028\u2029"
    assert escape(text) == "a\\nb\\rc\\td\\x00e\\x1b\\x7f\\x85\\x9f\\u2028\\u2029"
    assert escape("plain ünïcödé / \\n stays") == "plain ünïcödé / \\n stays"
    assert escape(escape("x\ny")) == escape("x\ny")


def test_a_traceback_cannot_carry_a_forged_record() -> None:
    formatter = EscapingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        raise ValueError("bad value\n" + FORGED + "\x00")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed on %s", ("/x\n" + FORGED,), sys.exc_info())
    lines = formatter.format(record).split("\n")
    assert RECORD_START.match(lines[0].encode()) and lines[0].endswith("failed on /x\\n" + FORGED)
    assert all(line.startswith("  ") for line in lines[1:])
    assert "\x00" not in "\n".join(lines)
