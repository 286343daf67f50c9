"""Server settings: TOML file, then SYNCBED_* environment, then flags; defaults documented here."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from syncbed import contract
from syncbed.bounds import BoundsError, rule_values
from syncbed.faults import FaultError
from syncbed.faults import validate as validate_faults
from syncbed.paths import default_data_dir, private_dir

KeyKind = Literal["ip", "user", "ip+user"]
Algorithm = Literal["fixed_window", "sliding_window", "gcra"]
KEYS: tuple[str, ...] = ("ip", "user", "ip+user")
ALGORITHMS: tuple[str, ...] = ("fixed_window", "sliding_window", "gcra")


class ConfigError(ValueError):
    """A setting is unknown or has the wrong type or value; the message names it."""


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    name: str
    limit: int
    period: float
    key: KeyKind = "ip"
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    algorithm: Algorithm = "fixed_window"


DEFAULT_THROTTLES: tuple[ThrottleRule, ...] = (
    ThrottleRule("req/ip", 300, 300.0, "ip"),
    ThrottleRule("sync/ip", 10, 1.0, "ip", (contract.SYNC_PATH,), ("POST",)),
    ThrottleRule("sync/user", 5, 1.0, "user", (contract.SYNC_PATH,), ("POST",)),
)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 3001
    data_dir: Path = field(default_factory=default_data_dir)
    max_batch_records: int = contract.DEFAULT_BATCH_RECORDS
    max_body_bytes: int = contract.DEFAULT_BODY_BYTES
    workers: int = 1
    log_level: str = "info"
    admin_token: str | None = None
    cors_origins: tuple[str, ...] = ()
    header_timeout_s: float = 10.0  # a request's headers must all arrive within this (docs/security.md)
    body_timeout_s: float = 10.0  # the longest silence allowed within a request body


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    enabled: bool = True
    dry_run: bool = False
    store: str = "memory"
    trusted_proxies: tuple[str, ...] = ()
    safelist: tuple[str, ...] = ()
    blocklist: tuple[str, ...] = ()
    throttles: tuple[ThrottleRule, ...] = DEFAULT_THROTTLES
    tracks: tuple[ThrottleRule, ...] = ()


@dataclass(frozen=True, slots=True)
class FaultSettings:
    latency_ms: int = 0
    jitter_ms: int = 0
    error_rate: float = 0.0
    reset_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)


def _typed(where: str, value: object, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and kind is not bool and (kind is int or kind == (int, float)):
        raise ConfigError(f"{where}: expected {_kind_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return {"str": "a string", "int": "an integer", "bool": "true or false", "list": "a list"}.get(
        kind.__name__, kind.__name__
    )


def _str_list(where: str, value: object) -> tuple[str, ...]:
    items = _typed(where, value, list)
    return tuple(_typed(f"{where}[{i}]", v, str) for i, v in enumerate(items))


def _rule(where: str, raw: object) -> ThrottleRule:
    table = _typed(where, raw, dict)
    allowed = {"name", "limit", "period", "key", "paths", "methods", "algorithm"}
    for k in table:
        if k not in allowed:
            raise ConfigError(f"{where}.{k}: unknown key (known: {', '.join(sorted(allowed))})")
    for k in ("name", "limit", "period"):
        if k not in table:
            raise ConfigError(f"{where}: missing required key '{k}'")
    name = _typed(f"{where}.name", table["name"], str)
    try:
        checked = rule_values(limit=table["limit"], period=table["period"])
    except BoundsError as exc:
        raise ConfigError(f"{where}.{exc.field}: {exc.reason}") from None
    assert checked.limit is not None and checked.period is not None
    key = _typed(f"{where}.key", table.get("key", "ip"), str)
    if key not in KEYS:
        raise ConfigError(f"{where}.key: must be one of {', '.join(KEYS)}, got {key!r}")
    algorithm = _typed(f"{where}.algorithm", table.get("algorithm", "fixed_window"), str)
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"{where}.algorithm: must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    methods = tuple(m.upper() for m in _str_list(f"{where}.methods", table.get("methods", [])))
    return ThrottleRule(
        name=name,
        limit=checked.limit,
        period=checked.period,
        key=key,
        paths=_str_list(f"{where}.paths", table.get("paths", [])),
        methods=methods,
        algorithm=algorithm,
    )


def merge_throttles(custom: tuple[ThrottleRule, ...]) -> tuple[ThrottleRule, ...]:
    """A custom rule with a default's name replaces it in place; the others are appended."""
    by_name = {r.name: r for r in custom}
    merged = [by_name.pop(r.name, r) for r in DEFAULT_THROTTLES]
    return (*merged, *(r for r in custom if r.name in by_name))


