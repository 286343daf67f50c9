"""Where the views sit at 80x24, 120x40 and 200x60, and how they look while the stream is down."""

from __future__ import annotations

import pytest
from textual.widgets import Footer, Input
from textual.widgets._footer import FooterKey

from monitor.app import MonitorApp
from monitor.screens import AdminScreen
from syncbed.events import BatchReceived
from tests.monitor.helpers import MIDRUN, load
from tests.monitor.servers import free_port
from tests.monitor.test_app import SIZE, demo_app, fed_app


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
async def test_the_essentials_stay_on_screen(size: tuple[int, int]) -> None:
    app = demo_app(MIDRUN)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen.region
        for widget in (app.status_bar, app.runs_view, app.lanes_view, app.screen.query_one(Footer)):
            assert screen.contains_region(widget.region) and widget.region.height > 0, widget
        assert app.status_bar.region.y == 0 and app.screen.query_one(Footer).region.bottom == size[1]
        columns = {str(col.label) for col in app.runs_view.columns.values()}
        assert {"Run", "Progress", "ETA", "429s", "Status"} <= columns
        keys = {fk.key for fk in app.screen.query(FooterKey) if screen.contains_region(fk.region)}
        assert {"question_mark", "q"} <= keys
        bottom = {w.id for w in (app.throughput_view, app.limiter_view, app.log_view) if w.region.height > 0}
        assert bottom == ({"throughput", "limiter", "log"} if size[0] >= 100 else set())
        width = app.log_view.region.width
        assert width == 0 or width >= 40  # an event log is either there, readable, or not at all


async def test_the_admin_form_fits_80x24_with_apply_on_screen() -> None:
    app = MonitorApp(server=f"http://127.0.0.1:{free_port()}", admin_token="t", first_contact=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, AdminScreen)
        for widget in (*form.query(Input), form.query_one("#apply")):
            assert form.region.contains_region(widget.region) and widget.region.height > 0, widget


async def test_a_dead_stream_marks_every_panel_stale_and_hides_the_lag() -> None:
    app, clock = fed_app(load(MIDRUN))
    async with app.run_test(size=SIZE) as pilot:
        app._on_state("connected", "http://127.0.0.1:1/api/v1/events")
        app.model.lag = 0.0
        app.server = "http://127.0.0.1:1"
        app._redraw_now()
        assert "lag 0.00s" in str(app.status_bar.render())
        app._on_state("reconnecting", "ConnectError: All connection attempts failed; retry in 1.2 s")
        clock.now += 12
        app._redraw_now()
        await pilot.pause()
        status = str(app.status_bar.render())
        assert "reconnecting since " in status and "(12s)" in status and "lag" not in status
        lanes = str(app.lanes_view.render())
        clock.now += 5
        app._redraw_now()
        assert str(app.lanes_view.render()) == lanes  # the running run's bars stand still at the outage
        assert app.main_screen.has_class("-stale")
        for view in app.panels:
            assert str(view.border_subtitle).startswith("stale since ") and "(17s)" in str(view.border_subtitle)
        logged = [e.text for e in app.model.entries("errors")]
        assert logged[-1].startswith("stream lost (reconnecting): ConnectError")
        app._on_state("connected", "http://127.0.0.1:1/api/v1/events")
        app._redraw_now()
        assert not app.main_screen.has_class("-stale") and app.runs_view.border_subtitle == "3 runs"
        assert not str(app.lanes_box.border_subtitle).startswith("stale") and "lag" in str(app.status_bar.render())
        assert app.model.entries()[-1].text == "stream back after 17.0 s down (outage 1)"


async def test_more_lanes_than_rows_scroll_at_80x24() -> None:
    received = [BatchReceived(ts=100.0 + i / 100, run="wide", batch=i, attempt=1, user="u", records=1000)
                for i in range(1, 17)]  # fmt: skip
    app, _ = fed_app(list(received))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app._redraw_now()
        await pilot.pause()
        box = app.lanes_box
        assert app.model.runs["wide"].lanes.count == 16
        lines = str(app.lanes_view.render()).splitlines()
        assert lines[15].startswith("16 ") and "more lanes" not in "\n".join(lines)  # every lane drawn
        assert box.max_scroll_y > 0 and box.region.bottom <= 23  # in a box that keeps its place and scrolls
        box.scroll_end(animate=False)
        await pilot.pause()
        assert box.scroll_y == box.max_scroll_y > 0
        assert "16 lanes" in str(box.border_title)


async def test_the_help_fits_80x24_and_scrolls_to_its_end() -> None:
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        box = app.screen.query_one("#help-box")
        assert app.screen.region.contains_region(box.region) and box.region.width == 80
        text = app.screen.query_one("#help-text")
        assert all(len(line) <= box.content_size.width for line in str(text.render()).splitlines())  # no wrap
        box.scroll_end(animate=False)
        await pilot.pause()
        assert box.scroll_y == box.max_scroll_y > 0  # the views and the legend below are reached by scrolling
