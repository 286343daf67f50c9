"""The Textual monitor: views rendered from the model ten times a second, fed by a stream or a replay."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.css.scalar import Scalar
from textual.widgets import DataTable, Footer, Static

from monitor import format as fmt
from monitor.admin import AdminClient
from monitor.commands import ActionCommands
from monitor.compare import compared, full_height, render_compare
from monitor.eventlog import LOG_FILTERS
from monitor.export import EXPORTS_DIR, export_run
from monitor.keys import bindings
from monitor.link import ago
from monitor.model import Clock, Model
from monitor.replay import ReplayClock, due, read_events
from monitor.runs import Run
from monitor.screens import AdminScreen, HelpScreen, RunDetailsScreen
from monitor.stream import CONNECTED, FIRST_CONTACT_S, STOPPED, Received, StreamFailed, StreamFollower
from monitor.theme import DEFAULT_THEME, themed
from monitor.widgets_lanes import LanesView, shared_span
from monitor.widgets_panels import BoundLine, LimiterPanel, LogPanel, ThroughputPanel
from monitor.widgets_runs import RunsTable
from syncbed.paths import default_data_dir

REFRESH_S = 0.1
STATE_STYLES = {CONNECTED: "bold $success", "replay": "bold $accent", "replay done": "bold $accent"}
DOWN_STYLE = "bold $warning"
BAD_STYLE = "$error"
# Widths and heights where the layout changes (monitor.tcss): below 100 columns the runs table
# keeps its essential columns and the limiter goes; below 28 rows the bottom panels go.
NARROW = 100
HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-medium"), (160, "-wide")]
VERTICAL_BREAKPOINTS = [(0, "-short"), (28, "-mid"), (50, "-tall")]
STALE = "stale"
RESET_NOTE_S = 120.0  # how long the header calls out settings a restart changed (the log keeps it)
LANES_EXTRA_ROWS = 2  # the lanes view's time axis and legend


class MonitorApp(App[None]):
    """`server` follows a live stream; `replay` plays a JSON Lines file; neither: fed through `model`."""

    CSS_PATH = Path(__file__).with_name("monitor.tcss")  # absolute: subclasses live elsewhere
    TITLE = "syncbed monitor"
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = bindings()
    HORIZONTAL_BREAKPOINTS = HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = VERTICAL_BREAKPOINTS

    def __init__(
        self,
        *,
        server: str | None = None,
        admin_token: str | None = None,
        replay: Path | None = None,
        speed: float = 1.0,
        clock: Clock | None = None,
        export_dir: Path | None = None,
        exit_after: float | None = None,
        screenshot: Path | None = None,
        first_contact: float | None = FIRST_CONTACT_S,
        theme: str = DEFAULT_THEME,
        compare: bool = False,
    ) -> None:
        super().__init__()
        self.compare = compare  # the lanes show every run started near the selected one, stacked
        self.theme = theme
        self.first_contact = first_contact  # None: wait for a server that never answered, forever
        self.exit_after = exit_after
        self.screenshot_path = screenshot
        self.server = server.split(",")[0] if server else None  # the one followed now (admin calls go there)
        self.servers = [u for u in server.split(",") if u] if server else []  # a cluster's workers: tried in turn
        self.admin_token = admin_token
        self.replay_path = replay
        self.export_dir = export_dir or default_data_dir() / EXPORTS_DIR
        self.replay_events: list[Received] = read_events(replay) if replay else []
        self.replay_clock: ReplayClock | None = None
        if self.replay_events:
            first, last = self.replay_events[0].ts or 0.0, self.replay_events[-1].ts or 0.0
            self.replay_clock = ReplayClock(first, last, speed)
        self.model = Model(clock=clock or self.replay_clock or time.time)
        self.paused = False
        self.log_filter = LOG_FILTERS[0]
        self.log_this_run = False
        self.selected: str | None = None
        self.follow_newest = True
        self._placed_row: int | None = None  # where the cursor was put; elsewhere means the user moved it
        self.conn_state = "replay" if replay else (STOPPED if server is None else "connecting")
        self.conn_detail = ""
        if replay and not self.replay_events:
            self.conn_state, self.conn_detail = "replay done", "the file holds no events"
        self.follower: StreamFollower | None = None
        self.failure: StreamFailed | None = None  # why the stream could never be followed (the app then exits)
        self.frames = 0
        self.rendered_ts: float | None = None  # newest event time on screen (for the benchmark's lag)

    # --- layout ----------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="status-bar")
        yield RunsTable(id="runs")
        with VerticalScroll(id="lanes-box"):  # more lanes than rows: they scroll, the box keeps its place
            yield LanesView(id="lanes")
        yield BoundLine(id="bound")
        with Horizontal(id="bottom"):
            yield ThroughputPanel(id="throughput")
            yield LimiterPanel(id="limiter")
            yield LogPanel(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # Held directly: while a modal screen is up, app-level queries would search the modal.
        self.runs_view = self.query_one(RunsTable)
        self.lanes_view = self.query_one(LanesView)
        self.throughput_view = self.query_one(ThroughputPanel)
        self.limiter_view = self.query_one(LimiterPanel)
        self.log_view = self.query_one(LogPanel)
        self.bound_view = self.query_one(BoundLine)
        self.status_bar = self.query_one("#status-bar", Static)
        self.lanes_box = self.query_one("#lanes-box", VerticalScroll)
        self.main_screen = self.screen
        self.panels = (
            self.runs_view,
            self.lanes_box,
            self.bound_view,
            self.throughput_view,
            self.limiter_view,
            self.log_view,
        )
        self.runs_view.border_title = "Runs"
        self.throughput_view.border_title = "Throughput"
        self.limiter_view.border_title = "Limiter"
        self.runs_view.focus()
        if self.replay_clock is not None:
            if self.replay_clock.speed <= 0:
                self.model.ingest_many(self.replay_events)
                self.conn_state = "replay done"
            else:
                self._replay()
        elif self.server is not None:
            self._follow()
        self.refresh_views()
        self.set_interval(REFRESH_S, self.refresh_views)
        if self.exit_after is not None:
            self.set_timer(self.exit_after, self._finish)

    def _finish(self) -> None:
        """End a timed (scripted) run, leaving a screenshot when one was asked for."""
        if self.follower is not None and self.follower.connections == 0 and self.failure is None:
            # --exit-after came before the first connection: a run that saw nothing is no success.
            assert self.exit_after is not None
            self.failure = StreamFailed(self.conn_detail or "no answer", within=self.exit_after)
            self.exit(return_code=self.failure.exit_code)
            return
        if self.screenshot_path is not None:
            self.refresh_views()
            self.save_screenshot(self.screenshot_path.name, str(self.screenshot_path.parent.resolve()))
        self.exit()

    # --- feeding ---------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="feed")
    async def _follow(self) -> None:
        assert self.server is not None
        self.follower = StreamFollower(
            self.servers, self.admin_token, self._on_event, self._on_state, first_contact=self.first_contact
        )
        try:
            await self.follower.run()
        except StreamFailed as exc:
            # Wrong settings: staying up would show a monitor that waits for nothing. The caller says why.
            self.failure = exc
            self.exit(return_code=exc.exit_code)

    def _on_event(self, event: Received, event_id: int | None) -> None:
        self.model.ingest(event, event_id)

    def _on_state(self, state: str, detail: str) -> None:
        self.conn_state, self.conn_detail = state, detail
        if self.follower is not None:
            self.server = self.follower.base_url
        self.model.on_connection(state, detail)

    @work(exclusive=True, exit_on_error=False, group="feed")
    async def _replay(self) -> None:
        clock = self.replay_clock
        assert clock is not None
        cursor = 0
        events = self.replay_events
        while cursor < len(events):
            for ev in due(events, cursor, clock()):
                self.model.ingest(ev)
                cursor += 1
            await asyncio.sleep(0.02)
        self.conn_state = "replay done"

    # --- rendering -------------------------------------------------------
    def refresh_views(self) -> None:
        """Draw every view from the model (the timer's job; never per event)."""
        if self.paused or not self.runs_view.is_attached:
            return
        now = self.model.now()
        if self.model.link.down_since is not None:
            # Stale: the views stand still at the outage instead of drawing in-flight bars into the blind.
            now = min(now, self.model.link.down_since)
        with self.batch_update():
            table = self.runs_view
            table.set_compact(self.size.width < NARROW)
            self._take_user_selection()
            added = table.sync(self.model, now)
            if self.selected not in self.model.runs:
                self.selected, self.follow_newest = None, True
            if added and self.follow_newest:
                self.selected = added[-1]
            if self.selected is None and self.model.runs:
                self.selected = next(reversed(self.model.runs))
            if self.selected is not None:
                table.select_run(self.selected)
                self._placed_row = table.cursor_row
            run = self.model.runs.get(self.selected) if self.selected else None
            self._show_lanes(run, now)
            # The border is the box's (it stays put while the lanes scroll): it carries the view's titles.
            self.lanes_box.border_title = self.lanes_view.border_title
            self.lanes_box.border_subtitle = self.lanes_view.border_subtitle or ""
            self.bound_view.show(run, now)
            self.throughput_view.show(self.model, now)
            self.limiter_view.show(self.model)
            style = self.model.limiter.response
            self.limiter_view.border_title = f"Limiter · {style}" if style else "Limiter"
            log_run = self.selected if self.log_this_run else None
            self.log_view.show(self.model, self.log_filter, log_run)
            n = len(self.model.runs)
            table.border_subtitle = f"{n} run{'' if n == 1 else 's'}"
            self._mark_stale()
            self.status_bar.update(self.status_text())
        self.frames += 1
        self.rendered_ts = self.model.last_ts

    def _show_lanes(self, run: Run | None, now: float) -> None:
        box = self.lanes_box.content_size
        group = compared(self.model.runs.values(), run) if run is not None and self.compare else []
        if run is not None and len(group) > 1:
            rows = full_height(group)
            rows = rows if rows <= box.height else len(group) + LANES_EXTRA_ROWS + 1  # one row a run, and a key
            self._size_lanes(rows)
            width = self.lanes_view.content_size.width
            lines = render_compare(group, run, now, width, max(rows, box.height), self.theme_variables)
            self.lanes_view.show_lines(lines, f"Batch lanes · {len(group)} runs compared on one time scale")
            return
        self._size_lanes((run.lanes.count if run is not None else 1) + LANES_EXTRA_ROWS)
        self.lanes_view.show(run, now, None if run is None else shared_span(self.model.runs.values(), run, now))

    def _size_lanes(self, rows: int) -> None:
        """The lanes view `rows` tall, at least the box: the box scrolls what does not fit."""
        height = max(rows, self.lanes_box.content_size.height)
        if self.lanes_view.styles.height != Scalar.from_number(height):
            self.lanes_view.styles.height = height

    def _style(self, spec: str) -> str:
        return themed(spec, self.theme_variables)

    def status_text(self) -> Text:
        text = Text()
        text.append(" syncbed monitor " if self.size.width >= NARROW else " syncbed ", style="bold reverse")
        state, link, now = self.conn_state, self.model.link, self.model.now()
        if self.replay_clock is not None and state == "replay":
            state = f"replay {self.replay_clock.fraction() * 100:.0f}% at {self.replay_clock.speed:g}x"
        if link.down_since is not None:
            state = f"{state} since {ago(link.down_since, now)}"
        text.append(f" ● {state}", style=self._style(STATE_STYLES.get(self.conn_state, DOWN_STYLE)))
        # Most telling first: a narrow terminal cuts the header at the right.
        if link.reset_note and link.reset_at is not None and now - link.reset_at < RESET_NOTE_S:
            text.append(f" │ {link.reset_note}", style=self._style(f"bold {BAD_STYLE}"))
        if self.server and self.model.lag is not None and self.conn_state == CONNECTED:
            # Only while the stream delivers: the lag of a dead stream is not a small number.
            text.append(f" │ lag {self.model.lag:.2f}s")
        text.append(f" │ events {self.model.events_seen:,}")
        if self.model.last_id is not None:
            text.append(f" (#{self.model.last_id})", style="dim")
        if self.model.missed or self.model.resets:
            text.append(f" │ missed {self.model.missed:,}, resets {self.model.resets}", style=self._style(BAD_STYLE))
        if self.model.undecodable:
            text.append(f" │ unreadable {self.model.undecodable:,}", style=self._style(BAD_STYLE))
        if self.paused:
            text.append(" │ PAUSED", style=self._style("bold reverse $warning"))
        if self.server:
            text.append(f" │ {self.server}", style="dim")
        elif self.replay_path:
            text.append(f" │ {self.replay_path.name}", style="dim")
        if self.conn_detail and self.conn_state not in (CONNECTED,):
            text.append(f" ({fmt.short(self.conn_detail, 50)})", style="dim")
        return text

    def _mark_stale(self) -> None:
        """While the stream is down every panel is dimmed and says since when its figures are old."""
        down = self.model.link.down_since
        note = None if down is None else f"{STALE} since {ago(down, self.model.now())}"
        self.main_screen.set_class(note is not None, "-stale")
        for view in self.panels:
            if note is not None:
                view.border_subtitle = note
            elif str(view.border_subtitle or "").startswith(STALE):
                view.border_subtitle = ""  # a view that titles itself puts its own back on its next show

    # --- selection -------------------------------------------------------
    def _take_user_selection(self) -> None:
        """A cursor away from where the view put it was moved by the user: select that run."""
        table = self.runs_view
        if self._placed_row is None or not table.row_count or table.cursor_row == self._placed_row:
            return
        run_id = table.run_at_cursor()
        if run_id is not None and run_id in self.model.runs:
            self.selected = run_id
            self.follow_newest = run_id == next(reversed(self.model.runs))
        self._placed_row = table.cursor_row

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "runs" and self.is_running and not self.paused:
            self.refresh_views()  # show the user's pick at once, not at the next tick

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs":
            self.action_details()

    # --- actions ---------------------------------------------------------
    def action_pause(self) -> None:
        if not self.paused:
            self.refresh_views()  # what was last shown stays on screen
        self.paused = not self.paused
        if self.replay_clock is not None:
            self.replay_clock.hold(self.paused)
        self.status_bar.update(self.status_text())

    def action_clear(self) -> None:
        self.model.clear()
        self.selected, self.follow_newest, self._placed_row = None, True, None
        self.runs_view.sync(self.model, self.model.now())
        self._redraw_now()

    def action_filter(self) -> None:
        self.log_filter = LOG_FILTERS[(LOG_FILTERS.index(self.log_filter) + 1) % len(LOG_FILTERS)]
        self._redraw_now()

    def action_run_filter(self) -> None:
        self.log_this_run = not self.log_this_run
        self._redraw_now()

    def action_log_search(self) -> None:
        self.log_view.action_search()

    def action_log_ids(self) -> None:
        self.log_view.action_full_ids()
        self._redraw_now()

    def _redraw_now(self) -> None:
        was, self.paused = self.paused, False
        self.refresh_views()
        self.paused = was
        self.status_bar.update(self.status_text())

    def _admin(self) -> AdminClient | None:
        return AdminClient(self.server, self.admin_token) if self.server else None

    def action_details(self) -> None:
        run = self.model.runs.get(self.selected) if self.selected else None
        if run is None:
            self.notify("no run selected", severity="warning")
            return
        self.push_screen(RunDetailsScreen(run, self._admin(), self.model.now))

    def action_admin(self) -> None:
        admin = self._admin()
        if admin is None:
            self.notify("faults and limits need a live server (--server)", severity="warning")
            return
        current: dict[str, Any] = {k: v for k, v in self.model.faults.items()}
        rule = self.model.limiter.rules.get("sync/user")
        if rule is not None and rule.limit is not None:
            current["limit"] = rule.limit
        self.push_screen(AdminScreen(admin, current), self._admin_done)

    def _admin_done(self, result: str | None) -> None:
        if result:
            self.notify(result, title="server changed")

    def action_export(self) -> None:
        run = self.model.runs.get(self.selected) if self.selected else None
        if run is None:
            self.notify("no run selected", severity="warning")
            return
        try:
            events, batches = export_run(run, self.export_dir, self.model.context_of(run))
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.notify(f"{events}\n{batches}", title=f"exported {run.run}")

    def action_compare(self) -> None:
        self.compare = not self.compare
        self._redraw_now()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
