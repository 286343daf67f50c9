"""The monitor in a real 80x24 terminal (tmux) while a real client syncs: header and footer stay, Ctrl-C quits."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 80, 24


class Terminal:
    """One tmux session of its own socket (nobody else's tmux is touched), WIDTH x HEIGHT."""

    def __init__(self, tmux: str, name: str) -> None:
        self.base = [tmux, "-L", name]
        self.name = name

    def start(self, command: list[str]) -> None:
        size = ["-x", str(WIDTH), "-y", str(HEIGHT)]
        subprocess.run([*self.base, "new-session", "-d", "-s", self.name, *size, "-c", str(ROOT), shlex.join(command)],
                       check=True, timeout=30)  # fmt: skip

    def lines(self) -> list[str]:
        out = subprocess.run([*self.base, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                             timeout=30)  # fmt: skip
        return out.stdout.splitlines()

    def wait(self, check: Callable[[list[str]], bool], timeout: float = 60.0) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if check(lines):
                return lines
            time.sleep(0.2)
        raise AssertionError("the screen never showed it:\n" + "\n".join(lines))

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", self.name, *keys], check=True, timeout=30)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    tmux = shutil.which("tmux")
    assert tmux, "the real-terminal check needs tmux (apt-get install tmux)"
    term = Terminal(tmux, f"syncbed-test-{os.getpid()}")
    yield term
    term.close()


def header_and_footer(lines: list[str]) -> bool:
    return len(lines) == HEIGHT and lines[0].startswith(" syncbed ") and "? Help" in lines[-1] and "q Quit" in lines[-1]


def test_header_and_footer_stay_at_80x24_while_a_client_syncs(
    live_server: LiveServer, terminal: Terminal, tmp_path: Path
) -> None:
    db = str(tmp_path / "outbox.sqlite3")
    py = sys.executable
    subprocess.run([py, "-m", "client", "--db", db, "generate", "20000"], check=True, cwd=ROOT, timeout=120,
                   capture_output=True)  # fmt: skip
    monitor = [py, "-m", "monitor", "--server", live_server.url, "--admin-token", live_server.admin_token]
    # The shell stays after the monitor, so what it printed on the way out can be read off the pane.
    terminal.start(["sh", "-c", f'{shlex.join(monitor)}; echo "monitor exited $?"; sleep 60'])
    lines = terminal.wait(lambda ls: header_and_footer(ls) and "connected" in ls[0])
    env = {**os.environ, "SYNCBED_TOKEN": live_server.token("tty")}
    sync = [py, "-m", "client", "--db", db, "sync", "--server", live_server.url, "--mode", "aggressive", "--json"]
    client = subprocess.Popen(sync, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Mid-run: a run row is there, and the header and footer did not scroll away for it.
        lines = terminal.wait(lambda ls: header_and_footer(ls) and any("aggressive" in line for line in ls))
        _, err = client.communicate(timeout=180)
    finally:
        client.kill()
        client.wait()
    assert client.returncode == 0, err
    lines = terminal.wait(lambda ls: header_and_footer(ls) and any("complete" in line for line in ls))
    assert "connected" in lines[0] and "lag " in lines[0]
    row = next(line for line in lines if "aggressive" in line)
    assert "100%" in row and "done" in row  # the selected run's progress and ETA columns fit in 80
    assert all(len(line) <= WIDTH for line in lines)
    terminal.keys("C-c")  # a real terminal's Ctrl-C quits, with the run summary
    lines = terminal.wait(lambda ls: any("monitor exited 0" in line for line in ls))
    assert any(line.startswith("run ") and "aggressive" in line for line in lines)