Key = tuple[str, str]
# (section, key) -> (type, converter) for the scalar settings; env var SYNCBED_<SECTION>_<KEY>.
_SCALARS: dict[Key, type | tuple[type, ...]] = {
    ("server", "host"): str,
    ("server", "port"): int,
    ("server", "data_dir"): str,
    ("server", "max_batch_records"): int,
    ("server", "max_body_bytes"): int,
    ("server", "workers"): int,
    ("server", "log_level"): str,
    ("server", "admin_token"): str,
    ("server", "header_timeout_s"): (int, float),
    ("server", "body_timeout_s"): (int, float),
    ("limits", "enabled"): bool,
    ("limits", "dry_run"): bool,
    ("limits", "store"): str,
    ("faults", "latency_ms"): int,
    ("faults", "jitter_ms"): int,
    ("faults", "error_rate"): (int, float),
    ("faults", "reset_rate"): (int, float),
}
_CIDR_LISTS = (("limits", "trusted_proxies"), ("limits", "safelist"), ("limits", "blocklist"))
_LISTS = (*_CIDR_LISTS, ("server", "cors_origins"))
# Every setting an environment variable can carry (rules, being tables, come only from the file).
SETTING_KEYS: tuple[Key, ...] = (*_SCALARS, *_LISTS)
# An origin is scheme://host[:port] exactly as a browser sends it (no path, no trailing slash).
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s@]+$")
_TABLES = {("limits", "throttle"), ("limits", "track")}


def env_name(section: str, key: str) -> str:
    return f"SYNCBED_{section}_{key}".upper()


