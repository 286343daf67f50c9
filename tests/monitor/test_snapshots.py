"""Snapshots of the main screen fed from fixed event files (the model's clock frozen at the last event)."""

from __future__ import annotations

from typing import Any

from monitor.app import MonitorApp
from tests.monitor.helpers import DEMO, MIDRUN


def test_main_screen_mid_run(snap_compare: Any) -> None:
    assert snap_compare(MonitorApp(replay=MIDRUN, speed=0), terminal_size=(100, 30))


def test_main_screen_finished_runs_large_terminal(snap_compare: Any) -> None:
    assert snap_compare(MonitorApp(replay=DEMO, speed=0), terminal_size=(140, 45))


def test_sequential_run_selected_and_log_filtered(snap_compare: Any) -> None:
    assert snap_compare(MonitorApp(replay=DEMO, speed=0), terminal_size=(100, 30), press=["up", "up", "f"])


def test_help_screen(snap_compare: Any) -> None:
    assert snap_compare(MonitorApp(replay=DEMO, speed=0), terminal_size=(100, 30), press=["question_mark"])
