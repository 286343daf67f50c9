"""A throwaway server and demo clients to watch, all as subprocesses (`python -m monitor --demo`, `scripts/demo`).

The server runs with the seed's 0.3 s per batch (`--latency-ms 300`) and the seed limits; the clients
sync 10,000 records sequentially, then concurrently, then adaptively, one after another, each from its
own outbox (`python -m client generate` then `python -m client sync`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness.processes import ROOT, stop
from harness.server import LiveServer
from syncbed import contract as c

DEMO_MODES = (c.SEQUENTIAL, c.CONSERVATIVE, c.ADAPTIVE)
DEMO_USER = "demo"


class Demo:
    """Context manager: the server is up inside it; `start_clients()` starts the runs in the background."""

    def __init__(
        self,
        records: int = 10_000,
        modes: tuple[str, ...] = DEMO_MODES,
        latency_ms: int = 300,
        pause: float = 2.0,
        config: str | None = None,
    ) -> None:
        self.records = records
        self.modes = modes
        self.pause = pause
        self.latency_ms = latency_ms
        self.config = config
        self.results: list[dict[str, Any]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: LiveServer | None = None
        self.token = ""
        self.admin_token = ""
        self._client_proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def server(self) -> LiveServer:
        if self._server is None:
            raise RuntimeError("the demo server starts when the `with` block is entered")
        return self._server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def __enter__(self) -> Demo:
        self._tmp = tempfile.TemporaryDirectory(prefix="syncbed-demo-")
        args = ("--latency-ms", str(self.latency_ms))
        self._server = LiveServer.at(Path(self._tmp.name), config=self.config, args=args)
        try:
            self.server.start(timeout=60)
            self.token = self.server.token(DEMO_USER)
            self.admin_token = self.server.admin_token
        except BaseException:
            self.__exit__()
            raise
        return self

    def start_clients(self) -> None:
        """Run the demo syncs one after another in a background thread."""
        self._thread = threading.Thread(target=self._run_clients, name="syncbed-demo-clients", daemon=True)
        self._thread.start()

    def wait_clients(self, timeout: float) -> bool:
        """True when every demo sync has ended within `timeout` seconds."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is not None and not self._thread.is_alive()

    def count(self) -> int:
        """The records the server holds for the demo user."""
        return self.server.count(self.token)

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
        stop(self._client_proc)
        if self._server is not None:
            self._server.stop()
        if self._thread is not None:
            self._thread.join(15)
        if self._tmp is not None:
            self._tmp.cleanup()
