"""Every command and flag the README shows exists and works as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def tour() -> str:
    block = README.split("<!-- tour:start -->", 1)[1].split("<!-- tour:end -->", 1)[0]
    return block.split("```sh", 1)[1].rsplit("```", 1)[0]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload, no-any-return]


def test_the_tour_runs_as_written() -> None:
    script = tour().replace("3001", str(free_port()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SYNCBED_TOKEN", None)
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Sync complete (5/5 batches)" in r.stdout + r.stderr
    assert '"status": "complete"' in r.stdout or '"status":"complete"' in r.stdout
    assert "alice" in r.stdout
    assert "Traceback" not in r.stderr


def helps() -> str:
    cmds = [
        ["-m", "server", "--help"],
        ["-m", "server", "token", "--help"],
        ["-m", "server", "token", "create", "--help"],
        ["-m", "server", "token", "revoke", "--help"],
        ["-m", "client", "--help"],
        ["-m", "client", "generate", "--help"],
        ["-m", "client", "import", "--help"],
        ["-m", "client", "sync", "--help"],
        ["-m", "client", "stats", "--help"],
        ["-m", "monitor", "--help"],
        ["-m", "harness.demo", "--help"],
        ["-m", "bench", "--help"],
    ]
    out = []
    for cmd in cmds:
        r = run([sys.executable, *cmd])
        assert r.returncode == 0, (cmd, r.stderr)
        out.append(r.stdout)
    return "\n".join(out)


def test_every_flag_in_the_readme_exists() -> None:
    text = helps()
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", README))
    missing = sorted(f for f in flags if f not in text)
    assert not missing, f"README mentions flags no command has: {missing}"


def test_every_subcommand_in_the_readme_exists() -> None:
    for prog, sub in set(re.findall(r"python -m (server|client|monitor) ([a-z]+)", README)):
        if sub in ("token", "generate", "import", "sync", "stats"):
            assert run([sys.executable, "-m", prog, sub, "--help"]).returncode == 0, (prog, sub)
    for script in ("scripts/demo", "scripts/test", "scripts/bench"):
        assert script in README
        assert os.access(ROOT / script, os.X_OK), script
