"""`python -m monitor` with wrong settings exits at once, non-zero, saying what to fix; a lost server is waited for."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.cli_run import run_cli
from tests.conftest import ROOT, ServerFactory, free_port, wait_until

# Long enough that a monitor which waits for nothing is told apart from one that gives up.
EXIT_AFTER = "30"


def monitor(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = run_cli(
        "monitor", "--headless", "--exit-after", EXIT_AFTER, *args, env={"SYNCBED_SERVER": ""}, timeout=timeout
    )
    return done, time.monotonic() - started


def test_a_server_url_without_scheme_or_host_is_a_usage_error(tmp_path: Path) -> None:
    for server in ("localhost:3001", "127.0.0.1:3001", "http://", "ftp://127.0.0.1:21"):
        done, seconds = monitor("--server", server, "--admin-token", "t")
        assert done.returncode == 2, (server, done.stderr)
        assert "--server" in done.stderr and "http://HOST:PORT" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and seconds < 20


def test_a_missing_token_file_says_which_path_was_looked_for(tmp_path: Path) -> None:
    data = tmp_path / "no-server-here"
    done, _ = monitor("--server", "http://127.0.0.1:1", "--data-dir", str(data))
    assert done.returncode == 2, done.stderr
    assert str(data / "admin-token") in done.stderr and "--admin-token" in done.stderr, done.stderr
    assert "no runs seen" not in done.stdout


def test_a_refused_token_names_where_it_was_read_and_how_to_pass_another(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    stale = tmp_path / "old-data"
    stale.mkdir()
    (stale / "admin-token").write_text("sb_admin_not_this_servers\n")
    done, seconds = monitor("--server", server.url, "--data-dir", str(stale))
    assert done.returncode == 2, done.stderr
    assert "refused the admin token" in done.stderr and str(stale / "admin-token") in done.stderr, done.stderr
    assert "--admin-token" in done.stderr and "401" in done.stderr and seconds < 20

    done, _ = monitor("--server", server.url, "--admin-token", "sb_wrong")
    assert done.returncode == 2 and "given with --admin-token" in done.stderr, done.stderr


def test_a_dead_port_fails_after_a_few_seconds_of_tries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done, seconds = monitor("--server", url, "--admin-token", "t")
    assert done.returncode == 1, done.stderr
    assert f"could not reach {url}" in done.stderr and "python -m server" in done.stderr, done.stderr
    assert 3 < seconds < 20, seconds
    assert "Traceback" not in done.stderr


def test_exit_after_that_comes_before_any_connection_is_a_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done, seconds = monitor("--server", url, "--admin-token", "t", "--exit-after", "2")  # the later flag wins
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"could not reach {url} within 2 s" in done.stderr, done.stderr
    assert "no runs seen" not in done.stdout and seconds < 20


def test_a_monitor_that_loses_its_server_keeps_retrying(server_factory: ServerFactory) -> None:
    server = server_factory()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--headless", "--exit-after", "12", "--server", server.url,
         "--data-dir", str(server.data_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: "event subscriber joined" in server.log(), 10, "the monitor to connect")
        time.sleep(1.5)  # the server logs the join just before it answers; let the answer reach the monitor
        server.kill()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "no runs seen" and time.monotonic() - started >= 11
