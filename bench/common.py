"""Benchmark plumbing: real servers in subprocesses on free loopback ports, and a little arithmetic."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from server import tokens
from syncbed.paths import ADMIN_TOKEN_FILE, SERVER_DB_FILE

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]

    def token(self, user: str) -> str:
        return tokens.create_token_at(self.data_dir / SERVER_DB_FILE, user)

    @property
    def admin_token(self) -> str:
        return (self.data_dir / ADMIN_TOKEN_FILE).read_text().strip()


def wait_healthy(url: str, proc: subprocess.Popen[bytes], path: str = "/healthz", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up")


@contextmanager
def syncbed_server(
    *args: str, config: str | None = None, log_level: str = "warning", cpus: set[int] | None = None
) -> Iterator[Proc]:
    """`python -m server` with a temporary data dir (pinned to `cpus` if given); stopped (SIGINT, then SIGKILL)."""
    with tempfile.TemporaryDirectory(prefix="syncbed-bench-") as tmp:
        data = Path(tmp)
        port = free_port()
        extra = list(args)
        if config:
            (data / "config.toml").write_text(config)
            extra += ["--config", str(data / "config.toml")]
        cmd = [sys.executable, "-m", "server", "--data-dir", tmp, "--port", str(port), "--log-level", log_level]
        proc = subprocess.Popen(
            [*cmd, *extra],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Set in the child before exec, so every thread the server later starts inherits it.
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            yield Proc(url, data, proc)
        finally:
            stop(proc)


@contextmanager
def python_server(module: str, *args: str, health: str = "/healthz") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Any `python -m module --port P ...` server of the benchmarks' own (reference apps)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, health)
        yield url, proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
