"""Benchmark plumbing: real servers in subprocesses on free loopback ports (harness/), and a little arithmetic."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx

from harness.processes import ROOT, free_port, stop, wait_healthy
from harness.server import LiveServer, temporary_server
from syncbed import contract


@contextmanager
def syncbed_server(
    *args: str, config: str | None = None, log_level: str = "warning", cpus: set[int] | None = None
) -> Iterator[LiveServer]:
    """`python -m server` with a temporary data dir (pinned to `cpus` if given); stopped (SIGINT, then SIGKILL)."""
    with temporary_server("--log-level", log_level, *args, config=config, cpus=cpus, prefix="syncbed-bench-") as srv:
        yield srv


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
        wait_healthy(url, proc, path=health)
        yield url, proc
    finally:
        stop(proc)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


async def post_batch(client: httpx.AsyncClient, auth: dict[str, str], run: str, index: int, body: bytes) -> None:
    """One traced sync POST (batch `index`, attempt 1 of `run`); anything but a 200 ends the benchmark."""
    headers = {**auth, "Content-Type": "application/json", contract.HEADER_RUN: run,
               contract.HEADER_BATCH: str(index), contract.HEADER_ATTEMPT: "1"}  # fmt: skip
    r = await client.post(contract.SYNC_PATH, content=body, headers=headers)
    if r.status_code != 200:
        raise RuntimeError(f"{client.base_url}: sync answered {r.status_code}: {r.text[:200]}")
