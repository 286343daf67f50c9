"""How the server logs: one handler on stderr, shared by the single process and every worker."""

from __future__ import annotations

import logging
import sys

from server.log_escape import EscapingFormatter


def configure_logging(level: str) -> None:
    """Log to stderr, one line per record: control characters from a request are escaped, never written."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
