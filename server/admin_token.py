"""The admin token: made at first start, kept in the data directory with mode 0600."""

from __future__ import annotations

import secrets
from pathlib import Path

from syncbed.paths import ADMIN_TOKEN_FILE, private_file, tighten


def ensure_admin_token(data_dir: Path, given: str | None = None) -> str:
    """The configured token, else the one on disk, else a new one written with mode 0600."""
    if given:
        return given
    path = data_dir / ADMIN_TOKEN_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        tighten(path)
        return existing
    token = "sbadmin_" + secrets.token_urlsafe(32)
    private_file(path).write_text(token + "\n")  # written into the 0600 file: the mode stays
    return token
