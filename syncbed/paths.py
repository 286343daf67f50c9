"""Where syncbed keeps its files on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """$XDG_DATA_HOME/syncbed, else ~/.local/share/syncbed."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "syncbed"


ADMIN_TOKEN_FILE = "admin-token"
SERVER_DB_FILE = "server.sqlite3"
CLIENT_DB_FILE = "outbox.sqlite3"


def read_admin_token(data_dir: Path | None = None) -> str | None:
    """The admin token the local server wrote, or None when there is none."""
    path = (data_dir or default_data_dir()) / ADMIN_TOKEN_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
