"""`python -m server`: run the sync server, or manage its bearer tokens."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from server import schema, tokens
from server.config import (
    LOG_LEVELS,
    SETTING_KEYS,
    ConfigError,
    Settings,
    check_data_dir,
    env_name,
    load_data_dir,
    load_settings,
)
from server.logs import configure_logging
from server.serving import uvicorn_options
from syncbed.cli import shared_options
from syncbed.gc_settle import settle
from syncbed.paths import SERVER_DB_FILE, default_data_dir

DESCRIPTION = """\
Run the syncbed server: POST /api/v1/data/sync with Rack::Attack-style throttles,
a live event stream and fault injection. Settings come from --config (TOML), then
SYNCBED_* environment variables (e.g. SYNCBED_SERVER_PORT, SYNCBED_LIMITS_STORE,
SYNCBED_FAULTS_LATENCY_MS), then these flags; the later wins.

  python -m server                          serve on 127.0.0.1:3001
  python -m server token create alice       print a new bearer token for alice
  python -m server token list               list tokens (never their secrets)
  python -m server token revoke alice       revoke alice's tokens (or one token / its id)

Options go before or after the subcommand (python -m server token list --data-dir DIR).
Token commands read only --config and --data-dir; serving settings are checked when serving.
"""


def _common() -> argparse.ArgumentParser:
    """Options every command reads: where the settings and the data live."""
    p = shared_options()
    p.add_argument("--config", type=Path, help="TOML config file (sections [server], [limits], [faults])")
    p.add_argument(
        "--data-dir",
        type=Path,
        help=f"database and admin token (default {default_data_dir()}, or $XDG_DATA_HOME)",
    )
    return p


def _serving() -> argparse.ArgumentParser:
    """Options only serving reads (the token commands neither take nor check them)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to bind (default 3001; 0 picks a free one)")
    p.add_argument("--workers", type=int, help="worker processes (default 1; >1 wants a redis:// limiter store)")
    p.add_argument("--log-level", choices=LOG_LEVELS, help="default info")
    p.add_argument("--admin-token", help="admin token to use instead of the one in the data dir")
    p.add_argument("--max-batch-records", type=int, help="records per batch (default 1000)")
    p.add_argument("--max-body-bytes", type=int, help="bytes per request body (default 2097152)")
    g = p.add_argument_group("limits")
    g.add_argument(
        "--limits",
        action=argparse.BooleanOptionalAction,
        help="throttles on (the default) or off: --no-limits is the rollback; either wins over the config file",
    )
    g.add_argument(
        "--dry-run-limits",
        action=argparse.BooleanOptionalAction,
        help="decide and report, never refuse; --no-dry-run-limits enforces again (default off)",
    )
    g.add_argument("--store", help="limiter store: memory (default) or redis://host:port/db")
    f = p.add_argument_group("faults")
    f.add_argument(
        "--latency-ms",
        type=int,
        help="each sync request's service time: answered no sooner than this, own work included (default 0)",
    )
    f.add_argument("--jitter-ms", type=int, help="uniform extra latency up to this (default 0)")
    f.add_argument("--error-rate", type=float, help="fraction of sync requests answered 503 (default 0)")
    f.add_argument("--reset-rate", type=float, help="fraction of sync requests dropped unanswered (default 0)")
    return p


def _parser() -> argparse.ArgumentParser:
    # Options come before or after the subcommand: each parser gets the same parents (syncbed/cli.py).
    common, serving = _common(), _serving()
    p = argparse.ArgumentParser(
        prog="python -m server",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common, serving],
    )
    sub = p.add_subparsers(dest="command", metavar="{serve,token}")
    sub.add_parser("serve", parents=[common, serving], help="run the server (the default)")
    tok = sub.add_parser("token", parents=[common], help="create, list or revoke bearer tokens")
    tsub = tok.add_subparsers(dest="token_command", required=True, metavar="{create,list,revoke}")
    create = tsub.add_parser("create", parents=[common], help="create USER if needed and print a new token on stdout")
    create.add_argument("user")
    tsub.add_parser("list", parents=[common], help="list tokens: id, user, created, revoked")
    revoke = tsub.add_parser("revoke", parents=[common], help="revoke a token, a token id, or every token of a user")
    revoke.add_argument("what")
    return p


