"""A throwaway server and the demo's acts, all as subprocesses (`python -m monitor --demo`, `scripts/demo`).

The server runs with the seed's 0.3 s per batch (`--latency-ms 300`) and the seed limits; each act
(harness/demo_acts.py) is one `python -m harness.demo_act` as its own user, started just after a
window edge, one after another. The table and the monitor both read `outcomes`, so they show the
same numbers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec

from harness.demo_acts import PHASE, RESTORE, SEED_ACTS, Act, Change, Outcome, binding_period, bound, rules_at
from harness.demo_story import figures, summary, title
from harness.processes import ROOT, stop
from harness.server import LiveServer
from syncbed import contract as c
from syncbed.responses import LimiterView, RuleSettings

ActHook = Callable[[int, Act], None]
OutcomeHook = Callable[[Outcome], None]
ChangeHook = Callable[[Change], None]


class Demo:
    """Context manager: the server is up inside it; `start_clients()` plays the acts in the background."""

    def __init__(
        self,
        records: int = 10_000,
        acts: Sequence[Act] = SEED_ACTS,
        latency_ms: int = 300,
        pause: float = 1.0,
        config: str | None = None,
        phase: float = PHASE,
        response: str = "syncbed",
    ) -> None:
        self.records = records
        self.response = response  # the server's response style (limits.response)
        self.acts = tuple(acts)
        self.pause = pause
        self.latency_ms = latency_ms
        self.config = config
        self.phase = phase
        self.outcomes: list[Outcome] = []
        self.on_act: ActHook | None = None  # called (in the demo's thread) as an act begins
        self.on_outcome: OutcomeHook | None = None  # ... as it ends
        self.on_change: ChangeHook | None = None  # ... when the demo edits the server mid-act
        self.on_done: Callable[[], None] | None = None  # ... after the last act
        self.ready: Callable[[], bool] = lambda: True  # the first act waits (up to 30 s) until this holds
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: LiveServer | None = None
        self.token = ""  # the last act's user
        self.tokens: list[str] = []
        self.admin_token = ""
        self._proc: subprocess.Popen[bytes] | None = None
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

    @property
    def results(self) -> list[dict[str, Any]]:
        return [o.result for o in self.outcomes]

    def __enter__(self) -> Demo:
        self._tmp = tempfile.TemporaryDirectory(prefix="syncbed-demo-")
        args = ("--latency-ms", str(self.latency_ms), "--response", self.response)
        self._server = LiveServer.at(Path(self._tmp.name), config=self.config, args=args)
        try:
            self.server.start(timeout=60)
            self.admin_token = self.server.admin_token
        except BaseException:
            self.__exit__()
            raise
        return self

    def start_clients(self) -> None:
        """Play the acts one after another in a background thread."""
        self._thread = threading.Thread(target=self._run_acts, name="syncbed-demo-acts", daemon=True)
        self._thread.start()

    def wait_clients(self, timeout: float) -> bool:
        """True when every act has ended within `timeout` seconds."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is not None and not self._thread.is_alive()

    def count(self) -> int:
        """The records the server holds for every act's user together."""
        return sum(self.server.count(token) for token in self.tokens)

    def rules(self) -> list[RuleSettings]:
        """The server's rules as they now are (GET /api/v1/limiter)."""
        r = httpx.get(self.url + c.LIMITER_PATH, headers=self.server.admin_headers(), timeout=10)
        r.raise_for_status()
        return list(msgspec.convert(r.json(), LimiterView).rules)

    def change(self, change: Change) -> None:
        """PUT the faults and limits of `change` with the admin token."""
        headers = self.server.admin_headers()
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as http:
            if change.faults:
                http.put(c.FAULTS_PATH, json=change.faults).raise_for_status()
            for limit in change.limits:
                http.put(c.LIMITS_PATH, json=limit).raise_for_status()
        if self.on_change is not None:
            self.on_change(change)

    def _run_acts(self) -> None:
        for _ in range(300):
            if self.ready() or self._stopping.wait(0.1):
                break
        for index, act in enumerate(self.acts):
            if self._stopping.is_set():
                return
            if self.on_act is not None:
                self.on_act(index, act)
            try:
                outcome = self._run_act(index, act)
            except (httpx.HTTPError, OSError):
                if self._stopping.is_set():  # the server went down under the act because the demo is ending
                    return
                raise
            if outcome is None:
                return
            self.outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            if index + 1 < len(self.acts) and self._stopping.wait(self.pause):
                return
        if self.on_done is not None:
            self.on_done()

    def _run_act(self, index: int, act: Act) -> Outcome | None:
        settings = self.rules()
        token = self.server.token(f"demo-{index + 1}-{act.client}")
        self.tokens.append(token)
        self.token = token
        cmd = [sys.executable, "-m", "harness.demo_act", "--server", self.url, "--client", act.client,
               "--records", str(self.records * act.scale), "--db", str(self.data_dir / f"outbox-{index + 1}.sqlite3"),
               "--period", f"{binding_period(settings):g}", "--phase", f"{self.phase:g}"]  # fmt: skip
        env = {**os.environ, "SYNCBED_TOKEN": token}
        log = (self.data_dir / "clients.log").open("ab")
        with log, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log) as proc:
            self._proc = proc
            assert proc.stdout is not None
            lines = [proc.stdout.readline()]  # {"event": "start", "at": T}: the run starts at T
            start = _start_of(lines[0])
            try:
                for change in act.changes:
                    if start is None or self._stopping.wait(max(0.0, start + change.at - time.time())):
                        break
                    self.change(change)
                lines += proc.stdout.readlines()
            finally:
                if act.changes and not self._stopping.is_set():
                    self.change(RESTORE)
        if self._stopping.is_set():
            return None
        result: dict[str, Any] = {"client": act.client, "exit": proc.returncode}
        try:
            result |= json.loads(lines[-1])
        except (ValueError, IndexError):
            pass
        rules = tuple(rules_at(settings, float(result.get("started_at", start or time.time()))))
        batches = int(result.get("total_batches", 0))
        return Outcome(index, act, result, rules, bound(batches, self.latency_ms / 1000, act.client, rules))

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        stop(self._proc)
        if self._server is not None:
            self._server.stop()
        if self._thread is not None:
            self._thread.join(15)
        if self._tmp is not None:
            self._tmp.cleanup()


