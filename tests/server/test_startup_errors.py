"""Bad settings stop `python -m server` at start with exit 2 and one line naming the key, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_run import run_cli, server_refuses


@pytest.mark.parametrize(
    ("env", "args", "names"),
    [
        ({"SYNCBED_SERVER_LOG_LEVEL": "verbose"}, (), ("server.log_level", "SYNCBED_SERVER_LOG_LEVEL", "verbose")),
        ({}, ("--latency-ms", "700000"), ("faults.latency_ms", "600000")),
        ({}, ("--jitter-ms", "-5"), ("faults.jitter_ms",)),
        ({"SYNCBED_FAULTS_LATENCY_MS": "700000"}, (), ("faults.latency_ms", "SYNCBED_FAULTS_LATENCY_MS")),
        ({"SYNCBED_FAULTS_ERROR_RATE": "nan"}, (), ("faults.error_rate", "SYNCBED_FAULTS_ERROR_RATE")),
        ({"SYNCBED_SERVER_PORTT": "4000"}, (), ("SYNCBED_SERVER_PORTT", "did you mean SYNCBED_SERVER_PORT?")),
        ({"SYNCBED_LIMITS_STOR": "memory"}, (), ("SYNCBED_LIMITS_STOR", "SYNCBED_LIMITS_STORE")),
        ({"SYNCBED_FAULTS_X": "1"}, (), ("SYNCBED_FAULTS_X", "known: ", "SYNCBED_FAULTS_LATENCY_MS")),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], names: tuple[str, ...]
) -> None:
    line = server_refuses(tmp_path / "data", *args, env=env)
    assert line.startswith("error: configuration: "), line
    for name in names:
        assert name in line, line


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes('[server]\nhost = "caf\u00e9"\n'.encode("latin-1"))
    line = server_refuses(tmp_path / "data", "--config", str(config))
    assert str(config) in line and "UTF-8" in line and "0xe9" in line, line


def test_the_variables_the_project_itself_uses_are_not_settings(tmp_path: Path) -> None:
    """SYNCBED_TOKEN, SYNCBED_SERVER (the monitor's), SYNCBED_REQUIRE_REDIS... pass; a token command runs."""
    env = {
        "SYNCBED_TOKEN": "x",
        "SYNCBED_SERVER": "http://127.0.0.1:1",
        "SYNCBED_REQUIRE_REDIS": "1",
        "SYNCBED_EXTRAS": "test",
        "SYNCBED_BENCH_ADMIN": "x",
    }
    out = run_cli("server", "--data-dir", str(tmp_path / "data"), "token", "list", env=env)
    assert out.returncode == 0, out.stderr


@dataclass(frozen=True)
class ReadOnly:
    path: Path
    wrapper: tuple[str, ...]  # what runs the CLI so that `path` is read-only for it


# Root writes through any mode bits, so as root the directory is bind-mounted read-only in a mount
# namespace of the CLI's own (EROFS, what a read-only volume gives); elsewhere mode 0555 does it.
_RO_MOUNT = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"',)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[ReadOnly]:
    ro = tmp_path / "data"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ReadOnly(ro, ())
        ro.chmod(0o755)
        return
    wrapper = ("unshare", "-m", "sh", "-c", *_RO_MOUNT, str(ro))
    probe = subprocess.run([*wrapper, "touch", str(ro / "probe")], capture_output=True, timeout=30)
    if probe.returncode == 0 or shutil.which("unshare") is None:
        pytest.skip("running as root without a way to make a read-only directory (unshare -m)")
    yield ReadOnly(ro, wrapper)


@pytest.mark.parametrize(
    "args", [(), ("token", "list"), ("token", "create", "alice"), ("token", "revoke", "alice")], ids=" ".join
)
def test_a_read_only_data_dir(read_only: ReadOnly, args: tuple[str, ...]) -> None:
    line = server_refuses(read_only.path, *args, wrapper=read_only.wrapper, port=not args)
    assert "server.data_dir" in line and str(read_only.path) in line and "writable --data-dir" in line, line


def test_a_data_dir_under_a_read_only_parent(read_only: ReadOnly) -> None:
    where = read_only.path / "sub" / "dir"
    line = server_refuses(where, "token", "create", "alice", wrapper=read_only.wrapper, port=False)
    assert "server.data_dir" in line and str(where) in line, line