_FLAGS = {
    "server.host": "host",
    "server.port": "port",
    "server.workers": "workers",
    "server.log_level": "log_level",
    "server.admin_token": "admin_token",
    "server.max_batch_records": "max_batch_records",
    "server.max_body_bytes": "max_body_bytes",
    "limits.enabled": "limits",
    "limits.dry_run": "dry_run_limits",
    "limits.store": "store",
    "faults.latency_ms": "latency_ms",
    "faults.jitter_ms": "jitter_ms",
    "faults.error_rate": "error_rate",
    "faults.reset_rate": "reset_rate",
}


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """'section.key' -> the flag's value; None where the flag was not given."""
    data_dir = getattr(args, "data_dir", None)
    flags = {key: getattr(args, name, None) for key, name in _FLAGS.items()}
    return {"server.data_dir": str(data_dir) if data_dir else None, **flags}


def _token_command(args: argparse.Namespace, data_dir: Path) -> int:
    try:
        conn = schema.connect(data_dir / SERVER_DB_FILE)
    except sqlite3.Error as exc:
        print(f"error: cannot open the token database {data_dir / SERVER_DB_FILE}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.token_command == "create":
            user = args.user.strip()
            if not 1 <= len(user) <= 64 or not user.isprintable():
                print("error: USER must be 1 to 64 printable characters", file=sys.stderr)
                return 2
            print(tokens.create_token(conn, user))
            return 0
        if args.token_command == "list":
            rows = tokens.list_tokens(conn)
            if not rows:
                print("no tokens yet: python -m server token create USER", file=sys.stderr)
            for t in rows:
                state = "revoked" if t.revoked else "active"
                print(f"{t.lookup}\t{t.user}\t{state}")
            return 0
        n = tokens.revoke(conn, args.what)
        if n == 0:
            print(f"error: no active token or user matches {args.what!r}", file=sys.stderr)
            return 1
        print(f"revoked {n} token(s)")
        return 0
    finally:
        conn.close()


def _serve(settings: Settings, config_file: Path | None) -> int:
    import uvicorn

    from server.app import create_app
    from server.storage import StorageUnavailable, check_database

    s = settings.server
    try:  # once, here: before workers start, and as a sentence instead of a lifespan traceback
        check_database(s.data_dir / SERVER_DB_FILE)
    except StorageUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    common = uvicorn_options(
        host=s.host, port=s.port, log_config=None, access_log=False, timeout_graceful_shutdown=5, lifespan="on"
    )
    if s.workers > 1:
        # Workers re-read settings from the environment, so hand them every resolved value.
        from server.admin_token import ensure_admin_token

        ensure_admin_token(s.data_dir, s.admin_token)  # once, before workers race to create it
        os.environ.update(_settings_env(settings, config_file))
        uvicorn.run("server.app:from_environment", factory=True, workers=s.workers, **common)
        return 0
    config = uvicorn.Config(create_app(settings), **common)
    server = uvicorn.Server(config)
    settle()
    server.run()
    return 0 if server.started else 1


def _settings_env(settings: Settings, config_file: Path | None) -> dict[str, str]:
    env = {} if config_file is None else {"SYNCBED_CONFIG": str(config_file)}
    # Rules (throttles, tracks) have no variable: they reach the workers through the config file.
    for section, key in SETTING_KEYS:
        value = getattr(getattr(settings, section), key)
        if isinstance(value, str | int | float | bool | Path):
            env[env_name(section, key)] = str(value).lower() if isinstance(value, bool) else str(value)
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            env[env_name(section, key)] = ",".join(value)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    given = getattr(args, "config", None)
    config_file = given or (Path(os.environ["SYNCBED_CONFIG"]) if os.environ.get("SYNCBED_CONFIG") else None)
    try:
        if args.command == "token":
            # Only the data directory: a bad serving setting must not stop token management.
            data_dir = load_data_dir(config_file, overrides=_overrides(args))
            check_data_dir(data_dir)
        else:
            settings = load_settings(config_file, overrides=_overrides(args))
            check_data_dir(settings.server.data_dir)
    except ConfigError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        return _token_command(args, data_dir)
    configure_logging(settings.server.log_level)
    try:
        return _serve(settings, config_file)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it already shut down for: no traceback
        return 130


if __name__ == "__main__":
    sys.exit(main())
