"""Settings from one schema: every field by TOML, variable and flag; rules from the file; one line per error."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from server.__main__ import flags, parser
from server.client_ip import CidrError
from server.config import (
    DEFAULT_THROTTLES,
    FLAG_ALIASES,
    SOURCES,
    ConfigError,
    FaultSettings,
    LimitsSettings,
    Settings,
    check_env_names,
    load_data_dir,
    load_settings,
    settings_env,
)
from server.throttle import Limiter
from syncbed.faults import FAULT_FIELDS
from tests.cli_run import run_cli, server_refuses
from tests.conftest import ROOT

# A value unlike the default for every field a variable and a flag can set. A field added to the
# schema without one here fails test_every_field_is_sampled_or_file_only: add it, and the walk below
# proves it reachable all three ways.
SAMPLES: dict[str, object] = {
    "server.host": "127.0.0.2",
    "server.port": 3999,
    "server.data_dir": Path("/srv/syncbed-sample"),
    "server.database": "postgresql://syncbed@127.0.0.1:5432/syncbed",
    "server.max_batch_records": 500,
    "server.max_body_bytes": 4096,
    "server.workers": 2,
    "server.log_level": "debug",
    "server.admin_token": "sample-admin-token",
    "server.cors_origins": ("https://app.example", "https://other.example"),
    "server.header_timeout_s": 2.5,
    "server.body_timeout_s": 3.5,
    "server.bus": "redis://127.0.0.1:6379/2",
    "server.bus_maxlen": 5000,
    "limits.enabled": False,
    "limits.dry_run": True,
    "limits.store": "redis://127.0.0.1:6379/1",
    "limits.response": "rack-attack-retry-after",
    "limits.trusted_proxies": ("10.0.0.0/8", "127.0.0.1"),
    "limits.safelist": ("192.0.2.10",),
    "limits.blocklist": ("198.51.100.0/24", "2001:db8::/32"),
    "faults.latency_ms": 300,
    "faults.jitter_ms": 50,
    "faults.error_rate": 0.25,
    "faults.reset_rate": 0.125,
}
FILE_ONLY = {
    "limits.throttles",
    "limits.tracks",
    "limits.tiers",
    "limits.fail2ban",
    "limits.allow2ban",
}  # tables: no variable or flag can hold one


def schema_fields() -> set[str]:
    """Every field of every section, walked from the Structs themselves (not from config.SOURCES)."""
    found = set()
    for section in msgspec.structs.fields(Settings):
        table = section.default_factory()
        found |= {f"{section.name}.{f.name}" for f in msgspec.structs.fields(table)}
    return found


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return json.dumps(str(value)) if isinstance(value, str | Path) else repr(value)


def text_value(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def read(settings: Settings, dotted: str) -> object:
    section, name = dotted.split(".")
    return getattr(getattr(settings, section), name)


def test_every_field_is_sampled_or_file_only() -> None:
    assert set(SAMPLES) | FILE_ONLY == schema_fields()
    assert {f"{s.section}.{s.spec.name}" for s in SOURCES} == set(SAMPLES)
    assert all(read(Settings(), k) != v for k, v in SAMPLES.items())  # else a source could not show


@pytest.mark.parametrize("dotted", sorted(SAMPLES))
def test_every_field_is_reachable_by_toml_variable_and_flag(tmp_path: Path, dotted: str) -> None:
    [s] = [s for s in SOURCES if f"{s.section}.{s.spec.name}" == dotted]
    want = SAMPLES[dotted]
    config = tmp_path / "c.toml"
    config.write_text(f"[{s.section}]\n{s.key} = {toml_value(want)}\n")
    assert read(load_settings(config, env={}), dotted) == want
    assert s.env == f"SYNCBED_{s.section}_{s.key}".upper()
    assert read(load_settings(env={s.env: text_value(want)}), dotted) == want
    assert s.flag == "--" + FLAG_ALIASES.get(dotted, s.key.replace("_", "-"))
    switch = isinstance(want, bool)
    argv = [s.flag if want else "--no-" + s.flag[2:]] if switch else [s.flag, text_value(want)]
    token_too = dotted in ("server.data_dir", "server.database")  # the token commands read these two as well
    for where in ([], ["serve"], ["token", "list"]) if token_too else ([], ["serve"]):
        args = parser().parse_args([*where, *argv])
        assert read(load_settings(env={}, flags=flags(args)), dotted) == want, where


def test_a_flag_wins_over_a_variable_which_wins_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server]\nport = 1\nworkers = 2\nhost = '127.0.0.3'\n")
    args = parser().parse_args(["--port", "3"])
    got = load_settings(config, env={"SYNCBED_SERVER_PORT": "2", "SYNCBED_SERVER_WORKERS": "4"}, flags=flags(args))
    assert (got.server.port, got.server.workers, got.server.host) == (3, 4, "127.0.0.3")


def test_the_variables_handed_to_workers_rebuild_the_same_settings(tmp_path: Path) -> None:
    tables: dict[str, list[str]] = {}
    for dotted, value in SAMPLES.items():
        section, key = dotted.split(".")
        tables.setdefault(section, []).append(f"{key} = {toml_value(value)}\n")
    config = tmp_path / "c.toml"
    config.write_text("".join(f"[{section}]\n" + "".join(lines) for section, lines in tables.items()))
    settings = load_settings(config, env={})
    env = settings_env(settings)
    assert set(env) == {s.env for s in SOURCES}  # admin_token included: it was set
    assert load_settings(env=env) == settings


def test_booleans_from_text_take_the_usual_words() -> None:
    for word, want in [("1", True), ("yes", True), ("ON", True), ("true", True), ("0", False), ("off", False)]:
        assert load_settings(env={"SYNCBED_LIMITS_DRY_RUN": word}).limits.dry_run is want
    assert load_settings(env={"SYNCBED_SERVER_CORS_ORIGINS": " https://a.example , ,"}).server.cors_origins == (
        "https://a.example",
    )


def test_fault_fields_are_the_fault_layers_names() -> None:
    assert tuple(f.name for f in msgspec.structs.fields(FaultSettings)) == FAULT_FIELDS


def test_a_config_throttle_with_a_default_name_replaces_it_others_are_added(tmp_path: Path) -> None:
    cfg = tmp_path / "limits.toml"
    cfg.write_text(
        '[[limits.throttle]]\nname = "sync/user"\nlimit = 50\nperiod = "1s"\nkey = "user"\n'
        'paths = ["/api/v1/data/sync"]\nmethods = ["post"]\nalgorithm = "gcra"\n'
        '[[limits.throttle]]\nname = "count/ip"\nlimit = 2\nperiod = "5m"\n'
        '[[limits.track]]\nname = "all"\nlimit = 9\nperiod = 250\n'
    )
    limits = load_settings(cfg, env={}).limits
    rules = limits.throttles
    assert [r.name for r in rules] == ["req/ip", "sync/ip", "sync/user", "count/ip"]
    assert rules[2].limit == 50 and rules[2].algorithm == "gcra" and rules[2].methods == ("POST",)
    assert rules[3].period == 300.0 and type(rules[3].period) is float
    assert [(t.name, t.period) for t in limits.tracks] == [("all", 250.0)]
    assert DEFAULT_THROTTLES[2].limit == 5


def test_the_example_config_loads_and_builds_an_engine() -> None:
    settings = load_settings(ROOT / "examples" / "limits.toml", env={})
    lim = Limiter(settings.limits)
    assert [(r["name"], r["kind"], r["algorithm"]) for r in lim.snapshot()] == [
        ("req/ip", "throttle", "fixed_window"),
        ("sync/ip", "throttle", "fixed_window"),
        ("sync/user", "throttle", "gcra"),
        ("runs/ip+user", "throttle", "sliding_window"),
        ("sync/user", "track", "fixed_window"),
    ]
    assert "198.51.100.7" in lim.blocklist and "192.0.2.10" in lim.safelist
    assert {r.name: r.tiers for r in lim.describe().rules if r.tiers} == {
        "sync/ip": {"premium": 20},
        "sync/user": {"premium": 10},
    }


def test_bad_cidrs_are_refused_with_the_setting_and_entry_named() -> None:
    with pytest.raises(CidrError, match=r"^blocklist\[1\]: '10.0.0.0/33' is not an IP"):
        LimitsSettings(blocklist=("10.0.0.1", "10.0.0.0/33"))
    with pytest.raises(ConfigError, match=r"^limits\.blocklist\[1\] \(from SYNCBED_LIMITS_BLOCKLIST\): '10.0.0.0/33'"):
        load_settings(env={"SYNCBED_LIMITS_BLOCKLIST": "10.0.0.1, 10.0.0.0/33"})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[server]\nport = "x"', "server.port: expected an integer, got 'x'"),
        ("[server]\nport = 99999", "server.port: must be between 0 and 65535, got 99999"),
        ("[server]\nmax_body_bytes = 10", "server.max_body_bytes: must be at least 1024, got 10"),
        ("[server]\nheader_timeout_s = 0.01", "server.header_timeout_s: must be between 0.1 and 3600, got 0.01"),
        ("[server]\nportt = 1", "server.portt: unknown key (did you mean port?)"),
        ("[srv]\nport = 1", "srv: unknown section (did you mean server?)"),
        ("[server]\ndata_dir = 3", "server.data_dir: expected a path (a string), got 3"),
        ('[server]\nlog_level = "loud"', "server.log_level: must be one of debug, info, warning, error, got 'loud'"),
        ("[server]\nadmin_token = 3", "server.admin_token: expected a string, got 3"),
        ("server = 1", "server: expected a table, got 1"),
        ('[limits]\nstore = "x"', "limits.store: expected 'memory' or a redis:// URL, got 'x'"),
        ('[limits]\nsafelist = "x"', "limits.safelist: expected a list, got 'x'"),
        ('[limits]\nenabled = "yes"', "limits.enabled: expected true or false, got 'yes'"),
        ("[faults]\nlatency_ms = 700000", "faults.latency_ms: must be between 0 and 600000 ms, got 700000"),
        ("[faults]\nlatency_ms = 1.5", "faults.latency_ms: expected an integer, got 1.5"),
        ("[faults]\nerror_rate = true", "faults.error_rate: expected a number, got true"),
        ("[faults]\nreset_rate = nan", "faults.reset_rate: must be between 0 and 1, got nan"),
        ('[[limits.throttle]]\nname = "a"\nperiod = 1', "limits.throttle[0]: missing required key 'limit'"),
        (
            '[[limits.throttle]]\nname = "a"\nlimit = 1\nperiod = 1\nalgo = "gcra"',
            "limits.throttle[0].algo: unknown key (did you mean algorithm?)",
        ),
        (
            '[[limits.track]]\nname = "a"\nlimit = 1\nperiod = 1\nkey = "x"',
            "limits.track[0].key: must be one of ",
        ),
        ('[[limits.throttle]]\nname = "a"\nlimit = 0\nperiod = 1', "limits.throttle[0].limit: must be from 1 to"),
        ('[[limits.throttle]]\nname = "a"\nlimit = 1\nperiod = "8d"', "limits.throttle[0].period: must be from 1 ms"),
        ("[limits]\nthrottle = 3", "limits.throttle: expected a list, got 3"),
    ],
)
def test_a_bad_file_value_is_named_by_its_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    ("env", "flag", "message"),
    [
        (
            {"SYNCBED_SERVER_PORT": "high"},
            (),
            "server.port (from SYNCBED_SERVER_PORT): expected an integer, got 'high'",
        ),
        ({}, ("--port", "high"), "server.port (from --port): expected an integer, got 'high'"),
        ({}, ("--workers", "99"), "server.workers (from --workers): must be between 1 and 64, got 99"),
        (
            {"SYNCBED_LIMITS_DRY_RUN": "maybe"},
            (),
            "limits.dry_run (from SYNCBED_LIMITS_DRY_RUN): expected true or false",
        ),
        ({}, ("--error-rate", "2"), "faults.error_rate (from --error-rate): must be between 0 and 1, got 2.0"),
        ({}, ("--safelist", "10.0.0.1,nope"), "limits.safelist[1] (from --safelist): 'nope' is not an IP address"),
        ({}, ("--cors-origins", "https://a.example/"), "server.cors_origins[0] (from --cors-origins): 'https://a"),
        ({"SYNCBED_SERVER_HOST": "x"}, ("--log-level", "loud"), "server.log_level (from --log-level): must be one"),
    ],
)
def test_the_cli_names_the_key_and_where_it_came_from(
    tmp_path: Path, env: dict[str, str], flag: tuple[str, ...], message: str
) -> None:
    line = server_refuses(tmp_path / "data", *flag, env=env)
    assert line.startswith(f"error: configuration: {message}"), line


def test_the_cli_names_a_bad_file_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[faults]\nlatncy_ms = 5\n")
    line = server_refuses(tmp_path / "data", "--config", str(config))
    assert line == "error: configuration: faults.latncy_ms: unknown key (did you mean latency_ms?)", line
    config.write_text("[server]\nmax_batch_records = 0\n")
    line = server_refuses(tmp_path / "data", "--config", str(config))
    assert line == "error: configuration: server.max_batch_records: must be between 1 and 1000000, got 0", line


def test_help_lists_every_derived_flag_and_variable() -> None:
    out = run_cli("server", "--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for s in SOURCES:
        assert s.flag in text and f"${s.env}" in text.replace("- ", "-"), s.dotted
    assert "--no-limits" in text and "--no-dry-run-limits" in text


def test_the_token_commands_read_only_the_data_dir(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\ndata_dir = "~/syncbed-sample"\nport = "nope"\n[faults]\nerror_rate = 7\n')
    assert load_data_dir(config, env={"SYNCBED_FAULTS_LATENCY_MS": "x"}) == Path("~/syncbed-sample").expanduser()
    assert load_data_dir(config, env={"SYNCBED_SERVER_DATA_DIR": "/srv/a"}, flags={"server.data_dir": "/srv/b"}) == (
        Path("/srv/b")
    )
    config.write_text("[server]\ndata_dir = 5\n")
    with pytest.raises(ConfigError, match=r"^server\.data_dir: expected a path \(a string\), got 5$"):
        load_data_dir(config, env={})


def test_unknown_setting_variables_are_typos_other_syncbed_names_are_not() -> None:
    check_env_names({"SYNCBED_TOKEN": "x", "SYNCBED_SERVER": "http://127.0.0.1:1", "SYNCBED_CONFIG": "c.toml"})
    with pytest.raises(ConfigError, match=r"^SYNCBED_LIMITS_SAFELST: unknown .*did you mean SYNCBED_LIMITS_SAFELIST"):
        check_env_names({"SYNCBED_LIMITS_SAFELST": "x"})


def test_the_readme_lists_every_setting_with_its_flag() -> None:
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for s in SOURCES:
        assert f"`{s.flag}`" in section, s.flag
        assert f"`{s.dotted}`" in section or f"`{s.key}`" in section, s.dotted
