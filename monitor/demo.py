"""`python -m monitor --demo`: a throwaway server and demo clients to watch, all as subprocesses.

The server runs with the seed's 0.3 s per batch (`--latency-ms 300`) and the seed limits; the clients
sync 10,000 records sequentially, then concurrently, then adaptively, one after another, each from its
own outbox (`python -m client generate` then `python -m client sync`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from syncbed import contract as c
from syncbed.paths import read_admin_token

DEMO_MODES = (c.SEQUENTIAL, c.CONSERVATIVE, c.ADAPTIVE)
DEMO_USER = "demo"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """Context manager: the server is up inside it; `start_clients()` starts the runs in the background."""

    def __init__(
        self,
        records: int = 10_000,
        modes: tuple[str, ...] = DEMO_MODES,
        latency_ms: int = 300,
        pause: float = 2.0,
        server_args: tuple[str, ...] = (),
    ) -> None:
        self.records = records
        self.modes = modes
        self.latency_ms = latency_ms
        self.pause = pause
        self.server_args = server_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token: str | None = None
        self.results: list[dict[str, Any]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._client_proc: subprocess.Popen[bytes] | None = None
        self.token = ""
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def data_dir(self) -> Path:
        assert self._tmp is not None
        return Path(self._tmp.name)

    def _server_cmd(self) -> list[str]:
        return [sys.executable, "-m", "server", "--data-dir", str(self.data_dir)]

    def __enter__(self) -> Demo:
        self._tmp = tempfile.TemporaryDirectory(prefix="syncbed-demo-")
        log = (self.data_dir / "server.log").open("ab")
        cmd = [*self._server_cmd(), "--port", str(self.port), "--latency-ms", str(self.latency_ms), *self.server_args]
        self._server = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            self._wait_healthy()
            self.token = subprocess.run(
                [*self._server_cmd(), "token", "create", DEMO_USER],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            self.admin_token = read_admin_token(self.data_dir)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._server is not None
            if self._server.poll() is not None:
                log = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the demo server exited with {self._server.returncode}:\n{log}")
            try:
                if httpx.get(self.url + c.HEALTH_PATH, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the demo server did not answer on {self.url} within {timeout:.0f} s")

    def start_clients(self) -> None:
        """Run the demo syncs one after another in a background thread."""
        self._thread = threading.Thread(target=self._run_clients, name="syncbed-demo-clients", daemon=True)
        self._thread.start()

    def wait_clients(self, timeout: float) -> bool:
        """True when every demo sync has ended within `timeout` seconds."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is not None and not self._thread.is_alive()

    def _run_client(self, *args: str) -> subprocess.CompletedProcess[bytes] | None:
        if self._stopping.is_set():
            return None
        env = {**os.environ, "SYNCBED_TOKEN": self.token}
        with (self.data_dir / "clients.log").open("ab") as log:
            self._client_proc = subprocess.Popen(
                [sys.executable, "-m", "client", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log
            )
            out, _ = self._client_proc.communicate()
        return subprocess.CompletedProcess(args, self._client_proc.returncode, out, b"")

    def _run_clients(self) -> None:
        for mode in self.modes:
            db = str(self.data_dir / f"outbox-{mode}.sqlite3")
            if self._run_client("generate", str(self.records), "--db", db) is None:
                return
            done = self._run_client("sync", "--db", db, "--server", self.url, "--mode", mode, "--json")
            if done is None:
                return
            try:
                self.results.append({"mode": mode, "exit": done.returncode, **json.loads(done.stdout or b"{}")})
            except ValueError:
                self.results.append({"mode": mode, "exit": done.returncode})
            if self._stopping.wait(self.pause):
                return

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        for proc in (self._client_proc, self._server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._thread is not None:
            self._thread.join(15)
        if self._tmp is not None:
            self._tmp.cleanup()
