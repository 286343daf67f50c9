"""Run the real `python -m server|client|monitor` and check a start-up refusal is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.conftest import ROOT


def run_cli(
    module: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    wrapper: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """The module's CLI in a subprocess (behind `wrapper`, a command that execs the rest); killed at `timeout`."""
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SYNCBED_SERVER_", "SYNCBED_LIMITS_", "SYNCBED_FAULTS_"))
    }
    return subprocess.run(
        [*wrapper, sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**full, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def server_refuses(
    data_dir: Path, *args: str, env: Mapping[str, str] | None = None, wrapper: Sequence[str] = (), port: bool = True
) -> str:
    """Start `python -m server` (on a free port); assert exit 2 with one error line; return that line."""
    ports = ("--port", "0") if port else ()
    out = run_cli("server", "--data-dir", str(data_dir), *ports, *args, env=env, timeout=30.0, wrapper=wrapper)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
