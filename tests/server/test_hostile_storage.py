"""A damaged database against a real server: start-up refuses it in one sentence, a running server answers 503."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from syncbed import contract
from syncbed.paths import SERVER_DB_FILE
from tests.cli_run import run_cli
from tests.conftest import LiveServer, ServerFactory, free_port
from tests.server.helpers import auth, batch

PAGE = 4096


def garble(path: Path, start: int, end: int) -> None:
    """Overwrite bytes start..end of the file with random ones, in place, as a bad disk would."""
    with path.open("r+b") as fh:
        fh.seek(start)
        fh.write(os.urandom(end - start))


def root_pages(db: Path, tables: tuple[str, ...]) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        marks = ",".join("?" * len(tables))
        rows = conn.execute(f"SELECT rootpage FROM sqlite_schema WHERE name IN ({marks})", tables).fetchall()
        return [int(r[0]) for r in rows]
    finally:
        conn.close()


def start(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m server` on a port of its own, expected to refuse to start (so it returns)."""
    return run_cli("server", "--data-dir", str(data_dir), "--port", str(free_port()), *args, timeout=60)


def synced_server(server_factory: ServerFactory, batches: int = 5) -> tuple[LiveServer, str]:
    srv = server_factory(args=["--no-limits"])
    user = srv.token("alice")
    for i in range(batches):
        headers = {**auth(user), contract.HEADER_RUN: "run-1", contract.HEADER_BATCH: str(i)}
        r = httpx.post(srv.url + contract.SYNC_PATH, content=batch(1000, start=i * 1000), headers=headers)
        assert r.status_code == 200, r.text
    return srv, user


def assert_refused(done: subprocess.CompletedProcess[str], db: Path, detail: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the database {db} is damaged ({detail}"), last
    what_to_do = "restore it from a backup, or move it and its -wal and -shm files aside to start with an empty one"
    assert last.endswith("); " + what_to_do), last


def test_a_database_damaged_while_stopped_is_refused_at_start(server_factory: ServerFactory) -> None:
    srv, _ = synced_server(server_factory)
    srv.stop()
    db = srv.data_dir / SERVER_DB_FILE
    garble(db, PAGE, 6 * PAGE)  # pages 2-6: the schema's first tables and indexes
    assert_refused(start(srv.data_dir), db, "quick_check: ")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_that_is_not_a_database_is_refused_at_start(tmp_path: Path, workers: int) -> None:
    db = tmp_path / SERVER_DB_FILE
    db.write_bytes(os.urandom(100_000))
    assert_refused(start(tmp_path, "--workers", str(workers)), db, "file is not a database")


def test_damage_found_while_running_is_a_503_everywhere_and_never_a_traceback(server_factory: ServerFactory) -> None:
    srv, user = synced_server(server_factory)
    listed = httpx.get(srv.url + contract.RUNS_PATH, headers=srv.admin_headers())  # the history is written
    assert [r["run"] for r in listed.json()["runs"]] == ["run-1"]
    db = srv.data_dir / SERVER_DB_FILE
    # Move every page into the main file (and make the server's connections drop their page caches:
    # a checkpoint by another connection changes the WAL index they check), then damage the tables.
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for page in root_pages(db, ("records", "runs", "events")):
        garble(db, (page - 1) * PAGE, page * PAGE)

    sync = httpx.post(srv.url + contract.SYNC_PATH, content=batch(10, start=50_000), headers=auth(user))
    assert sync.status_code == 503 and sync.json()["error"] == contract.E_UNAVAILABLE, sync.text
    health = httpx.get(srv.url + "/healthz")
    assert health.status_code == 503 and health.json()["error"] == contract.E_UNAVAILABLE
    assert "damaged" in health.json()["message"]
    count = httpx.get(srv.url + contract.COUNT_PATH, headers=auth(user))
    assert count.status_code == 503 and count.json()["error"] == contract.E_UNAVAILABLE
    for path in (contract.RUNS_PATH, contract.RUNS_PATH + "/run-1", contract.RUNS_PATH + "/run-1/events"):
        r = httpx.get(srv.url + path, headers=srv.admin_headers())
        assert r.status_code == 503 and r.json()["error"] == contract.E_UNAVAILABLE, (path, r.status_code, r.text)
    again = httpx.post(srv.url + contract.SYNC_PATH, content=batch(10, start=60_000), headers=auth(user))
    assert again.status_code == 503  # no write goes into a damaged file

    log = srv.log()
    assert "Traceback" not in log and " 500 " not in log
    damaged = [line for line in log.splitlines() if "ERROR" in line and "is damaged" in line]
    assert len(damaged) == 1 and str(db) in damaged[0] and "stop the server and restore it" in damaged[0]
