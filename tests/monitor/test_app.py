"""The app driven by Textual's Pilot: every footer key does what it says; admin calls reach a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from rich.text import Text
from textual.binding import Binding
from textual.command import CommandPalette
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Label
from textual.widgets._footer import FooterKey

from monitor.app import MonitorApp
from monitor.commands import ActionCommands
from monitor.model import Model
from monitor.replay import read_events
from monitor.screens import AdminScreen, HelpScreen, RunDetailsScreen, parse_form
from syncbed.events import BatchReceived, ConfigChanged, Event, ServerStats, encode_event
from syncbed.responses import RuleSettings
from tests.monitor.helpers import DEMO, MIDRUN, ManualClock, load
from tests.monitor.servers import AdminRecorder, EventSource, free_port, serve, url_of

SIZE = (100, 30)


def demo_app(path: Path = DEMO, **kwargs: Any) -> MonitorApp:
    return MonitorApp(replay=path, speed=0, **kwargs)


def fed_app(events: list[Event]) -> tuple[MonitorApp, ManualClock]:
    clock = ManualClock(events[-1].ts if events else 0.0)
    app = MonitorApp(clock=clock)
    app.model.ingest_many(events)
    return app, clock


FOOTER = {
    "q": "quit",
    "p": "pause",
    "c": "clear",
    "v": "compare",
    "f": "filter",
    "r": "run_filter",
    "d": "details",
    "a": "admin",
    "x": "export",
    "question_mark": "help",
    "ctrl+p": "command_palette",
}


async def test_footer_lists_every_key() -> None:
    """The footer shows these keys; the tests below press each and check what it does."""
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        keys = {fk.key: fk.action for fk in app.screen.query(FooterKey)}
        assert keys == FOOTER


async def test_newest_run_selected_and_arrows_select() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.selected == "agg-3" and app.follow_newest
        assert "agg-3" in str(app.lanes_view.border_title)
        await pilot.press("up")
        await pilot.pause()
        assert app.selected == "anon-2" and not app.follow_newest
        assert "anon-2" in str(app.lanes_view.border_title)
        app.model.ingest(BatchReceived(ts=app.model.now(), run="new-4", batch=1, attempt=1, user="dave", records=5))
        await pilot.pause(0.3)
        assert app.selected == "anon-2"  # a pick by hand is kept when a newer run appears
        await pilot.press("down", "down")
        await pilot.pause(0.2)
        assert app.selected == "new-4" and app.follow_newest


async def test_pause_holds_the_view_and_clear_forgets() -> None:
    events = load(DEMO)
    app, _ = fed_app(events[:5])  # the first run only
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert app.runs_view.row_count == 1
        await pilot.press("p")
        assert app.paused and "PAUSED" in str(app.status_bar.render())
        frames = app.frames
        app.model.ingest_many(events[5:])
        await pilot.pause(0.5)
        assert app.runs_view.row_count == 1 and app.frames == frames  # nothing drawn while paused
        await pilot.press("p")
        await pilot.pause(0.3)
        assert not app.paused and app.runs_view.row_count == 3
        await pilot.press("c")
        await pilot.pause(0.2)
        assert not app.model.runs and app.runs_view.row_count == 0 and app.selected is None


async def test_log_filters_cycle_and_follow_the_run() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.log_filter == "all"
        await pilot.press("f")
        assert app.log_filter == "throttled" and "throttled" in str(app.log_view.border_title)
        assert "429" in app.log_view.text() and "stored" not in app.log_view.text()
        await pilot.press("f")
        assert app.log_filter == "errors" and "503" in app.log_view.text()
        await pilot.press("f", "f", "f", "f", "r")  # batches, runs, config, all
        assert app.log_filter == "all" and app.log_this_run
        text = app.log_view.text()
        assert "agg-3" in text and "seq-1" not in text and "run agg-3" in str(app.log_view.border_title)
        await pilot.press("r")
        assert not app.log_this_run


async def test_details_help_and_escape() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, RunDetailsScreen)
        table = app.screen.query_one("#details-table", DataTable)
        assert table.row_count == len(app.model.runs["agg-3"].attempts)
        head = str(app.screen.query_one("#details-summary", Label).render())
        assert "x 429" in head and "service ms p50" in head and "the bound" in head
        assert str(table.get_cell_at(Coordinate(0, table.get_column_index("received")))).startswith("+")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("enter")  # enter on the runs table opens the details too
        await pilot.pause()
        assert isinstance(app.screen, RunDetailsScreen)


async def test_export_writes_replayable_events_and_a_batch_table(tmp_path: Path) -> None:
    app = demo_app(export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
    events_file = tmp_path / "run-agg-3.jsonl"
    csv_file = tmp_path / "run-agg-3-batches.csv"
    exported = read_events(events_file)
    original = [e for e in load(DEMO) if getattr(e, "run", None) == "agg-3"]
    context = app.model.context_of(app.model.runs["agg-3"])
    assert [e for e in exported if getattr(e, "run", None) == "agg-3"] == original
    assert sorted(exported, key=lambda e: e.ts) == exported and len(exported) == len(original) + len(context)
    lines = csv_file.read_text().splitlines()
    assert lines[0].startswith("batch,attempt,state,status") and len(lines) == 1 + len(app.model.runs["agg-3"].attempts)
    again = Model(clock=ManualClock(original[-1].ts))
    again.ingest_many(exported)
    run, before = again.runs["agg-3"], app.model.runs["agg-3"]
    assert (run.throttled, run.retries, run.records_done, run.lanes.count) == (
        before.throttled, before.retries, before.records_done, before.lanes.count)  # fmt: skip
    assert events_file.read_bytes().splitlines() == [encode_event(e) for e in exported]  # as the server sent them
    assert {encode_event(e) for e in original} <= set(events_file.read_bytes().splitlines())


async def test_admin_without_a_server_says_so() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, AdminScreen)
        assert any("live server" in n.message for n in app._notifications)


async def test_admin_form_sends_faults_and_limit_to_a_real_server() -> None:
    recorder = AdminRecorder("s3cret")
    async with serve(recorder.app) as server:
        base = url_of(server)
        # The stand-in has no event stream: the app must not give up on it while the form is used.
        app = MonitorApp(server=base, admin_token="s3cret", clock=ManualClock(0.0), first_contact=None)
        app.model.ingest(ConfigChanged(ts=0.0, what="faults", changed=["latency_ms"], latency_ms=300, jitter_ms=0,
                                       error_rate=0.0, reset_rate=0.0))  # fmt: skip
        rule = RuleSettings("sync/user", "throttle", 5, 1.0, "user", [], [], "fixed_window", True)
        app.model.ingest(ServerStats(ts=0.0, records_per_s=0.0, requests_per_s=0.0, throttled_per_s=0.0, in_flight=0,
                                     limiter={}, rules=[rule]))  # fmt: skip
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a")
            await pilot.pause()
            assert isinstance(app.screen, AdminScreen)
            assert app.screen.query_one("#in-latency_ms", Input).value == "300"
            assert app.screen.query_one("#in-limit", Input).value == "5"
            app.screen.query_one("#in-latency_ms", Input).value = "1200"
            app.screen.query_one("#in-error_rate", Input).value = "0.25"
            app.screen.query_one("#in-limit", Input).value = "10"
            app.screen.query_one("#in-reset_rate", Input).focus()
            await pilot.press("enter")
            for _ in range(100):
                await pilot.pause(0.05)
                if not isinstance(app.screen, AdminScreen):
                    break
            assert not isinstance(app.screen, AdminScreen)
            assert any("sync/user limit 10" in n.message for n in app._notifications)
            await pilot.press("a")
            await pilot.pause()
            app.screen.query_one("#in-error_rate", Input).value = "lots"
            await pilot.click("#apply")
            await pilot.pause()
            assert "not a number" in str(app.screen.query_one("#admin-error").render())
            await pilot.press("escape")
    assert recorder.requests[:2] == [
        ("PUT", "/api/v1/admin/faults", "Bearer s3cret", {"latency_ms": 1200, "error_rate": 0.25}),
        ("PUT", "/api/v1/admin/limits", "Bearer s3cret", {"rule": "sync/user", "limit": 10}),
    ]
    assert len(recorder.requests) == 2  # the bad number was never sent


async def test_admin_refusal_is_shown_and_details_come_from_the_server() -> None:
    recorder = AdminRecorder("right")
    async with serve(recorder.app) as server:
        app = MonitorApp(server=url_of(server), admin_token="wrong", clock=ManualClock(0.0), first_contact=None)
        app.model.ingest_many(load(DEMO))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("a")
            await pilot.pause()
            app.screen.query_one("#in-latency_ms", Input).value = "10"
            await pilot.click("#apply")
            for _ in range(100):
                await pilot.pause(0.05)
                if "401" in str(app.screen.query_one("#admin-error").render()):
                    break
            assert "401 bad admin token" in str(app.screen.query_one("#admin-error").render())
            await pilot.press("escape", "d")
            for _ in range(100):
                await pilot.pause(0.05)
                if "server" in str(app.screen.query_one("#details-source").render()):
                    break
            assert "1 attempts, from the server's history" in str(app.screen.query_one("#details-source").render())
    assert ("GET", "/api/v1/runs/agg-3", "Bearer wrong", None) in recorder.requests


async def test_quit_key_exits() -> None:
    app = demo_app(MIDRUN)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0 and app.model.summary()


async def test_app_follows_a_stream_and_shows_connection_and_lag() -> None:
    source = EventSource("tok")
    port = free_port()
    events = load(MIDRUN)
    for ev in events:
        data = msgspec.to_builtins(ev)
        source.publish(data.pop("type"), **{k: v for k, v in data.items() if k not in ("id", "ts")})
    clock = ManualClock(float(len(events)) + 0.5)  # the tiny server stamps ts = id
    app = MonitorApp(server=f"http://127.0.0.1:{port}", admin_token="tok", clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        async with serve(source.app, port):
            for _ in range(400):
                await pilot.pause(0.05)
                if app.model.events_seen == len(events) and app.conn_state == "connected":
                    break
            assert app.model.last_id == len(events)
            await pilot.pause(0.2)
            status = str(app.status_bar.render())
            assert "connected" in status and "lag 0.50s" in status and f"events {len(events)}" in status
            assert app.runs_view.row_count == 3
        for _ in range(400):
            await pilot.pause(0.05)
            if app.conn_state == "reconnecting" and "retry" in app.conn_detail:
                break
        await pilot.pause(0.2)
        assert "reconnecting" in str(app.status_bar.render())


@pytest.mark.parametrize(
    ("field", "raw", "says"),
    [
        ("latency_ms", "700000", "600000"),  # the server's cap, not just "not negative"
        ("jitter_ms", "-1", "between 0 and"),
        ("error_rate", "1.5", "between 0 and 1"),
        ("limit", "0", "from 1 to"),
        ("limit", "x", "not a number"),
    ],
)
def test_the_admin_form_refuses_what_the_server_would(field: str, raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_form({field: raw}, {})


def test_the_admin_form_passes_values_in_range() -> None:
    assert parse_form({"latency_ms": "600000", "error_rate": "0.25", "limit": "10"}, {}) == (
        {"latency_ms": 600000, "error_rate": 0.25},
        10,
    )


async def test_ctrl_c_quits_even_from_a_form_field() -> None:
    app = MonitorApp(server=f"http://127.0.0.1:{free_port()}", admin_token="t", first_contact=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, AdminScreen) and isinstance(app.focused, Input)
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running


async def test_the_command_palette_offers_every_key_and_runs_it() -> None:
    app = demo_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        provider = ActionCommands(app.screen)
        offered = {hit.text: hit.help async for hit in provider.discover()}
        labels = {b.description for b in app.BINDINGS if isinstance(b, Binding)}
        assert set(offered) == labels  # every bound key, footer or not ("Search", "Full ids")
        assert {"Search", "Full ids", "Help", "Quit"} <= set(offered) and "command_palette" not in offered
        assert "(key: x)" in str(offered["Export"])
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"pause")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.paused and "PAUSED" in str(app.status_bar.render())


async def test_a_theme_recolours_from_its_variables() -> None:
    app = demo_app(theme="solarized-light")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        colors = dict(app.theme_variables)
        assert app.theme == "solarized-light"
        text = app.status_text()
        state = next(span for span in text.spans if text.plain[span.start : span.end].startswith(" ● replay"))
        assert str(state.style) == f"bold {colors['accent']}"
        progress = app.runs_view.get_cell("agg-3", "progress")
        assert isinstance(progress, Text) and colors["success"] in str(progress.spans[0].style)
        app.theme = "nord"  # what the palette's Theme command does
        await pilot.pause()
        app._redraw_now()
        progress = app.runs_view.get_cell("agg-3", "progress")
        assert colors["success"] != app.theme_variables["success"]
        assert isinstance(progress, Text) and app.theme_variables["success"] in str(progress.spans[0].style)
