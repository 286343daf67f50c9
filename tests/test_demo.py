"""The README's demo command, in its quick mode, end to end: real server, real clients, each act telling its story."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.demo_act import next_phase
from harness.demo_acts import SEED_ACTS, binding_period, bound, rules_at
from syncbed.contract import SYNC_PATH
from syncbed.physics import FIXED_WINDOW, lower_bound
from syncbed.responses import RuleSettings

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(
    r"│ (?P<n>\d)\. (?P<act>[\w' ]+?)\s+│ (?P<client>\w+)\s+│ (?P<status>\w+)\s+│\s+(?P<time>\d+\.\d\d) │"
    r"\s+(?P<t429>\d+) │\s+(?P<requests>\d+) │\s+(?P<batches>\d+) │\s+(?P<bound>\d+\.\d\d) │\s+(?P<ratio>\d+\.\d\d)x │"
)


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_quick_demo_plays_every_act_as_its_story_says_and_ends_with_a_summary() -> None:
    r = demo("--quick")
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "Traceback" not in r.stderr
    rows = {m["act"]: m for m in ROW.finditer(out)}
    assert list(rows) == [act.name for act in SEED_ACTS], out
    assert all(m["status"] == "complete" for m in rows.values()), out
    seconds = {name: float(m["time"]) for name, m in rows.items()}
    t429 = {name: int(m["t429"]) for name, m in rows.items()}
    # Sequential is the slowest of the plain acts; the plan's client and aggressive draw 429s; adaptive's
    # probing first burst at most one window's quota plus one.
    assert seconds["sequential"] == max(v for k, v in seconds.items() if k != "faults live"), out
    # The plan's second group of five comes 0.3 s into a window whose five are spent: refused whole.
    assert t429["sequential"] == 0 and t429["plan's client"] == 5 and t429["aggressive"] > 0, out
    assert t429["adaptive"] <= 5 + 1 and t429["conservative"] == 0, out
    for name, m in rows.items():
        # A 429 is a request beyond the batch's own; the plan's client and ours alike.
        assert int(m["requests"]) >= int(m["batches"]) + (t429[name] if name != "faults live" else 0), m.group(0)
        assert float(m["ratio"]) >= 0.99, m.group(0)  # no act beats its phase-aware bound
    # The live change was made, and said so, while the last act ran.
    assert "admin API: error_rate 0.25, sync/user 3/1s" in out
    assert "server count: 70,000/70,000 records - exact" in out
    summary = out.split("\nsummary\n", 1)[1]
    assert "No act beat its phase-aware bound" in summary and "BUG" not in summary
    assert "nothing lost, nothing doubled" in summary
    assert re.search(r"demo finished in \d+ s", out)


def test_the_demo_against_a_stock_rack_attack_server_says_so_and_every_act_completes() -> None:
    r = demo("--quick", "--response", "rack-attack", "--records", "3000")
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "the server answers in the rack-attack response style" in " ".join(out.split())
    rows = {m["act"]: m for m in ROW.finditer(out)}
    assert list(rows) == [act.name for act in SEED_ACTS] and all(m["status"] == "complete" for m in rows.values())
    assert "server count: 21,000/21,000 records - exact" in out


def rule(name: str, limit: int, period: float, paths: list[str], enabled: bool = True) -> RuleSettings:
    return RuleSettings(
        name, "throttle", limit, period, "user", paths, ["POST"] if paths else [], FIXED_WINDOW, enabled
    )


def test_an_act_meets_the_sync_rules_at_their_phase_and_its_bound_is_the_schedule() -> None:
    seed = [rule("req/ip", 300, 300.0, []), rule("sync/user", 5, 1.0, [SYNC_PATH]), rule("runs", 1, 1.0, ["/x"]),
            rule("off", 1, 1.0, [SYNC_PATH], enabled=False), rule("all", 50, 1.0, ["/api/*"])]  # fmt: skip
    rules = rules_at(seed, 3600.25)
    assert [(r.name, r.elapsed) for r in rules] == [("req/ip", 0.25), ("sync/user", 0.25), ("all", 0.25)]
    assert binding_period(seed) == 1.0  # sync/user's five run out first, not req/ip's 300
    # Started at an edge, 10 batches 5 at a time need the next window: 1 s + 0.3 s; 0.25 s in, 0.25 s less.
    assert bound(10, 0.3, "conservative", rules_at(seed, 3600.0)) == pytest.approx(1.3)
    assert bound(10, 0.3, "reference", rules) == pytest.approx(lower_bound(10, 0.3, 5, 5, 1.0, phase=0.25))
    assert bound(10, 0.3, "sequential", rules) == pytest.approx(3.0)  # latency binds one at a time


def test_an_act_starts_at_its_phase_of_the_next_window_with_room_to_set_up() -> None:
    assert next_phase(100.5, 1.0, 0.02) == pytest.approx(101.02)
    assert next_phase(100.0, 1.0, 0.1) == pytest.approx(100.1)  # this window still has it, 0.1 s on
    assert next_phase(100.0, 2.0, 0.5) == pytest.approx(101.0)
    assert next_phase(100.99, 1.0, 0.02) == pytest.approx(101.02)
    assert next_phase(101.0, 1.0, 0.02) == pytest.approx(102.02)  # 20 ms is too little to set up in: a window on
