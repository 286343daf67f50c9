"""Replay of exported events through the same views, and the command line around it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitor.app import MonitorApp
from monitor.model import Model
from monitor.replay import ReplayClock, read_events
from monitor.stream import Undecodable
from syncbed.events import BatchStored, encode_event
from tests.monitor.helpers import DEMO, ManualClock, load

ROOT = Path(__file__).resolve().parents[2]


def test_replay_clock_runs_at_speed_and_holds() -> None:
    wall = ManualClock(100.0)
    clock = ReplayClock(10.0, 20.0, speed=2.0, wall=wall)
    assert clock() == 10.0
    wall.now = 102.0
    assert clock() == 14.0 and clock.fraction() == 0.4
    clock.hold(True)
    wall.now = 110.0
    assert clock() == 14.0  # held: no time passes
    clock.hold(False)
    wall.now = 111.0
    assert clock() == 16.0
    wall.now = 200.0
    assert clock() == 20.0 and clock.done
    assert ReplayClock(10.0, 20.0, speed=0)() == 20.0  # speed 0: the end at once


def test_read_events_orders_by_time_and_keeps_unreadable_lines_where_they_were(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    stored = BatchStored(ts=3.0, run="r", batch=0, attempt=1, user="u", records=1, stored=1, duplicates=0, ms=1.0)
    path.write_bytes(
        b'{"ts": 2, "type": "b"}\nnot json\n[1, 2]\n\n{"ts": 1, "type": "a"}\n' + encode_event(stored) + b"\n"
    )
    events = read_events(path)
    assert [e.type if isinstance(e, Undecodable) else e for e in events] == ["a", "b", "?", "?", stored]
    assert [e.ts for e in events] == [1.0, 2.0, 2.0, 2.0, 3.0]


async def test_replay_at_speed_reaches_the_same_picture_and_pause_holds_it() -> None:
    events = load(DEMO)
    span = events[-1].ts - events[0].ts
    app = MonitorApp(replay=DEMO, speed=span / 1.5)  # the whole file in about 1.5 s
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.4)
        await pilot.press("p")
        seen = app.model.events_seen
        assert 0 < seen < len(events) and "PAUSED" in str(app.status_bar.render())
        await pilot.pause(0.6)
        assert app.model.events_seen == seen  # a paused replay holds
        await pilot.press("p")
        for _ in range(200):
            await pilot.pause(0.05)
            if app.conn_state == "replay done":
                break
        assert app.conn_state == "replay done" and app.model.events_seen == len(events)
        await pilot.pause(0.2)
        assert "replay done" in str(app.status_bar.render())
    direct = Model(clock=ManualClock(events[-1].ts))
    direct.ingest_many(events)
    assert app.model.summary() == direct.summary()


def test_command_line_replay_prints_a_summary_and_saves_a_screenshot(tmp_path: Path) -> None:
    shot = tmp_path / "screen.svg"
    cmd = [sys.executable, "-m", "monitor", "--replay", str(DEMO), "--speed", "0", "--headless", "--exit-after",
           "1", "--screenshot", str(shot)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("run seq-1 (alice, sequential): complete, 5/5 batches")
    assert "10 x 429" in lines[2] and shot.read_text().startswith("<svg")
    missing = subprocess.run([*cmd[:4], str(tmp_path / "nope.jsonl")], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr


async def test_an_empty_replay_file_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    app = MonitorApp(replay=empty, speed=1)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        text = str(app.status_bar.render())
    assert "replay done" in text and "no events" in text and not app.model.runs
