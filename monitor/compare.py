"""Runs side by side on one time scale: each run's lanes, or one row of how many were in flight when they do not fit."""

from __future__ import annotations

import math
from collections.abc import Iterable

from rich.text import Text

from monitor import format as fmt
from monitor.lanes import FAILED, IN_FLIGHT, STORED, THROTTLED, WAITING
from monitor.runs import Run
from monitor.theme import Colors, themed
from monitor.widgets_lanes import (
    COMPARE_WITHIN_S,
    LABEL_WIDTH,
    STYLES,
    THROTTLE_MARK,
    THROTTLE_MARKS,
    Grid,
    axis,
    grid_of,
    lane_rows,
    legend,
    time_window,
)

BLOCKS = "▁▂▃▄▅▆▇█"  # attempts in flight at once, out of the most any compared run had
ACTIVE = (IN_FLIGHT, STORED, THROTTLED, FAILED)
LABEL_MAX = 14


def compared(runs: Iterable[Run], selected: Run, within: float = COMPARE_WITHIN_S) -> list[Run]:
    """The runs started within `within` s of the selected one (a demo's acts, a before/after pair), oldest first."""
    near = [r for r in runs if abs(r.started_at - selected.started_at) <= within]
    return sorted(near or [selected], key=lambda r: r.started_at)


def run_label(run: Run, index: int) -> str:
    return fmt.short(f"{index + 1} {run.mode or 'unknown'}", LABEL_MAX)


def run_figures(run: Run, now: float) -> str:
    """What sets the runs apart, after the label: time, lanes, 429s."""
    seconds = (run.finished_at if run.finished_at is not None else now) - time_window(run, now)[0]
    lanes = run.lanes.count
    return f"{fmt.duration(seconds)} · {lanes} lane{'s' if lanes != 1 else ''} · {run.throttled} 429s · {run.run}"


def _active(grid: Grid, col: int) -> tuple[int, int, bool, bool]:
    """(attempts in the cell, 429s that landed in it, whether one failed, whether a batch only waits there)."""
    states = [row[col] for row in grid.state]
    busy = sum(1 for s in states if s in ACTIVE)
    hits = sum(row[col] for row in grid.hits)
    return busy, hits, FAILED in states, busy == 0 and WAITING in states


def occupancy_row(grid: Grid, peak: int, colors: Colors | None = None) -> Text:
    """One cell per column: a 429 mark, a failure, a wait, or a block as tall as the attempts in flight."""
    style = {state: themed(spec, colors) for state, spec in STYLES.items()}
    ink = themed("$background", colors) or "black"
    text = Text()
    for col in range(grid.width):
        busy, hits, failed, waiting = _active(grid, col)
        if hits:
            mark = THROTTLE_MARKS if hits > 1 else THROTTLE_MARK
            text.append(mark, style=f"bold {ink} on {style[THROTTLED]}")
        elif failed:
            text.append("█", style=style[FAILED])
        elif waiting:
            text.append("╌", style=style[WAITING])
        elif busy:
            level = min(len(BLOCKS), max(1, math.ceil(busy / max(peak, 1) * len(BLOCKS))))
            in_flight = any(row[col] == IN_FLIGHT for row in grid.state)
            text.append(BLOCKS[level - 1], style=style[IN_FLIGHT if in_flight else STORED])
        else:
            text.append(" ")
    return text


def _header(run: Run, index: int, selected: bool, now: float) -> Text:
    text = Text("▸ " if selected else "  ", style="bold")
    text.append(run_label(run, index), style="bold" if selected else "")
    text.append(f"  {run_figures(run, now)}", style="dim")
    return text


def full_height(runs: list[Run]) -> int:
    """Rows the full picture takes: a head and the lanes per run, then the axis and legend."""
    return sum(1 + max(r.lanes.count, 1) for r in runs) + 2


def render_compare(
    runs: list[Run], selected: Run, now: float, width: int, height: int, colors: Colors | None = None
) -> list[Text]:
    """The compared runs on one time scale, each from its own start: every lane when they fit in `height`
    rows, else one row per run of how many attempts were in flight (the box scrolls what is left over)."""
    span = max(time_window(r, now)[1] for r in runs)
    if full_height(runs) <= height:
        cells = max(width - LABEL_WIDTH, 10)
        lines: list[Text] = []
        for i, run in enumerate(runs):
            lines.append(_header(run, i, run is selected, now))
            lines.extend(lane_rows(grid_of(run, now, cells, span), run, colors))
        lines.extend(Text() for _ in range(height - 2 - len(lines)))
        return [*lines, axis(cells, span), legend(colors)]
    indent = max(len(run_label(r, i)) for i, r in enumerate(runs)) + 3
    cells = max(width - indent, 10)
    grids = [grid_of(run, now, cells, span) for run in runs]
    peak = max(max((_active(g, col)[0] for col in range(g.width)), default=1) for g in grids)
    lines = []
    for i, (run, grid) in enumerate(zip(runs, grids, strict=True)):
        row = Text("▸ " if run is selected else "  ", style="bold")
        row.append(run_label(run, i).ljust(indent - 2), style="bold" if run is selected else "")
        lines.append(row + occupancy_row(grid, peak, colors))
    lines.extend(Text() for _ in range(height - 3 - len(lines)))
    key = Text(" " * indent + f"{BLOCKS[0]} 1 … {BLOCKS[-1]} {max(peak, 1)} in flight at once", style="dim")
    return [*lines, key, axis(cells, span, indent), legend(colors)]
