"""Data files are the owner's alone: a real server's and a real client's files are 0600 in a 0700 directory."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx

from monitor.export import export_run
from monitor.model import Model
from syncbed.paths import ADMIN_TOKEN_FILE, CLIENT_DB_FILE, SERVER_DB_FILE
from tests.cli_run import run_cli
from tests.conftest import ServerFactory
from tests.monitor.helpers import DEMO, ManualClock, load
from tests.server.helpers import auth, batch


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(directory: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in directory.iterdir()}


def client(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli("client", *args, env=env, timeout=120)


def test_a_server_in_a_fresh_directory_creates_it_0700_and_its_files_0600(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    data = tmp_path / "fresh" / "data"  # neither exists yet
    srv = server_factory(args=["--data-dir", str(data)])  # the later --data-dir wins; the log stays beside
    token = (data / ADMIN_TOKEN_FILE).read_text().strip()
    assert httpx.get(srv.url + "/api/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert mode(data) == 0o700
    files = modes(data)
    assert {SERVER_DB_FILE, SERVER_DB_FILE + "-wal", SERVER_DB_FILE + "-shm", ADMIN_TOKEN_FILE} <= set(files)
    assert files == dict.fromkeys(files, 0o600), files


def test_files_left_readable_by_others_are_tightened_at_start(server_factory: ServerFactory) -> None:
    srv = server_factory()
    user = srv.token("alice")
    assert httpx.post(srv.url + "/api/v1/data/sync", content=batch(5), headers=auth(user)).status_code == 200
    srv.stop()
    names = [SERVER_DB_FILE, SERVER_DB_FILE + "-wal", SERVER_DB_FILE + "-shm", ADMIN_TOKEN_FILE]
    for name in names:
        path = srv.data_dir / name
        path.touch()  # SQLite removes -wal and -shm at a clean close: stand in for ones a crash left
        os.chmod(path, 0o644)
    srv.start()
    assert srv.count(user) == 5
    files = modes(srv.data_dir)
    assert {n: files[n] for n in names} == dict.fromkeys(names, 0o600)
    assert f"{srv.data_dir / SERVER_DB_FILE} was readable by others (mode 644); made it 600" in srv.log()


def test_the_client_outbox_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}  # the default place, not created yet
    done = client("generate", "10", env=env)
    assert done.returncode == 0, done.stderr
    home = tmp_path / "xdg" / "syncbed"
    assert mode(home) == 0o700
    files = modes(home)
    assert CLIENT_DB_FILE in files and files == dict.fromkeys(files, 0o600), files


def test_an_outbox_readable_by_others_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "o.sqlite3"
    assert client("generate", "10", "--db", str(db), env={}).returncode == 0
    os.chmod(db, 0o644)
    done = client("generate", "10", "--db", str(db), env={})
    assert done.returncode == 0, done.stderr
    assert mode(db) == 0o600
    assert "was readable by others (mode 644); made it 600" in done.stderr


def test_a_monitor_export_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    events = load(DEMO)
    model = Model(clock=ManualClock(events[-1].ts))
    model.ingest_many(events)
    directory = tmp_path / "exports"  # not there yet
    written = export_run(model.runs["agg-3"], directory)
    assert mode(directory) == 0o700
    assert [mode(p) for p in written] == [0o600, 0o600]
    os.chmod(written[0], 0o644)
    export_run(model.runs["agg-3"], directory)  # exporting again rewrites the files, private again
    assert modes(directory) == dict.fromkeys(modes(directory), 0o600)
