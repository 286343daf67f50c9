"""Snapshots of the main screen fed from fixed event files (the model's clock frozen at the last event)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import Input

from monitor.app import MonitorApp
from tests.monitor.helpers import DEMO, DEMO_ACTS, MIDRUN, SEED_AGGRESSIVE, ManualClock, load


def test_main_screen_mid_run(snap_compare: Any) -> None:
    assert snap_compare(MonitorApp(replay=MIDRUN, speed=0), terminal_size=(100, 30))


def test_main_screen_finished_runs_large_terminal(snap_compare: Any) -> None:
    assert snap_compare(MonitorApp(replay=DEMO, speed=0), terminal_size=(140, 45))


def test_sequential_run_selected_and_log_filtered(snap_compare: Any) -> None:
    assert snap_compare(MonitorApp(replay=DEMO, speed=0), terminal_size=(100, 30), press=["up", "up", "f"])


def test_help_screen(snap_compare: Any) -> None:
    assert snap_compare(MonitorApp(replay=DEMO, speed=0), terminal_size=(100, 30), press=["question_mark"])


LAYOUTS = [(80, 24), (120, 40), (200, 60)]


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stale notes' HH:MM:SS in one zone, so the pictures do not depend on the machine's."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("size", LAYOUTS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_layout_mid_run(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(MonitorApp(replay=MIDRUN, speed=0), terminal_size=size)


@pytest.mark.parametrize("size", LAYOUTS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_layout_seed_aggressive_with_429s(snap_compare: Any, size: tuple[int, int]) -> None:
    """A real 30k aggressive run under the seed limits (tests/monitor/record_runs.py): each 429 its own mark."""
    assert snap_compare(MonitorApp(replay=SEED_AGGRESSIVE, speed=0), terminal_size=size)


@pytest.mark.parametrize("size", LAYOUTS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_layout_demo_acts_compared(snap_compare: Any, size: tuple[int, int]) -> None:
    """The demo's six acts side by side on one time scale, as `python -m monitor --demo` shows them."""
    assert snap_compare(MonitorApp(replay=DEMO_ACTS, speed=0, compare=True), terminal_size=size)


@pytest.mark.parametrize("size", LAYOUTS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_layout_disconnected(snap_compare: Any, size: tuple[int, int], utc: None) -> None:
    events = load(MIDRUN)
    clock = ManualClock(events[-1].ts)
    app = MonitorApp(clock=clock)
    app.model.ingest_many(events)

    def outage(pilot: Any) -> None:
        app.server = "http://127.0.0.1:3001"  # set after mount: shown in the header, never connected to
        app._on_state("connected", app.server)
        clock.now += 1
        app._on_state("reconnecting", "ConnectError: All connection attempts failed; retry in 2.4 s")
        clock.now += 14
        app._redraw_now()

    assert snap_compare(app, terminal_size=size, run_before=outage)


def test_admin_form_at_80x24(snap_compare: Any) -> None:
    app = MonitorApp(clock=ManualClock(0.0))

    async def open_form(pilot: Any) -> None:
        app.server = "http://127.0.0.1:3001"  # the form needs a server to send to; opening it sends nothing
        await pilot.press("a")
        await pilot.pause()
        # The focused field's cursor blinks every 0.5 s: on a loaded machine the picture caught it off.
        for field in app.screen.query(Input).results():
            field.cursor_blink = False

    assert snap_compare(app, terminal_size=(80, 24), run_before=open_form)
