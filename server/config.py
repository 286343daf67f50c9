"""Server settings: one schema (the Structs below), read from TOML, then SYNCBED_* variables, then flags.

The environment names and the flags are derived from the schema (`SOURCES`): every field of
[server], [limits] and [faults] that is a value or a list of strings is also the variable
SYNCBED_<SECTION>_<KEY> and the flag --<key, with - for _>; two flags keep older names
(FLAG_ALIASES). The rule tables [[limits.throttle]] and [[limits.track]], and [limits.tiers], come only from the file.
msgspec checks types, unknown keys and ranges; a `__post_init__` checks what a type cannot say and
raises an error whose `field` names the key; server/config_errors.py words either as one line.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta, field
from msgspec import inspect as mi
from msgspec.structs import force_setattr

from server.client_ip import check_cidrs
from server.config_errors import explain, kind_name, show, unwrap
from syncbed import contract
from syncbed.bounds import BoundsError, rule_values
from syncbed.faults import FAULT_FIELDS
from syncbed.faults import validate as validate_faults
from syncbed.paths import default_data_dir, private_dir

KeyKind = Literal["ip", "user", "ip+user"]
Algorithm = Literal["fixed_window", "sliding_window", "gcra"]
LOG_LEVELS = ("debug", "info", "warning", "error")
STORE_SCHEMES = ("redis://", "rediss://", "unix://")
SQLITE = "sqlite"  # server.database's default: the data directory's file
DATABASE_SCHEMES = ("postgresql://", "postgres://")
# A tier's name: what `token create --tier` stores and [limits.tiers.NAME] names.
TIER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
DEFAULT_TIER = "default"  # every user without a tier: the rules' own limits
# An origin is scheme://host[:port] exactly as a browser sends it (no path, no trailing slash).
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s@]+$")

if TYPE_CHECKING:
    Seconds = float
else:

    class Seconds(float):
        """A rule's period. A float to every caller; a type msgspec does not know, so `_dec_hook` reads it."""


class ConfigError(ValueError):
    """A setting is unknown or has the wrong type or value; the message names it."""


class FieldError(ValueError):
    """A value its type admits but the server does not; `field` names it within its table."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A TOML table: an unknown key is an error, not a silent default."""


class ThrottleRule(_Table, frozen=True):
    """One [[limits.throttle]] or [[limits.track]] table."""

    name: str
    limit: int
    period: Seconds
    key: KeyKind = "ip"
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    algorithm: Algorithm = "fixed_window"

    def __post_init__(self) -> None:
        checked = rule_values(limit=self.limit, period=self.period)  # a BoundsError names limit or period
        force_setattr(self, "period", checked.period)  # a plain float from here on, whatever came in
        force_setattr(self, "methods", tuple(m.upper() for m in self.methods))


class BanRule(_Table, frozen=True):
    """One [[limits.fail2ban]] or [[limits.allow2ban]] table: Rack::Attack's Fail2Ban and Allow2Ban."""

    name: str
    maxretry: int  # failures within one findtime window that ban the key
    findtime: Seconds  # the window failures are counted in (fixed, aligned to the epoch, as Rack's)
    bantime: Seconds  # how long a ban lasts, from the moment it is set
    key: KeyKind = "ip"
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    statuses: tuple[int, ...] = ()  # count a matching request by its answer's status; () counts the request

    def __post_init__(self) -> None:
        try:
            findtime = rule_values(limit=self.maxretry, period=self.findtime).period
        except BoundsError as exc:
            raise FieldError("maxretry" if exc.field == "limit" else "findtime", exc.reason) from None
        try:
            bantime = rule_values(period=self.bantime).period
        except BoundsError as exc:
            raise FieldError("bantime", exc.reason) from None
        for i, status in enumerate(self.statuses):
            if not 100 <= status <= 599:
                raise FieldError(f"statuses[{i}]", f"an HTTP status is from 100 to 599, got {status}")
        force_setattr(self, "findtime", findtime)
        force_setattr(self, "bantime", bantime)
        force_setattr(self, "methods", tuple(m.upper() for m in self.methods))


DEFAULT_THROTTLES: tuple[ThrottleRule, ...] = (
    ThrottleRule("req/ip", 300, 300.0, "ip"),
    ThrottleRule("sync/ip", 10, 1.0, "ip", (contract.SYNC_PATH,), ("POST",)),
    ThrottleRule("sync/user", 5, 1.0, "user", (contract.SYNC_PATH,), ("POST",)),
)


