"""The admin token: made at first start, kept in the data directory with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from syncbed.paths import ADMIN_TOKEN_FILE


def ensure_admin_token(data_dir: Path, given: str | None = None) -> str:
    """The configured token, else the one on disk, else a new one written with mode 0600."""
    if given:
        return given
    path = data_dir / ADMIN_TOKEN_FILE
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    token = "sbadmin_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return token
