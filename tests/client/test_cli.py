"""`python -m client` as a user runs it: generate, import, stats and the sync's usage errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import msgspec

from client.outbox import Outbox
from tests.cli_run import run_cli

GOOD = {"id": "imp-1", "url": "https://example.org/a", "visitedAt": 1_700_000_000_000, "title": "A"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("client", *args, env=env, timeout=120)


def jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


async def test_generate_adds_records_and_the_same_seed_replaces_them(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    first = cli("generate", "2500", "--db", str(db), "--user-seed", "9")
    assert first.returncode == 0, first.stderr
    assert "Generated 2,500 page visits (user seed 9)" in first.stdout
    assert cli("generate", "2500", "--db", str(db), "--user-seed", "9").returncode == 0
    assert cli("generate", "100", "--db", str(db)).returncode == 0  # a random seed: new ids
    async with Outbox(db) as outbox:
        assert (await outbox.pending())[0] == 2600


async def test_import_is_all_or_nothing_unless_told_to_skip(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    bad = {**GOOD, "id": "imp-2", "url": "ftp://example.org/b"}
    path = jsonl(tmp_path / "visits.jsonl", [GOOD, bad, {**GOOD, "id": "imp-3"}])

    strict = cli("import", str(path), "--db", str(db))
    assert strict.returncode == 1
    # One line whatever the path's length: nothing written to a pipe is wrapped.
    assert strict.stderr.splitlines() == [f"{path}: line 2: {strict.stderr.split(': line 2: ', 1)[1].strip()}"]
    assert "nothing imported" in strict.stderr
    async with Outbox(db) as outbox:
        assert (await outbox.pending())[0] == 0

    lenient = cli("import", str(path), "--db", str(db), "--skip-invalid")
    assert lenient.returncode == 0, lenient.stderr
    assert "Imported 2 records (1 invalid skipped)" in lenient.stdout and "line 2" in lenient.stderr
    async with Outbox(db) as outbox:
        body = await outbox.get("imp-1")
        assert body is not None and msgspec.json.decode(body) == GOOD  # stored as compact wire JSON
        assert await outbox.get("imp-2") is None


async def test_messages_to_a_pipe_are_never_wrapped_however_long_the_path(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(f"directory-{i:02d}-with-a-long-name" for i in range(8)))
    deep.mkdir(parents=True)
    bad = {**GOOD, "id": "imp-2", "url": "ftp://example.org/b"}
    path = jsonl(deep / "visits [2026] :smile: with spaces.jsonl", [GOOD, bad])
    db = deep / "outbox [x].db"

    strict = cli("import", str(path), "--db", str(db))
    assert strict.returncode == 1 and len(str(path)) > 300
    lines = strict.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: line 2: "), strict.stderr
    assert lines[0].endswith("nothing imported (use --skip-invalid to skip bad lines)")

    lenient = cli("import", str(path), "--db", str(db), "--skip-invalid")
    assert lenient.returncode == 0, lenient.stderr
    assert lenient.stdout.splitlines() == [f"Imported 1 records (1 invalid skipped); 1 records wait in {db}."]
    assert len(lenient.stderr.splitlines()) == 1 and lenient.stderr.startswith("skipped line 2: ")

    stats = cli("stats", "--db", str(db))
    assert stats.stdout.splitlines() == ["Outbox: 1 records waiting to sync.", "No sync runs recorded yet."]


def test_stats_on_an_empty_outbox(tmp_path: Path) -> None:
    out = cli("stats", "--db", str(tmp_path / "o.db"))
    assert out.returncode == 0
    assert "Outbox: 0 records waiting to sync." in out.stdout and "No sync runs recorded yet." in out.stdout
    data = json.loads(cli("stats", "--db", str(tmp_path / "o.db"), "--json").stdout)
    assert data["pending"] == 0 and data["runs"] == 0


def test_sync_needs_a_token_and_says_where_to_get_one(tmp_path: Path) -> None:
    out = cli("sync", "--db", str(tmp_path / "o.db"), env={"SYNCBED_TOKEN": ""})
    assert out.returncode == 2
    assert "SYNCBED_TOKEN" in out.stderr and "token create" in out.stderr


def test_sync_refuses_a_server_that_is_not_an_http_url(tmp_path: Path) -> None:
    for server in ("localhost:3001", "ftp://127.0.0.1:21", "http://"):
        out = cli("sync", "--db", str(tmp_path / "o.db"), "--token", "t", "--server", server)
        assert out.returncode == 2, server
        assert "argument --server" in out.stderr and "http://HOST:PORT" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_sync_of_an_empty_outbox_is_complete(tmp_path: Path) -> None:
    out = cli("sync", "--db", str(tmp_path / "o.db"), "--token", "t", "--server", "http://127.0.0.1:9")
    assert out.returncode == 0
    assert "Sync complete (0/0 batches): nothing to sync" in out.stdout


def test_an_unreachable_server_fails_every_batch_and_keeps_the_records(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    assert cli("generate", "1500", "--db", str(db)).returncode == 0
    out = cli("sync", "--db", str(db), "--token", "t", "--server", "http://127.0.0.1:9", "--max-retries", "1", "--json")
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["status"] == "failed" and result["failed_batches"] == 2
    assert all(f["reason"].startswith("gave up after 1 retries: network error") for f in result["failed"])
    stats = json.loads(cli("stats", "--db", str(db), "--json").stdout)
    assert stats["pending"] == 1500 and stats["last"]["status"] == "failed"


def test_help_describes_every_command() -> None:
    out = cli("--help")
    assert out.returncode == 0
    for word in ("generate", "import", "sync", "stats"):
        assert word in out.stdout
    sync_help = cli("sync", "--help").stdout
    for flag in ("--server", "--token", "--mode", "--concurrency", "--batch-size", "--max-retries", "--json"):
        assert flag in sync_help


def test_a_piped_sync_writes_no_cropped_progress_bar(tmp_path: Path) -> None:
    out = cli("sync", "--db", str(tmp_path / "o.db"), "--token", "t", "--server", "http://127.0.0.1:9")
    assert out.stdout.splitlines() == ["Sync complete (0/0 batches): nothing to sync, the outbox is empty."]
