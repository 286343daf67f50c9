"""Where syncbed keeps its files, and that only their owner can read them."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncbed import paths


@contextlib.contextmanager
def no_write_umask() -> Iterator[None]:
    """No write bit for anyone: only syncbed's chmod afterwards can make a path 0700 or 0600."""
    old = os.umask(0o222)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_dir_follows_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.default_data_dir() == tmp_path / "xdg" / "syncbed"
    assert paths.admin_token_path() == tmp_path / "xdg" / "syncbed" / paths.ADMIN_TOKEN_FILE
    monkeypatch.setenv("XDG_DATA_HOME", "")  # set but empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.default_data_dir() == tmp_path / "home" / ".local" / "share" / "syncbed"


def test_the_admin_token_is_read_trimmed_or_is_none(tmp_path: Path) -> None:
    assert paths.admin_token_path(tmp_path) == tmp_path / paths.ADMIN_TOKEN_FILE
    assert paths.read_admin_token(tmp_path) is None  # missing
    (tmp_path / paths.ADMIN_TOKEN_FILE).write_text("  \n")
    assert paths.read_admin_token(tmp_path) is None  # empty
    (tmp_path / paths.ADMIN_TOKEN_FILE).write_text("s3cret\n")
    assert paths.read_admin_token(tmp_path) == "s3cret"


def test_a_new_directory_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    with no_write_umask():
        made = paths.private_dir(tmp_path / "a" / "b")
    assert made == tmp_path / "a" / "b" and mode(made) == 0o700


def test_an_existing_directory_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    paths.private_dir(shared)
    assert mode(shared) == 0o755


def test_a_new_file_is_created_empty_0600(tmp_path: Path) -> None:
    with no_write_umask():
        f = paths.private_file(tmp_path / "dir" / "f")
    assert f.read_bytes() == b"" and mode(f) == 0o600 and mode(f.parent) == 0o700


def test_an_existing_file_keeps_its_content_and_loses_group_and_other_access(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "f"
    f.write_text("kept")
    os.chmod(f, 0o644)
    with caplog.at_level(logging.WARNING, logger="syncbed.files"):
        paths.private_file(f)
    assert f.read_text() == "kept" and mode(f) == 0o600
    assert "was readable by others (mode 644); made it 600" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="syncbed.files"):
        paths.tighten(f)  # already private: nothing to say
        paths.tighten(tmp_path / "missing")
    assert caplog.text == ""


def test_tighten_keeps_the_owners_own_bits(tmp_path: Path) -> None:
    f = tmp_path / "script"
    f.touch()
    os.chmod(f, 0o775)
    paths.tighten(f)
    assert mode(f) == 0o700


def test_a_databases_companions_are_tightened_too(tmp_path: Path) -> None:
    db = tmp_path / "server.sqlite3"
    for suffix in paths.SQLITE_COMPANIONS:
        companion = tmp_path / f"server.sqlite3{suffix}"
        companion.touch()
        os.chmod(companion, 0o666)
    assert paths.private_sqlite(db) == db
    assert mode(db) == 0o600
    assert {suffix: mode(tmp_path / f"server.sqlite3{suffix}") for suffix in paths.SQLITE_COMPANIONS} == {
        "-wal": 0o600,
        "-shm": 0o600,
        "-journal": 0o600,
    }