def merge_throttles(custom: tuple[ThrottleRule, ...]) -> tuple[ThrottleRule, ...]:
    """A custom rule with a default's name replaces it in place; the others are appended."""
    by_name = {r.name: r for r in custom}
    merged = [by_name.pop(r.name, r) for r in DEFAULT_THROTTLES]
    return (*merged, *(r for r in custom if r.name in by_name))


def _doc(text: str, *, ge: float | None = None, le: float | None = None) -> Meta:
    """A field's help text (the flag's --help line) and its range."""
    return Meta(description=text, ge=ge, le=le)


class ServerSettings(_Table, frozen=True):
    host: Annotated[str, _doc("address to bind")] = "127.0.0.1"
    port: Annotated[int, _doc("port to bind; 0 picks a free one", ge=0, le=65535)] = 3001
    data_dir: Annotated[Path, _doc("database and admin token")] = field(default_factory=default_data_dir)
    database: Annotated[str, _doc("records, tokens and run history: sqlite (in data_dir) or a postgresql:// URL")] = (
        SQLITE
    )
    max_batch_records: Annotated[int, _doc("records per batch", ge=1, le=1_000_000)] = contract.DEFAULT_BATCH_RECORDS
    max_body_bytes: Annotated[int, _doc("bytes per request body", ge=1024)] = contract.DEFAULT_BODY_BYTES
    workers: Annotated[int, _doc("worker processes; more than 1 wants a redis:// store", ge=1, le=64)] = 1
    log_level: Annotated[str, _doc(" | ".join(LOG_LEVELS))] = "info"
    admin_token: Annotated[str | None, _doc("admin token to use instead of the one in the data dir")] = None
    cors_origins: Annotated[tuple[str, ...], _doc("origins whose pages may call the API, or *")] = ()
    header_timeout_s: Annotated[float, _doc("a request's headers must all arrive within this", ge=0.1, le=3600)] = 10.0
    body_timeout_s: Annotated[float, _doc("the longest silence allowed within a request body", ge=0.1, le=3600)] = 10.0
    bus: Annotated[str | None, _doc("event bus: memory or redis://host:port/db (default: limits.store if Redis)")] = (
        None
    )
    bus_maxlen: Annotated[int, _doc("events the Redis stream and each ring buffer keep for resume", ge=100)] = 10_000

    def __post_init__(self) -> None:
        level = self.log_level.lower()
        if level not in LOG_LEVELS:
            raise FieldError("log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        force_setattr(self, "log_level", level)
        database_problem = _database_problem(self.database)
        if database_problem is not None:
            raise FieldError("database", database_problem)
        if self.bus is not None and self.bus != "memory" and not self.bus.startswith(STORE_SCHEMES):
            raise FieldError("bus", f"expected 'memory' or a redis:// URL, got {self.bus!r}")
        for i, origin in enumerate(self.cors_origins):
            if origin != "*" and not _ORIGIN.match(origin):
                raise FieldError(
                    f"cors_origins[{i}]",
                    f"{origin!r} is not an origin; write scheme://host[:port] in lower case, no path or "
                    "trailing slash (e.g. 'https://app.example'), or '*'",
                )


def _database_problem(database: str) -> str | None:
    """Why `database` is neither 'sqlite' nor a PostgreSQL URL libpq can read, or None."""
    if database == SQLITE:
        return None
    if not database.startswith(DATABASE_SCHEMES):
        return f"expected 'sqlite' or a postgresql:// URL, got {database[:80]!r}"
    from psycopg import conninfo  # only for a PostgreSQL URL: the embedded default never imports the driver

    try:
        conninfo.conninfo_to_dict(database)
    except Exception as exc:  # psycopg.ProgrammingError, with libpq's own words
        return f"not a PostgreSQL URL libpq can read ({' '.join(str(exc).split())})"
    return None


class LimitsSettings(_Table, frozen=True):
    enabled: Annotated[bool, _doc("throttles on or off; off is the rollback, the blocklist still applies")] = True
    dry_run: Annotated[bool, _doc("decide and report, never refuse")] = False
    store: Annotated[str, _doc("limiter store: memory or redis://host:port/db")] = "memory"
    response: Annotated[
        contract.ResponseStyle, _doc("how refusals are worded: " + " | ".join(contract.RESPONSE_STYLES))
    ] = "syncbed"
    trusted_proxies: Annotated[tuple[str, ...], _doc("addresses or CIDRs whose X-Forwarded-For is believed")] = ()
    safelist: Annotated[tuple[str, ...], _doc("addresses or CIDRs never limited")] = ()
    blocklist: Annotated[tuple[str, ...], _doc("addresses or CIDRs always refused")] = ()
    throttles: tuple[ThrottleRule, ...] = field(default=DEFAULT_THROTTLES, name="throttle")
    tracks: tuple[ThrottleRule, ...] = field(default=(), name="track")
    fail2ban: tuple[BanRule, ...] = ()
    allow2ban: tuple[BanRule, ...] = ()
    # [limits.tiers.NAME]: throttle name -> that tier's limit (Rack::Attack's `limit:` per request).
    # Typed loosely so that __post_init__ can name the tier and rule of a wrong value (msgspec says `[...]`).
    tiers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.store != "memory" and not self.store.startswith(STORE_SCHEMES):
            raise FieldError("store", f"expected 'memory' or a redis:// URL, got {self.store!r}")
        for name in ("trusted_proxies", "safelist", "blocklist"):
            check_cidrs(getattr(self, name), name)  # a CidrError names the entry
        bans = [r.name for r in (*self.fail2ban, *self.allow2ban)]
        for name in bans:
            if bans.count(name) > 1:
                raise FieldError("fail2ban", f"two ban rules are named {name!r}: a 403 and its events name one rule")
        throttles = [r.name for r in merge_throttles(self.throttles)]
        for tier, limits in self.tiers.items():
            problem = tier_problem(tier)
            if problem is not None:
                raise FieldError(f"tiers.{tier}", problem)
            if not isinstance(limits, dict):
                raise FieldError(f"tiers.{tier}", f"expected a table of throttle = limit, got {show(limits)}")
            for rule, limit in limits.items():
                where = f"tiers.{tier}.{rule}"
                if not isinstance(limit, int) or isinstance(limit, bool):
                    raise FieldError(where, f"expected an integer (the tier's limit), got {show(limit)}")
                if rule not in throttles:
                    near = difflib.get_close_matches(rule, throttles, n=1, cutoff=0.6)
                    hint = f"did you mean {near[0]}?" if near else f"the throttles are {', '.join(throttles)}"
                    raise FieldError(where, f"no throttle of that name ({hint})")
                try:
                    rule_values(limit=limit)
                except BoundsError as exc:
                    raise FieldError(where, exc.reason) from None


def tier_problem(tier: str) -> str | None:
    """Why `tier` cannot name a tier, or None."""
    if tier == DEFAULT_TIER:
        return f"{DEFAULT_TIER!r} is the rules' own limits; a tier needs another name"
    if not TIER_NAME.fullmatch(tier):
        return f"{tier!r} is not a tier name: 1 to 32 of a-z, 0-9, - and _, starting with a letter or digit"
    return None


class FaultSettings(_Table, frozen=True):
    latency_ms: Annotated[int, _doc("each sync request's service time: answered no sooner, own work included")] = 0
    jitter_ms: Annotated[int, _doc("uniform extra latency up to this")] = 0
    error_rate: Annotated[float, _doc("fraction of sync requests answered 503")] = 0.0
    reset_rate: Annotated[float, _doc("fraction of sync requests dropped unanswered")] = 0.0

    def __post_init__(self) -> None:
        validate_faults({name: getattr(self, name) for name in FAULT_FIELDS})  # a FaultError names the field


class Settings(_Table, frozen=True):
    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)