def _start_of(line: bytes) -> float | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return float(data["at"]) if isinstance(data, dict) and data.get("event") == "start" else None


def narrate(demo: Demo, app: Any) -> None:
    """Tell the acts in `app` (the monitor): each caption, each live change, each act's figures, then the summary."""

    def tell(
        message: str, heading: str, severity: str = "information", timeout: float = 10.0, fresh: bool = False
    ) -> None:
        """A notification; `fresh` first takes the earlier ones down (a new act, the summary): they would
        pile up over the lanes the act is drawn in."""

        def show() -> None:
            if fresh:
                app.clear_notifications()
            app.notify(message, title=heading, severity=severity, timeout=timeout)

        # RuntimeError: the app is not running; CancelledError: it stopped while this waited for it.
        with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
            app.call_from_thread(show)

    total = len(demo.acts)
    demo.ready = lambda: bool(app.is_running) and getattr(app, "conn_state", "connected") == "connected"
    demo.on_act = lambda i, act: tell(act.caption, title(i, act, total), fresh=True)
    demo.on_change = lambda change: tell(change.says, "admin API: faults and limits changed", "warning")
    demo.on_outcome = lambda o: tell(figures(o), f"act {o.index + 1}/{total} done")
    demo.on_done = lambda: tell("\n".join(summary(demo.outcomes)), "demo finished: summary", timeout=3600, fresh=True)


def story(demo: Demo) -> list[str]:
    """What the demo showed, for the terminal once the monitor has quit: each act's figures and the summary."""
    lines = [figures(o) for o in demo.outcomes]
    if len(demo.outcomes) < len(demo.acts):
        lines.append(f"the demo was stopped after {len(demo.outcomes)} of {len(demo.acts)} acts")
    return lines + summary(demo.outcomes)
