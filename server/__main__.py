"""`python -m server`: run the sync server, or manage its bearer tokens."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from msgspec import inspect as mi

from server import tokens
from server.config import (
    DEFAULT_TIER,
    SOURCES,
    SQLITE,
    ConfigError,
    Settings,
    Source,
    as_text,
    check_data_dir,
    load_data_dir,
    load_database,
    load_settings,
    settings_env,
    tier_problem,
)
from server.logs import configure_logging
from server.serving import uvicorn_options
from syncbed.cli import shared_options
from syncbed.gc_settle import settle
from syncbed.paths import SERVER_DB_FILE

DESCRIPTION = """\
Run the syncbed server: POST /api/v1/data/sync with Rack::Attack-style throttles,
a live event stream and fault injection. Settings come from --config (TOML), then
SYNCBED_* environment variables, then these flags; the later wins. Every key of
[server], [limits] and [faults] is all three: server.port is SYNCBED_SERVER_PORT
and --port (lists comma-separated; --limits and --dry-run-limits are the flags of
limits.enabled and limits.dry_run). Rules ([[limits.throttle]]) and tiers
([limits.tiers.NAME]) come only from the file.

  python -m server                          serve on 127.0.0.1:3001
  python -m server token create alice       print a new bearer token for alice
  python -m server token create bob --tier premium
                                            ... for bob, who gets [limits.tiers.premium]'s limits
  python -m server token tier alice premium move a user to a tier (default: the rules' own)
  python -m server token list               list tokens (never their secrets) and tiers
  python -m server token revoke alice       revoke alice's tokens (or one token / its id)

Options go before or after the subcommand (python -m server token list --data-dir DIR).
Token commands read only --config, --data-dir and --database; serving settings are checked when serving.
"""
# The settings the token commands read too; every other flag is for serving only.
_COMMON = ("server.data_dir", "server.database")


def _add_flag(group: argparse._ActionsContainer, s: Source) -> None:
    """The flag of one schema field: its help from the schema, its default and its variable shown."""
    default = s.default()
    shown = "" if default in (None, ()) else f"default {as_text(default)}; "
    listed = ", comma-separated" if isinstance(s.kind, mi.VarTupleType) else ""
    help = f"{s.help}{listed} ({shown}${s.env})".replace("%", "%%")
    if isinstance(s.kind, mi.BoolType):
        group.add_argument(s.flag, dest=s.dotted, action=argparse.BooleanOptionalAction, help=help)
    else:  # text, read by the same rule as the variable's, so a bad value gets the same one line
        group.add_argument(s.flag, dest=s.dotted, metavar=s.key.upper(), help=help)


def _common() -> argparse.ArgumentParser:
    """Options every command reads: where the settings and the data live."""
    p = shared_options()
    p.add_argument("--config", type=Path, help="TOML config file (sections [server], [limits], [faults])")
    for s in SOURCES:
        if s.dotted in _COMMON:
            _add_flag(p, s)
    return p


def _serving() -> argparse.ArgumentParser:
    """Options only serving reads (the token commands neither take nor check them)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    groups = {s.section: p.add_argument_group(s.section) for s in SOURCES}
    for s in SOURCES:
        if s.dotted not in _COMMON:
            _add_flag(groups[s.section], s)
    return p


def parser() -> argparse.ArgumentParser:
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
    tsub = tok.add_subparsers(dest="token_command", required=True, metavar="{create,tier,list,revoke}")
    create = tsub.add_parser("create", parents=[common], help="create USER if needed and print a new token on stdout")
    create.add_argument("user")
    create.add_argument("--tier", help="put USER in this tier ([limits.tiers.TIER]); without it a user keeps theirs")
    tier = tsub.add_parser("tier", parents=[common], help=f"put USER in TIER ({DEFAULT_TIER}: the rules' own limits)")
    tier.add_argument("user")
    tier.add_argument("tier")
    tsub.add_parser("list", parents=[common], help="list tokens: id, user, state, tier")
    revoke = tsub.add_parser("revoke", parents=[common], help="revoke a token, a token id, or every token of a user")
    revoke.add_argument("what")
    return p


def flags(args: argparse.Namespace) -> dict[str, object]:
    """'section.key' -> the flag's text (or a switch's bool) for every flag given."""
    return {s.dotted: getattr(args, s.dotted) for s in SOURCES if getattr(args, s.dotted, None) is not None}


def _user_and_tier(args: argparse.Namespace, tiers: set[str] | None) -> tuple[str, str | None] | str:
    """The command's USER and tier (None: unchanged or default), or the error to print."""
    user = args.user.strip()
    if not 1 <= len(user) <= 64 or not user.isprintable():
        return "USER must be 1 to 64 printable characters"
    tier = getattr(args, "tier", None)
    if tier is None or (tier == DEFAULT_TIER and args.token_command == "tier"):
        return user, None
    problem = tier_problem(tier)
    if problem is not None:
        return f"--tier: {problem}" if args.token_command == "create" else f"TIER: {problem}"
    if tiers is not None and tier not in tiers:
        listed = ", ".join(sorted(tiers)) or "none"
        print(
            f"note: the configuration has no [limits.tiers.{tier}] (its tiers: {listed}); "
            f"{user} gets the rules' own limits until it does",
            file=sys.stderr,
        )
    return user, tier


def _token_command(args: argparse.Namespace, data_dir: Path, database: str, tiers: set[str] | None) -> int:
    from server.database import token_database
    from server.storage import StorageUnavailable

    where = token_database(database, data_dir)
    try:
        conn = tokens.connect(where)
    except sqlite3.Error as exc:
        print(f"error: cannot open the token database {where}: {exc}", file=sys.stderr)
        return 2
    except StorageUnavailable as exc:  # PostgreSQL: unreachable, or a schema this server does not know
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.token_command in ("create", "tier"):
            checked = _user_and_tier(args, tiers)
            if isinstance(checked, str):
                print(f"error: {checked}", file=sys.stderr)
                return 2
            user, tier = checked
            if args.token_command == "create":
                print(tokens.create_token(conn, user, tier))
            else:
                tokens.set_tier(conn, user, tier)
                print(f"{user} is in tier {tier or DEFAULT_TIER} (within a second on a running server)")
            return 0
        if args.token_command == "list":
            rows = tokens.list_tokens(conn)
            if not rows:
                print("no tokens yet: python -m server token create USER", file=sys.stderr)
            for t in rows:
                state = "revoked" if t.revoked else "active"
                print(f"{t.lookup}\t{t.user}\t{state}\t{t.tier or DEFAULT_TIER}")
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
        if s.database == SQLITE:
            check_database(s.data_dir / SERVER_DB_FILE)
        else:  # reachable, and the schema created or of this server's version
            tokens.connect(s.database).close()
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
    # Rules (throttles, tracks) have no variable: they reach the workers through the config file.
    return {**({} if config_file is None else {"SYNCBED_CONFIG": str(config_file)}), **settings_env(settings)}


def _configured_tiers(config_file: Path | None, args: argparse.Namespace) -> set[str] | None:
    """The tiers the configuration names, to warn of a typo; None when the settings do not load."""
    try:
        return set(load_settings(config_file, flags=flags(args)).limits.tiers)
    except ConfigError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    given = getattr(args, "config", None)
    config_file = given or (Path(os.environ["SYNCBED_CONFIG"]) if os.environ.get("SYNCBED_CONFIG") else None)
    try:
        if args.command == "token":
            # Only where the data lives: a bad serving setting must not stop token management.
            data_dir = load_data_dir(config_file, flags=flags(args))
            database = load_database(config_file, flags=flags(args))
            check_data_dir(data_dir)
        else:
            settings = load_settings(config_file, flags=flags(args))
            check_data_dir(settings.server.data_dir)
    except ConfigError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        return _token_command(args, data_dir, database, _configured_tiers(config_file, args))
    configure_logging(settings.server.log_level)
    try:
        return _serve(settings, config_file)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it already shut down for: no traceback
        return 130


if __name__ == "__main__":
    sys.exit(main())