def _from_env(section: str, key: str, raw: str) -> object:
    kind = _SCALARS.get((section, key))
    name = env_name(section, key)
    if (section, key) in _LISTS:
        return [p.strip() for p in raw.split(",") if p.strip()]
    if kind is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if kind == (int, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    return raw


SETTINGS_PREFIXES = ("SYNCBED_SERVER_", "SYNCBED_LIMITS_", "SYNCBED_FAULTS_")
LOG_LEVELS = ("debug", "info", "warning", "error")


def known_env_names() -> list[str]:
    return sorted(env_name(section, key) for section, key in SETTING_KEYS)


def check_env_names(environ: Mapping[str, str]) -> None:
    """An unknown SYNCBED_SERVER_/LIMITS_/FAULTS_ variable is a typo: name it (other SYNCBED_* are not settings)."""
    known = known_env_names()
    known_set = set(known)
    for name in sorted(environ):
        if name.startswith(SETTINGS_PREFIXES) and name not in known_set:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f"did you mean {near[0]}?" if near else f"known: {', '.join(known)}"
            raise ConfigError(f"{name}: unknown environment variable ({hint})")


def _read_toml(config_file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(config_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{config_file}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_file}: not valid TOML: {exc}") from None


def _merge(
    config_file: Path | None,
    env: Mapping[str, str] | None,
    overrides: Mapping[str, object] | None,
    wanted: set[Key] | None = None,
) -> tuple[dict[str, dict[str, object]], dict[Key, str]]:
    """File, then environment, then flags; `wanted` limits which values are converted (None = all).

    Returns the merged values and, per key set outside the file, which variable or flag set it."""
    merged: dict[str, dict[str, object]] = {"server": {}, "limits": {}, "faults": {}}
    origin: dict[Key, str] = {}
    if config_file is not None:
        for section, table in _read_toml(config_file).items():
            if section not in merged:
                raise ConfigError(f"{section}: unknown section (known: server, limits, faults)")
            if not isinstance(table, dict):
                raise ConfigError(f"{section}: expected a table")
            for key, value in table.items():
                if (section, key) not in SETTING_KEYS and (section, key) not in _TABLES:
                    raise ConfigError(f"{section}.{key}: unknown key")
                merged[section][key] = value
    environ = os.environ if env is None else env
    check_env_names(environ)
    for section, key in SETTING_KEYS:
        name = env_name(section, key)
        if name in environ and (wanted is None or (section, key) in wanted):
            merged[section][key] = _from_env(section, key, environ[name])
            origin[(section, key)] = name
    for dotted, value in (overrides or {}).items():
        if value is not None:
            section, key = dotted.split(".", 1)
            merged[section][key] = value
            origin[(section, key)] = "the command line"
    return merged, origin


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build Settings; `overrides` maps 'section.key' to a flag's value (None = not given)."""
    merged, origin = _merge(config_file, env, overrides)
    try:
        return _build(merged)
    except ConfigError as exc:
        raise _with_origin(exc, origin) from None


def load_data_dir(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Path:
    """Only server.data_dir (the token commands use nothing else, so nothing else may stop them)."""
    merged, origin = _merge(config_file, env, overrides, wanted={("server", "data_dir")})
    if "data_dir" not in merged["server"]:
        return ServerSettings().data_dir
    try:
        return _data_dir(merged["server"]["data_dir"])
    except ConfigError as exc:
        raise _with_origin(exc, origin) from None


def _data_dir(value: object) -> Path:
    """server.data_dir as a path with ~ expanded; a ConfigError when it is not a string."""
    return Path(_typed("server.data_dir", value, str)).expanduser()


def _with_origin(exc: ConfigError, origin: Mapping[Key, str]) -> ConfigError:
    """'faults.latency_ms: ...' -> 'faults.latency_ms (from SYNCBED_FAULTS_LATENCY_MS): ...'."""
    head, sep, rest = str(exc).partition(": ")
    section, _, key = head.partition(".")
    where = origin.get((section, key.split("[", 1)[0]))
    if not sep or where is None:
        return exc
    return ConfigError(f"{head} (from {where}): {rest}")


def check_data_dir(path: Path) -> None:
    """The data directory exists (made 0700 if not) and takes a new file: else a ConfigError saying why."""
    try:
        private_dir(path)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"server.data_dir: cannot write to {path} ({exc.strerror or exc}); "
            "pass a writable --data-dir or fix the directory's permissions"
        ) from None


def _build(m: dict[str, dict[str, object]]) -> Settings:
    values: dict[str, dict[str, object]] = {"server": {}, "limits": {}, "faults": {}}
    for (section, key), kind in _SCALARS.items():
        if key in m[section]:
            values[section][key] = _typed(f"{section}.{key}", m[section][key], kind)
    # Every list's type first, then what its items must look like.
    lists = {(s, k): _str_list(f"{s}.{k}", m[s][k]) for s, k in _LISTS if k in m[s]}
    for (section, key), items in lists.items():
        values[section][key] = items
    for section, key in _CIDR_LISTS:
        for i, cidr in enumerate(lists.get((section, key), ())):
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                raise ConfigError(f"{section}.{key}[{i}]: {cidr!r} is not an IP address or CIDR range") from None
    for i, origin in enumerate(lists.get(("server", "cors_origins"), ())):
        if origin != "*" and not _ORIGIN.match(origin):
            raise ConfigError(
                f"server.cors_origins[{i}]: {origin!r} is not an origin; write scheme://host[:port] "
                "in lower case, no path or trailing slash (e.g. 'https://app.example'), or '*'"
            )
    srv = values["server"]
    if "data_dir" in srv:
        srv["data_dir"] = _data_dir(srv["data_dir"])
    for key, lo, hi in (("port", 0, 65535), ("max_batch_records", 1, 1_000_000), ("workers", 1, 64)):
        if key in srv and not lo <= int(srv[key]) <= hi:  # type: ignore[call-overload]
            raise ConfigError(f"server.{key}: must be between {lo} and {hi}, got {srv[key]}")
    if "log_level" in srv:
        level = str(srv["log_level"]).lower()
        if level not in LOG_LEVELS:
            raise ConfigError(f"server.log_level: must be one of {', '.join(LOG_LEVELS)}, got {srv['log_level']!r}")
        srv["log_level"] = level
    if "max_body_bytes" in srv and int(srv["max_body_bytes"]) < 1024:  # type: ignore[call-overload]
        raise ConfigError(f"server.max_body_bytes: must be at least 1024, got {srv['max_body_bytes']}")
    for key in ("header_timeout_s", "body_timeout_s"):
        if key in srv and not 0.1 <= float(srv[key]) <= 3600:  # type: ignore[arg-type]
            raise ConfigError(f"server.{key}: must be between 0.1 and 3600 seconds, got {srv[key]}")
    lim = values["limits"]
    store = str(lim.get("store", "memory"))
    if store != "memory" and not store.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"limits.store: expected 'memory' or a redis:// URL, got {store!r}")
    throttles = tuple(
        _rule(f"limits.throttle[{i}]", r)
        for i, r in enumerate(_typed("limits.throttle", m["limits"].get("throttle", []), list))
    )
    tracks = tuple(
        _rule(f"limits.track[{i}]", r) for i, r in enumerate(_typed("limits.track", m["limits"].get("track", []), list))
    )
    lim["throttles"] = merge_throttles(throttles)
    lim["tracks"] = tracks
    flt = values["faults"]
    try:
        flt.update(validate_faults(flt))  # the fault layer's own bounds, so it never refuses what passed here
    except FaultError as exc:
        raise ConfigError(f"faults.{exc.field}: {exc.reason}") from None
    return Settings(
        server=ServerSettings(**srv),  # type: ignore[arg-type]
        limits=LimitsSettings(**lim),  # type: ignore[arg-type]
        faults=FaultSettings(**flt),  # type: ignore[arg-type]
    )
