"""`python -m client` through real connection resets (RST, no byte of an answer): it retries to exact counts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.test_e2e import cli
from tests.conftest import ServerFactory


def test_a_sync_through_30_percent_resets_completes_with_exact_counts(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(args=["--no-limits", "--reset-rate", "0.3"])
    token = server.token("resets")
    db = str(tmp_path / "outbox.db")
    assert cli("generate", "5000", "--db", db, "--user-seed", "3").returncode == 0
    # 20 batches at 30% resets: one batch failing 21 times in a row has odds of 1e-11.
    run = cli("sync", "--db", db, "--server", server.url, "--batch-size", "250", "--max-retries", "20", "--json",
              token=token)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert server.count(token) == 5000
    assert result["stored"] == 5000 and result["duplicates"] == 0, result
    # Every reset costs one request: resent at once when it hit a reused connection, after a backoff otherwise.
    resets = result["requests"] - result["total_batches"]
    assert resets > 0, result
    log = server.log()
    assert log.count("injected fault: dropping the connection (reset)") == resets
    assert "Traceback" not in log
