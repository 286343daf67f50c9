"""Shared fixtures: real servers (syncbed, redis) on free 127.0.0.1 ports, in subprocesses that tests may kill."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from server import tokens
from syncbed.paths import ADMIN_TOKEN_FILE, SERVER_DB_FILE

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class LiveServer:
    """`python -m server` in a subprocess with its own data dir and port."""

    data_dir: Path
    port: int
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    command: list[str] = field(default_factory=list)  # a subcommand (e.g. ["serve"]), before the options

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / ADMIN_TOKEN_FILE).read_text().strip()

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def token(self, user: str) -> str:
        """A fresh bearer token for `user`, written straight into the server's SQLite file."""
        return tokens.create_token_at(self.data_dir / SERVER_DB_FILE, user)

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 30.0) -> LiveServer:
        where = ["--data-dir", str(self.data_dir), "--port", str(self.port)]
        cmd = [sys.executable, "-m", "server", *self.command, *where, *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.starts += 1

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                return httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout, f"server on port {self.port}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, the crash case."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()

    def count(self, token: str) -> int:
        r = httpx.get(self.url + "/api/v1/data/count", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        r.raise_for_status()
        return int(r.json()["count"])


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """make(config=None, args=(), env=None, start=True) -> LiveServer; all are stopped at teardown."""
    made: list[LiveServer] = []

    def make(
        config: str | None = None,
        args: tuple[str, ...] | list[str] = (),
        env: dict[str, str] | None = None,
        start: bool = True,
        data_dir: Path | None = None,
    ) -> LiveServer:
        data = data_dir or tmp_path_factory.mktemp("server")
        extra = list(args)
        if config is not None:
            path = data / "config.toml"
            path.write_text(config)
            extra = ["--config", str(path), *extra]
        srv = LiveServer(data_dir=data, port=free_port(), args=extra, env=env or {})
        made.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture
def live_server(server_factory: ServerFactory) -> LiveServer:
    """A server with the default (seed) settings."""
    return server_factory()


@pytest.fixture
def unlimited_server(server_factory: ServerFactory) -> LiveServer:
    """A server with every throttle off, for tests about ingest rather than limits."""
    return server_factory(args=["--no-limits"])


@dataclass
class RedisServer:
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(up, 15, f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def require_redis() -> None:
    """Fail loudly when CI (or SYNCBED_REQUIRE_REDIS) expects redis-server and it is missing; skip elsewhere."""
    if shutil.which("redis-server"):
        return
    message = "redis-server is not installed (scripts/test installs it with apt-get when run as root)"
    if os.environ.get("SYNCBED_REQUIRE_REDIS") or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    require_redis()
    srv = RedisServer(port=free_port(), data_dir=tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.kill()
