"""The sync benchmark's last table: one 1,000,000-record run with limits off, watching both processes' memory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.common import syncbed_server, table
from bench.sync_runs import count, make_template
from harness.processes import ROOT


class PeakRss:
    """Polls a process's resident set size in a thread; `peak` in bytes."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def million(records: int, work: Path) -> str:
    """`records` generated, then synced by the CLI in a subprocess to a server with no limits: one table row."""
    db = work / "million.db"
    started = time.perf_counter()
    make_template(db, records)
    generated = time.perf_counter() - started
    with syncbed_server("--no-limits") as server:
        token = server.token("million")
        server_rss = PeakRss(server.pid)
        proc = subprocess.Popen(
            [sys.executable, "-m", "client", "sync", "--db", str(db), "--server", server.url, "--json"],
            cwd=ROOT,
            env={**os.environ, "SYNCBED_TOKEN": token},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        client_rss = PeakRss(proc.pid)
        out, err = proc.communicate()
        # --json's progress lines go to stderr: pass on only what else it said (warnings, errors).
        sys.stderr.writelines(line for line in err.splitlines(keepends=True) if not line.startswith('{"progress"'))
        client_peak, server_peak = client_rss.stop(), server_rss.stop()
        result = json.loads(out)
        stored = asyncio.run(count(server.url, token))
    mib = 1024 * 1024
    rows = [[
        f"{records:,}", result["status"], f"{stored:,}", f"{result['duration']:.1f}",
        f"{records / result['duration']:,.0f}", result["concurrency"],
        f"{client_peak / mib:.0f} MiB", f"{server_peak / mib:.0f} MiB", f"{generated:.0f}",
    ]]  # fmt: skip
    return table(
        ["records", "status", "server count", "sync s", "records/s", "in flight", "client peak RSS",
         "server peak RSS", "generate s"],
        rows,
    )  # fmt: skip
