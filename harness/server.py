"""`python -m server` as a subprocess with its own data dir and port: tokens, log, counts, stop and restart."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.processes import ROOT, free_port, kill, stop, wait_healthy
from server import tokens
from syncbed.contract import COUNT_PATH
from syncbed.paths import SERVER_DB_FILE, read_admin_token

CONFIG_FILE = "config.toml"
LOG_FILE = "server.log"


@dataclass
class LiveServer:
    """One server: `start()` runs `python -m server [command] --data-dir D --port P [args]` and waits for /healthz."""

    data_dir: Path
    port: int = 0  # 0: a free port, chosen once, so a restart comes back on the same one
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)  # a subcommand (e.g. ["serve"]), before the options
    cpus: set[int] | None = None  # pin the process (and every thread it starts) to these CPUs
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @classmethod
    def at(
        cls,
        data_dir: Path,
        config: str | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> LiveServer:
        """A server on `data_dir`, with `config` (TOML text) written there and passed as --config."""
        extra = list(args)
        if config is not None:
            path = data_dir / CONFIG_FILE
            path.write_text(config)
            extra = ["--config", str(path), *extra]
        return cls(data_dir=data_dir, args=extra, env=env or {}, cpus=cpus)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the server is not running")
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def admin_token(self) -> str:
        token = read_admin_token(self.data_dir)
        if token is None:
            raise RuntimeError(f"{self.data_dir} holds no admin token: has the server started?")
        return token

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def token(self, user: str) -> str:
        """A fresh bearer token for `user`, written straight into the server's SQLite file."""
        return tokens.create_token_at(self.data_dir / SERVER_DB_FILE, user)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def count(self, token: str) -> int:
        """How many records the server holds for the user of `token`."""
        r = httpx.get(self.url + COUNT_PATH, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        r.raise_for_status()
        return int(r.json()["count"])

    def start(self, timeout: float = 30.0) -> LiveServer:
        where = ["--data-dir", str(self.data_dir), "--port", str(self.port)]
        cmd = [sys.executable, "-m", "server", *self.command, *where, *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        cpus = self.cpus
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Set in the child before exec, so every thread the server later starts inherits it.
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        self.starts += 1
        try:
            wait_healthy(self.url, self.proc, timeout, log=self.log)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ctrl-C (a clean shutdown), then SIGKILL after `timeout` seconds."""
        stop(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, the crash case."""
        kill(self.proc)
        self.proc = None

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()


@contextlib.contextmanager
def temporary_server(
    *args: str,
    config: str | None = None,
    env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
    prefix: str = "syncbed-",
) -> Iterator[LiveServer]:
    """A started server on a temporary data dir, stopped and removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        srv = LiveServer.at(Path(tmp), config=config, args=args, env=env, cpus=cpus)
        try:
            yield srv.start()
        finally:
            srv.stop()
