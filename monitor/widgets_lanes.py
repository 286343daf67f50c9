"""Batch lanes of the selected run: time left to right, one row per concurrency slot."""

from __future__ import annotations

import math
from collections.abc import Iterable

from rich.text import Text
from textual.widget import Widget

from monitor.lanes import FAILED, IN_FLIGHT, STATE_LABELS, STATES, STORED, THROTTLED, WAITING, Attempt
from monitor.runs import Run
from monitor.theme import Colors, themed

# Colours by meaning, from the theme (`monitor/theme.py`): a theme switch repaints the lanes.
STYLES = {
    IN_FLIGHT: "$primary",
    STORED: "$success",
    THROTTLED: "$warning",
    WAITING: "$accent",
    FAILED: "$error",
}
# A 429 is its own mark, never a digit: digits beside a batch label would read as one number.
THROTTLE_MARK = "\u2715"  # ✕
THROTTLE_MARKS = "※"  # several 429s in one cell (a coarse scale)
# When two attempts share a cell, the more telling state wins.
PRIORITY = {WAITING: 0, STORED: 1, IN_FLIGHT: 2, THROTTLED: 3, FAILED: 4}
LABEL_WIDTH = 3
# Runs started this close together are compared on one time scale (a demo's acts, a before/after pair).
COMPARE_WITHIN_S = 300.0
NICE_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)


def legend(colors: Colors | None = None) -> Text:
    text = Text()
    for state in STATES:
        mark = "╌╌" if state == WAITING else THROTTLE_MARK if state == THROTTLED else "██"
        text.append(mark, style=themed(STYLES[state], colors))
        text.append(f" {STATE_LABELS[state]}  ")
    return text


def time_window(run: Run, now: float) -> tuple[float, float]:
    """(start, span) of the run's picture; the span never below 1 s so early bars are not huge."""
    start = min((a.start for a in run.attempts), default=run.started_at)
    start = min(start, run.started_at)
    end = run.finished_at if run.finished_at is not None else max(now, run.last_ts)
    end = max([end, *(a.end for a in run.attempts if a.end is not None)])
    return start, max(end - start, 1.0)


def _fmt_seconds(value: float) -> str:
    return f"{value:g}s" if value < 60 else f"{value / 60:g}m"