def _dec_hook(kind: type, value: object) -> object:
    """The two types TOML does not have: a path ('~' expanded) and a period ('5m', '250ms' or seconds)."""
    if kind is Path:
        if not isinstance(value, str):
            raise ValueError(f"expected a path (a string), got {show(value)}")
        return Path(value).expanduser()
    if kind is Seconds:
        try:
            period = rule_values(period=value).period
        except BoundsError as exc:
            raise ValueError(exc.reason) from None
        assert period is not None  # a value was given
        return Seconds(period)
    raise NotImplementedError(kind)


# --- the names derived from the schema -----------------------------------------------------------

FLAG_ALIASES = {"limits.enabled": "limits", "limits.dry_run": "dry-run-limits"}  # the older spellings
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class Source(msgspec.Struct, frozen=True):
    """One setting reachable three ways: `section.key` in TOML, the variable `env`, the flag `flag`."""

    section: str
    key: str
    kind: mi.Type  # the field's type (its range and help text unwrapped)
    help: str
    spec: mi.Field

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return f"SYNCBED_{self.section}_{self.key}".upper()

    @property
    def flag(self) -> str:
        return "--" + FLAG_ALIASES.get(self.dotted, self.key.replace("_", "-"))

    def default(self) -> object:
        f = self.spec
        return f.default_factory() if f.default_factory is not msgspec.NODEFAULT else f.default

    def parse(self, text: str, name: str) -> object:
        """A variable's or a flag's text as the value TOML would give; `name` is where it came from."""
        if isinstance(self.kind, mi.VarTupleType):
            return [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(self.kind, mi.BoolType):
            low = text.strip().lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
        else:
            number = {mi.IntType: int, mi.FloatType: float}.get(type(self.kind))
            if number is None:
                return text
            try:
                return number(text)
            except ValueError:
                pass
        raise ConfigError(f"{self.dotted} (from {name}): expected {kind_name(self.kind)}, got {text!r}")


def as_text(value: object) -> str:
    """A setting's value as a variable carries it (what `Source.parse` reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _is_tables(kind: mi.Type) -> bool:
    """Rule tables and [limits.tiers]: no variable or flag can hold one."""
    return isinstance(kind, mi.DictType) or (
        isinstance(kind, mi.VarTupleType) and isinstance(kind.item_type, mi.StructType)
    )


def _sources() -> tuple[Source, ...]:
    found = []
    for section in _SCHEMA.fields:
        assert isinstance(section.type, mi.StructType)
        for f in section.type.fields:
            kind, help = unwrap(f.type)
            if not _is_tables(kind):
                found.append(Source(section.encode_name, f.encode_name, kind, help, f))
    return tuple(found)


def _struct_info(cls: type[msgspec.Struct]) -> mi.StructType:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return info


_SCHEMA = _struct_info(Settings)
SOURCES = _sources()
SETTINGS_PREFIXES = tuple(f"SYNCBED_{f.encode_name.upper()}_" for f in _SCHEMA.fields)


def settings_env(settings: Settings) -> dict[str, str]:
    """Every value a variable can carry, as variables (how `--workers N` hands its settings on)."""
    env = {}
    for s in SOURCES:
        value = getattr(getattr(settings, s.section), s.spec.name)
        if value is not None:
            env[s.env] = as_text(value)
    return env


def check_env_names(environ: Mapping[str, str]) -> None:
    """An unknown SYNCBED_SERVER_/LIMITS_/FAULTS_ variable is a typo: name it (other SYNCBED_* are not settings)."""
    known = sorted(s.env for s in SOURCES)
    for name in sorted(environ):
        if name.startswith(SETTINGS_PREFIXES) and name not in known:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f"did you mean {near[0]}?" if near else f"known: {', '.join(known)}"
            raise ConfigError(f"{name}: unknown environment variable ({hint})")


# --- reading ---------------------------------------------------------------------------------------


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
    flags: Mapping[str, object] | None,
    only: str | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The file's tables with the variables, then the flags, on top; and which variable or flag set a key.

    `flags` maps 'section.key' to a flag's text or switch (None: not given); `only` limits the layers to one key."""
    raw = _read_toml(config_file) if config_file is not None else {}
    environ = os.environ if env is None else env
    check_env_names(environ)
    origin: dict[str, str] = {}
    layers: list[tuple[Source, object, str]] = [(s, environ.get(s.env), s.env) for s in SOURCES]
    layers += [(s, (flags or {}).get(s.dotted), s.flag) for s in SOURCES]
    for s, value, name in layers:
        if value is None or only not in (None, s.dotted):
            continue
        table = raw.setdefault(s.section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{s.section}: expected a table, got {show(table)}")
        table[s.key] = s.parse(value, name) if isinstance(value, str) else value
        origin[s.dotted] = name
    return raw, origin


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """Settings from the file, then `env` (default os.environ), then `flags` ('section.key' -> text)."""
    raw, origin = _merge(config_file, env, flags)
    try:
        settings = msgspec.convert(raw, Settings, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(explain(exc, _SCHEMA, raw, origin)) from None
    limits = msgspec.structs.replace(settings.limits, throttles=merge_throttles(settings.limits.throttles))
    return msgspec.structs.replace(settings, limits=limits)


def load_data_dir(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Path:
    """Only server.data_dir (the token commands use nothing else, so nothing else may stop them)."""
    raw, origin = _merge(config_file, env, flags, only="server.data_dir")
    server = raw.get("server")
    value = server.get("data_dir") if isinstance(server, dict) else None
    if value is None:
        return default_data_dir()
    try:
        return msgspec.convert(value, Path, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(explain(exc, _SCHEMA, raw, origin, at=".server.data_dir")) from None


def load_database(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> str:
    """Only server.database (with server.data_dir, all the token commands read)."""
    raw, origin = _merge(config_file, env, flags, only="server.database")
    server = raw.get("server")
    value = server.get("database", SQLITE) if isinstance(server, dict) else SQLITE
    problem = _database_problem(value) if isinstance(value, str) else f"expected a string, got {show(value)}"
    if problem is not None:
        where = f" (from {origin['server.database']})" if "server.database" in origin else ""
        raise ConfigError(f"server.database{where}: {problem}")
    return str(value)


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
