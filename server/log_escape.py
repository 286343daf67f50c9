"""Log lines that a request cannot forge: control characters in anything logged are escaped."""

from __future__ import annotations

import logging
import re

# C0, DEL, C1, and the two Unicode line breaks some viewers honour: each could end a log line early
# (a forged line after it) or hide text from a terminal. Backslashes are left alone, so escaping
# twice changes nothing; the guarantee is one record per line, not a reversible encoding.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with every control character written as \\n, \\r, \\t, \\xNN or \\uNNNN."""
    return _CONTROL.sub(_escape_one, text)


def _continuation(block: str) -> str:
    # A traceback keeps its lines, but each is escaped and indented, so no line of it (an exception
    # message included) can start like a log record.
    return "\n".join("  " + escape(line) for line in block.split("\n"))


class EscapingFormatter(logging.Formatter):
    """A Formatter whose every record is one line; tracebacks follow as indented lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _continuation(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _continuation(super().formatStack(stack_info))