def axis(width: int, span: float, indent: int = LABEL_WIDTH) -> Text:
    """A time axis with nicely spaced labels, `width` cells for `span` seconds."""
    cells = [" "] * width
    step = next((s for s in NICE_STEPS if s * width / span >= 9), NICE_STEPS[-1])
    count = int(span // step) + 1
    for i in range(count):
        pos = round(i * step * width / span)
        label = _fmt_seconds(round(i * step, 3))
        if pos + len(label) + 1 > width:
            break
        cells[pos] = "┊"
        for j, ch in enumerate(label):
            cells[pos + 1 + j] = ch
    text = Text()
    text.append(" " * indent + "".join(cells), style="dim")
    return text


class Grid:
    """Cells of lanes x time: a state per cell, the attempt that set it, and its batch label."""

    def __init__(self, lanes: int, width: int, start: float, span: float) -> None:
        self.width = width
        self.start = start
        self.scale = width / span
        self.state: list[list[str | None]] = [[None] * width for _ in range(lanes)]
        self.owner: list[list[int]] = [[-1] * width for _ in range(lanes)]
        self.hits: list[list[int]] = [[0] * width for _ in range(lanes)]  # 429s that landed in each cell

    def cols(self, t0: float, t1: float) -> range:
        first = min(self.width - 1, max(0, math.floor((t0 - self.start) * self.scale)))
        last = min(self.width - 1, max(first, math.ceil((t1 - self.start) * self.scale) - 1))
        return range(first, last + 1)

    def paint(self, lane: int, cols: range, state: str, owner: int) -> None:
        row, own = self.state[lane], self.owner[lane]
        if state == THROTTLED:
            for col in cols:
                self.hits[lane][col] += 1
        for col in cols:
            current = row[col]
            if current is None or PRIORITY[state] >= PRIORITY[current]:
                row[col] = state
                own[col] = owner


def bar_label(batch: int | None, room: int) -> str:
    """The batch number in `room` cells, or `…` when it does not fit: a cut number reads as another (17 as 1)."""
    label = "?" if batch is None else str(batch)
    if len(label) > room:
        label = "…" if room >= 1 else ""
    return label.ljust(room)


def _row_text(grid: Grid, lane: int, attempts: list[Attempt], colors: Colors | None = None) -> Text:
    style = {state: themed(spec, colors) for state, spec in STYLES.items()}
    ink = themed("$background", colors) or "black"
    text = Text()
    text.append(f"{lane + 1:>2} ", style="dim")
    states, owners = grid.state[lane], grid.owner[lane]
    col = 0
    while col < grid.width:
        state, owner = states[col], owners[col]
        end = col
        while end + 1 < grid.width and owners[end + 1] == owner and states[end + 1] == state:
            end += 1
        length = end - col + 1
        if state is None:
            text.append(" " * length)
        elif state == WAITING:
            text.append("╌" * length, style=style[WAITING])
        elif state == THROTTLED:
            for c in range(col, end + 1):
                mark = THROTTLE_MARKS if grid.hits[lane][c] > 1 else THROTTLE_MARK
                text.append(mark, style=f"bold {ink} on {style[THROTTLED]}")
        elif length == 1:
            text.append("█", style=style[state])
        else:
            # The body carries the batch number; a half block at the end keeps neighbours apart.
            batch = attempts[owner].batch
            text.append(bar_label(batch, length - 1), style=f"bold {ink} on {style[state]}")
            text.append("▌", style=style[state])
        col = end + 1
    return text


def grid_of(run: Run, now: float, width: int, span: float) -> Grid:
    """The run's attempts painted into `width` cells standing for `span` seconds from its start."""
    grid = Grid(max(run.lanes.count, 1), width, time_window(run, now)[0], span)
    attempts = run.attempts
    for i, att in enumerate(attempts):
        until = run.waiting_until(att, now)
        if until is not None and att.end is not None and until > att.end:
            grid.paint(att.lane, grid.cols(att.end, until), WAITING, i)
    for i, att in enumerate(attempts):
        end = att.end if att.end is not None else max(now, att.start)
        grid.paint(att.lane, grid.cols(att.start, end), att.state, i)
    return grid


def lane_rows(grid: Grid, run: Run, colors: Colors | None = None) -> list[Text]:
    """One line per lane of a painted grid, numbered."""
    return [_row_text(grid, lane, run.attempts, colors) for lane in range(len(grid.state))]


def render_lanes(
    run: Run, now: float, width: int, height: int, span: float | None = None, colors: Colors | None = None
) -> list[Text]:
    """The lanes picture as lines of text: lanes, then a time axis, then the legend.

    `span`: seconds the width stands for, shared by the runs being compared (at least this run's own).
    """
    width = max(width - LABEL_WIDTH, 10)
    span = max(time_window(run, now)[1], span or 0.0)
    lanes = max(run.lanes.count, 1)
    rows = max(height - 2, 1)
    shown = lanes if lanes <= rows else max(rows - 1, 0)
    grid = grid_of(run, now, width, span)
    lines = lane_rows(grid, run, colors)[:shown]
    if shown < lanes:
        lines.append(Text(f"   … {lanes - shown} more lanes", style="dim"))
    lines.extend(Text() for _ in range(rows - len(lines)))
    lines.append(axis(width, span))
    lines.append(legend(colors))
    return lines


def shared_span(runs: Iterable[Run], selected: Run, now: float, within: float = COMPARE_WITHIN_S) -> float:
    """The longest span of the runs started within `within` seconds of the selected one: one scale for all."""
    near = [r for r in runs if abs(r.started_at - selected.started_at) <= within]
    return max((time_window(r, now)[1] for r in near), default=time_window(selected, now)[1])


class LanesView(Widget):
    """The selected run's lanes, or lines drawn for it elsewhere (`monitor/compare.py`); redrawn by the app's timer."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._lines: list[Text] = []
        self._empty = Text("no run yet: waiting for batches", style="dim")

    def show(self, run: Run | None, now: float, span: float | None = None) -> None:
        """Draw `run`; `span` is the scale shared with the runs it is compared with (`shared_span`)."""
        colors = self.app.theme_variables
        self.border_subtitle = ""
        if run is None:
            self._lines = [self._empty, Text(), legend(colors)]
            self.border_title = "Batch lanes"
        else:
            size = self.content_size
            self._lines = render_lanes(run, now, size.width, size.height, span, colors)
            lanes = run.lanes.count
            self.border_title = f"Batch lanes · {run.run} · {lanes} lane{'s' if lanes != 1 else ''}"
            if span is not None and span > time_window(run, now)[1] + 1e-9:
                self.border_subtitle = "time scale shared with the runs beside it (v compares them)"
        self.refresh()

    def show_lines(self, lines: list[Text], title: str) -> None:
        """Draw a picture made elsewhere (runs compared side by side)."""
        self._lines, self.border_title, self.border_subtitle = lines, title, ""
        self.refresh()

    def render(self) -> Text:
        return Text("\n").join(self._lines)
