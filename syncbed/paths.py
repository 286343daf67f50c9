"""Where syncbed keeps its files on this machine."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("syncbed.files")

# Databases hold a person's browsing history; the admin token opens everything. Only the owner reads them.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# What SQLite keeps beside a database: its journal in either mode, and WAL's write-ahead log and index.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def default_data_dir() -> Path:
    """$XDG_DATA_HOME/syncbed, else ~/.local/share/syncbed."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "syncbed"


ADMIN_TOKEN_FILE = "admin-token"
SERVER_DB_FILE = "server.sqlite3"
CLIENT_DB_FILE = "outbox.sqlite3"


def admin_token_path(data_dir: Path | None = None) -> Path:
    """Where the local server writes its admin token: in `data_dir`, else the default data directory."""
    return (data_dir or default_data_dir()) / ADMIN_TOKEN_FILE


def read_admin_token(data_dir: Path | None = None) -> str | None:
    """The admin token the local server wrote, or None when there is none."""
    path = admin_token_path(data_dir)
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def private_dir(path: Path) -> Path:
    """`path` as a directory: created 0700 when missing; an existing one is left as it is (it may be shared)."""
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True)
    except FileExistsError:
        return path
    os.chmod(path, PRIVATE_DIR_MODE)  # exact, whatever the umask
    return path


def tighten(path: Path) -> None:
    """Take group and other access away from an existing file, saying so; a missing file is fine."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077 == 0:
        return
    try:
        os.chmod(path, mode & 0o700)
    except OSError as exc:
        log.warning("%s is readable by others (mode %o) and could not be made private: %s", path, mode, exc)
        return
    log.warning("%s was readable by others (mode %o); made it %o", path, mode, mode & 0o700)


def private_file(path: Path) -> Path:
    """`path` as a file only its owner can read: created empty with mode 0600, or an existing one tightened."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        tighten(path)
        return path
    os.close(fd)
    os.chmod(path, PRIVATE_FILE_MODE)  # exact, whatever the umask
    return path


def private_sqlite(path: Path) -> Path:
    """A private SQLite database file, before it is opened.

    SQLite creates the -wal, -shm and -journal files with the database file's own mode, so a 0600
    database gets 0600 companions; companions left by an older start are tightened here.
    """
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        tighten(path.with_name(path.name + suffix))
    return path
