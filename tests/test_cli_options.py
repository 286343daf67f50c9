"""The three CLIs as a user types them: options before or after the subcommand, --version, negative flags."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from syncbed import contract
from tests.cli_run import run_cli
from tests.conftest import ROOT, LiveServer, ServerFactory, free_port


@pytest.mark.parametrize(
    "args",
    [
        ("token", "create", "alice", "--data-dir", "{d}"),
        ("token", "create", "--data-dir", "{d}", "alice"),
        ("token", "--data-dir", "{d}", "create", "alice"),
        ("--data-dir", "{d}", "token", "create", "alice"),
    ],
    ids=" ".join,
)
def test_server_token_options_go_anywhere(tmp_path: Path, args: tuple[str, ...]) -> None:
    d = str(tmp_path / "data")
    out = run_cli("server", *(a.format(d=d) for a in args))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("sb_")
    listed = run_cli("server", "token", "list", "--data-dir", d)
    assert listed.returncode == 0 and "\talice\tactive" in listed.stdout, listed.stderr


def test_token_commands_do_not_check_serving_settings(tmp_path: Path) -> None:
    d = str(tmp_path / "data")
    config = tmp_path / "c.toml"
    config.write_text("[faults]\nerror_rate = 7\n[server]\nport = 99999\n")
    env = {"SYNCBED_FAULTS_LATENCY_MS": "700000", "SYNCBED_SERVER_PORT": "high", "SYNCBED_LIMITS_DRY_RUN": "maybe"}
    for cmd in (("create", "alice"), ("list",), ("revoke", "alice")):
        out = run_cli("server", "token", *cmd, "--data-dir", d, "--config", str(config), env=env)
        assert out.returncode == 0, (cmd, out.stderr)
    served = run_cli("server", "--data-dir", d, "--port", "0", env=env, timeout=30)
    assert served.returncode == 2 and "error: configuration: " in served.stderr, served.stderr


@pytest.mark.parametrize("order", ["after", "before"])
def test_serve_takes_its_options_after_the_subcommand(tmp_path: Path, order: str) -> None:
    # LiveServer writes `server [command] --data-dir D --port P [args]`: "serve" first, or last.
    command, args = (["serve"], ["--no-limits"]) if order == "after" else ([], ["--no-limits", "serve"])
    srv = LiveServer(data_dir=tmp_path, port=free_port(), args=args, command=command)
    try:
        srv.start()  # up means /healthz answered 200
    finally:
        srv.stop(15)


@pytest.mark.parametrize(
    ("config", "args", "enabled", "dry_run"),
    [
        ("[limits]\nenabled = false\ndry_run = true\n", ("--limits", "--no-dry-run-limits"), True, False),
        ("", ("--no-limits", "--dry-run-limits"), False, True),  # the old spellings
        ("", ("serve", "--no-limits", "--dry-run-limits"), False, True),
    ],
)
def test_the_limit_flags_turn_a_file_setting_back(
    server_factory: ServerFactory, config: str, args: tuple[str, ...], enabled: bool, dry_run: bool
) -> None:
    srv = server_factory(config=config or None, args=args)
    view = httpx.get(srv.url + contract.LIMITER_PATH, headers=srv.admin_headers(), timeout=10).json()
    assert (view["enabled"], view["dry_run"]) == (enabled, dry_run)


def test_an_environment_setting_is_turned_back_by_a_flag(server_factory: ServerFactory) -> None:
    srv = server_factory(env={"SYNCBED_LIMITS_ENABLED": "false"}, args=("--limits",))
    view = httpx.get(srv.url + contract.LIMITER_PATH, headers=srv.admin_headers(), timeout=10).json()
    assert view["enabled"] is True


def test_flags_derived_from_the_schema_reach_the_running_server(server_factory: ServerFactory) -> None:
    """--cors-origins and --blocklist had no flag before the schema gave every key one."""
    origin = "https://app.example"
    srv = server_factory(args=("--cors-origins", f"{origin},https://b.example", "--blocklist", "127.0.0.2"))
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    r = httpx.options(srv.url + contract.SYNC_PATH, headers=preflight, timeout=10)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=srv.url, transport=transport, timeout=10) as blocked:
        assert blocked.get("/healthz").status_code == 403


@pytest.mark.parametrize(
    "args",
    [
        ("generate", "3", "--db", "{db}", "-v"),
        ("-v", "--db", "{db}", "generate", "3"),
        ("--db", "{db}", "generate", "3", "--verbose"),
    ],
    ids=" ".join,
)
def test_client_options_go_anywhere(tmp_path: Path, args: tuple[str, ...]) -> None:
    db = str(tmp_path / "o.db")
    out = run_cli("client", *(a.format(db=db) for a in args))
    assert out.returncode == 0, out.stderr
    stats = run_cli("client", "stats", "--json", "--db", db)
    assert stats.returncode == 0 and '"pending": 3' in stats.stdout, stats.stderr


def test_client_verbose_logs_after_the_command(tmp_path: Path) -> None:
    db = str(tmp_path / "o.db")
    assert run_cli("client", "generate", "2", "--db", db).returncode == 0
    out = run_cli(
        "client", "sync", "--db", db, "--server", "http://127.0.0.1:9", "--token", "t", "--max-retries", "0", "-v"
    )
    assert "INFO" in out.stderr or "WARNING" in out.stderr, out.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("server", "--version"),
        ("server", "token", "--version"),
        ("client", "--version"),
        ("client", "sync", "--version"),
        ("monitor", "--version"),
    ],
    ids=" ".join,
)
def test_version_comes_from_the_package_metadata(argv: tuple[str, ...]) -> None:
    out = run_cli(*argv, env={"HOME": os.environ.get("HOME", "/")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"syncbed {metadata.version('syncbed')}"


def test_the_version_is_written_down_once() -> None:
    version = metadata.version("syncbed")
    holders = [
        str(p.relative_to(ROOT))
        for part in ("server", "client", "monitor", "syncbed")
        for p in (ROOT / part).rglob("*.py")
        if f'"{version}"' in p.read_text() or f"'{version}'" in p.read_text()
    ]
    assert holders == []
