"""server.database: which store holds records, tokens and run history; the one place that picks it."""

from __future__ import annotations

from pathlib import Path

from server.config import SQLITE
from server.history import History
from server.storage import RecordStore, Storage
from syncbed.paths import SERVER_DB_FILE


def stores(database: str, data_dir: Path) -> tuple[RecordStore, History]:
    """The record store and the run history, unopened: the data directory's SQLite file, or PostgreSQL."""
    if database == SQLITE:
        return Storage(data_dir / SERVER_DB_FILE), History(data_dir / SERVER_DB_FILE)
    from server.history_pg import PgHistoryDb
    from server.pg import Pool
    from server.storage_pg import PgStorage

    pool = Pool(database)  # one per process: storage, history and auth share its connections
    return PgStorage(pool), History(db=PgHistoryDb(pool))


def token_database(database: str, data_dir: Path) -> Path | str:
    """Where the token commands find the tokens: the SQLite file's path, or the PostgreSQL URL."""
    return data_dir / SERVER_DB_FILE if database == SQLITE else database
