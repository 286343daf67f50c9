"""The server's SQLite schema, created by whoever opens the database first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncbed.paths import private_sqlite
from syncbed.sqlite import SERVER_BUSY_TIMEOUT_MS, apply_pragmas

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    lookup TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS user_tiers (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    tier TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    user_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    visited_at INTEGER NOT NULL,
    title TEXT,
    duration_ms INTEGER,
    tab_id INTEGER,
    batch_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    run TEXT,
    batch INTEGER,
    attempt INTEGER,
    records INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    received REAL NOT NULL,
    ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_run ON batches(run, batch, attempt);
CREATE TABLE IF NOT EXISTS unpublished (
    name TEXT PRIMARY KEY,
    batch_id INTEGER NOT NULL,
    at REAL NOT NULL
);
"""


def connect(path: Path, *, timeout: float = SERVER_BUSY_TIMEOUT_MS / 1000) -> sqlite3.Connection:
    """A connection in WAL mode with the schema in place, on a file only its owner can read."""
    private_sqlite(path)
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    apply_pragmas(conn, int(timeout * 1000))
    conn.executescript(SCHEMA)
    return conn
