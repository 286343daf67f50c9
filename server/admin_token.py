"""The admin token: made at first start, kept in the data directory with mode 0600, and recognised one way."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from server.auth import Auth
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


def is_admin(authorization: str | None, admin_token: str) -> bool:
    """Whether an Authorization header carries the admin token: compared in constant time, no query.

    The throttle (which lets the admin past every rule) and the admin routes both ask this, so no
    header can be the admin to one and a stranger to the other.
    """
    token = Auth.bearer(authorization)
    return token is not None and hmac.compare_digest(token.encode(), admin_token.encode())
