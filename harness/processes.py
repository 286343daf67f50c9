"""Processes on free 127.0.0.1 ports: find a port, wait for an answer, stop within a bound; redis-server."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from syncbed.contract import HEALTH_PATH

# Where `python -m server|client|monitor|bench...` run from: the checkout (or site-packages) holding them.
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port nothing listens on now (the OS picks it); the caller binds it soon after."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Call `check` until it is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def wait_healthy(
    url: str,
    proc: subprocess.Popen[bytes],
    timeout: float = 30.0,
    path: str = HEALTH_PATH,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Until `url + path` answers 200; RuntimeError with the tail of `log` if `proc` exits first."""

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log()[-3000:]}")
        try:
            return httpx.get(url + path, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout, f"{url} to answer")


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGINT (Ctrl-C, which the server and the client shut down cleanly on), then SIGKILL after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(proc)


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL: no shutdown, no flush, the crash case."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


@dataclass
class RedisServer:
    """`redis-server` without persistence, bound to 127.0.0.1."""

    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.ping, timeout, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        kill(self.proc)
        self.proc = None
