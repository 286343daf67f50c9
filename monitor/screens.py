"""Modal screens: help, a run's details, and the faults and limits form."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from monitor.admin import AdminClient, AdminError
from monitor.keys import help_table
from monitor.rows import DETAIL_COLUMNS, SERVER_COLUMNS, model_rows, server_rows, summary
from monitor.runs import Run
from monitor.widgets_lanes import legend
from syncbed.bounds import rule_values
from syncbed.faults import validate
from syncbed.runs import RunDetail

HELP = f"""\
[b]Keys[/b]
{help_table()}

[b]Views[/b]
  Runs: progress, records/s, ETA, 429s, retries, failed batches, status.
  Batch lanes: the selected run over time; a lane is one concurrency slot.
  Throughput: records/s and 429s/s now (large) and over the last minutes.
  Limiter: each rule's limit and its hottest keys (from the server's stats).
  Events: the newest events, filtered as the title says.
  Stream down: every panel is dimmed and titled "stale since HH:MM:SS (Ns)".
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="modal-box"):  # scrolls on a short terminal
            yield Static(HELP, id="help-text")
            yield Static(legend())
            yield Label("escape closes", classes="dim-label")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


class RunDetailsScreen(ModalScreen[None]):
    """Every batch of a run with its attempts: the server's record when it has one, else the monitor's.

    Times count from the run's start; the head sums the run up (service-time percentiles, the bound)
    and, while the run goes on, the screen follows it once a second.
    """

    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, run: Run, admin: AdminClient | None, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.run_view = run
        self.admin = admin
        self.now = now
        self._from_server = False

    def compose(self) -> ComposeResult:
        with Vertical(id="details-box", classes="modal-box"):
            yield Label(f"Run {self.run_view.run}", id="details-title")
            yield Label("", id="details-summary")
            yield Label("", id="details-source", classes="dim-label")
            yield DataTable(id="details-table", zebra_stripes=True, cursor_type="row")
            yield Label("escape closes", classes="dim-label")

    def on_mount(self) -> None:
        self._follow()
        if self.admin is not None:
            self._fetch()
        self.set_interval(1.0, self._follow)

    def _follow(self) -> None:
        """The summary always; the rows from the monitor until the server's record has come."""
        run, now = self.run_view, self.now()
        view = run.bound(now)
        self.query_one("#details-summary", Label).update(summary(run, None if view is None else view.line(), now))
        if not self._from_server:
            self._fill(model_rows(run), "as seen by the monitor" + ("" if run.finished else ", live"))

    @work(exclusive=True, exit_on_error=False)
    async def _fetch(self) -> None:
        assert self.admin is not None
        try:
            payload = await self.admin.run_details(self.run_view.run)
            detail = msgspec.convert(payload, RunDetail)
        except AdminError as exc:
            self.query_one("#details-source", Label).update(f"as seen by the monitor (server: {exc})")
            return
        except msgspec.ValidationError as exc:
            self.query_one("#details-source", Label).update(f"as seen by the monitor (server's answer: {exc})")
            return
        rows = server_rows(detail, self.run_view.started_at)
        if rows:
            self._from_server = True
            self._fill(rows, "from the server's history")

    def _fill(self, rows: list[dict[str, Any]], source: str) -> None:
        table: DataTable[Any] = self.query_one("#details-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        columns = [c for c in (*DETAIL_COLUMNS, *SERVER_COLUMNS) if any(c in r for r in rows)]
        for col in columns:
            table.add_column(col, key=col)
        for row in rows:
            table.add_row(*(Text(str(row.get(col, "")) if row.get(col) is not None else "") for col in columns))
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))
        self.query_one("#details-source", Label).update(f"{len(rows)} attempts, {source}")

    def action_close(self) -> None:
        self.dismiss(None)


COMPACT_FORM_BELOW = 30  # rows: a terminal lower than this gets the one-line-a-field form
FORM_FIELDS = (
    ("latency_ms", "latency ms", int),
    ("jitter_ms", "jitter ms", int),
    ("error_rate", "error rate 0..1", float),
    ("reset_rate", "reset rate 0..1", float),
    ("limit", "sync/user limit", int),
)


def parse_form(values: dict[str, str], current: dict[str, Any]) -> tuple[dict[str, float], int | None]:
    """(changed fault fields to PUT, new sync/user limit) from the form; ValueError on a bad number."""
    faults: dict[str, float] = {}
    limit: int | None = None
    for key, label, kind in FORM_FIELDS:
        raw = values.get(key, "").strip()
        if not raw or (current.get(key) is not None and raw == str(current[key])):
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{label}: {raw!r} is not a number") from None
        try:  # the server's own bounds, so the form refuses what the server would refuse, and says why
            if key == "limit":
                limit = rule_values(limit=int(value)).limit
            else:
                faults.update(validate({key: value}))
        except ValueError as exc:
            raise ValueError(f"{label}: {getattr(exc, 'reason', exc)}") from None
    return faults, limit


class AdminScreen(ModalScreen[str | None]):
    """Change the server's faults and the sync/user limit; enter applies, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, admin: AdminClient, current: dict[str, Any]) -> None:
        super().__init__()
        self.admin = admin
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="admin-box", classes="modal-box"):
            yield Label("Faults and limits (empty fields stay as they are)", id="admin-title")
            with Grid(id="admin-grid"):
                for key, label, _ in FORM_FIELDS:
                    yield Label(label)
                    value = self.current.get(key)
                    yield Input("" if value is None else str(value), id=f"in-{key}", placeholder="unchanged")
            yield Label("", id="admin-error")
            yield Button("Apply (enter)", id="apply", variant="primary")

    def on_mount(self) -> None:
        # On a short terminal the form goes one line a field, so Apply stays on screen (80x24 too).
        if self.app.size.height < COMPACT_FORM_BELOW:
            self.add_class("-compact")
            for widget in self.query(Input).results():
                widget.compact = True
            self.query_one("#apply", Button).compact = True

    def on_input_submitted(self) -> None:
        self._apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self._apply()

    def _apply(self) -> None:
        values = {key: self.query_one(f"#in-{key}", Input).value for key, _, _ in FORM_FIELDS}
        try:
            faults, limit = parse_form(values, self.current)
        except ValueError as exc:
            self.query_one("#admin-error", Label).update(str(exc))
            return
        self._send(faults, limit)

    @work(exclusive=True, exit_on_error=False)
    async def _send(self, faults: dict[str, float], limit: int | None) -> None:
        done = []
        try:
            if faults:
                await self.admin.set_faults(**faults)
                done.append("faults " + ", ".join(f"{k}={v:g}" for k, v in faults.items()))
            if limit is not None:
                await self.admin.set_limit("sync/user", limit)
                done.append(f"sync/user limit {limit}")
        except AdminError as exc:
            self.query_one("#admin-error", Label).update(str(exc))
            return
        self.dismiss("set " + "; ".join(done) if done else "nothing changed")

    def action_cancel(self) -> None:
        self.dismiss(None)
