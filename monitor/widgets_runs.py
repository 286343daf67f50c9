"""The runs table: one row per run, updated cell by cell."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from monitor import format as fmt
from monitor.model import Model
from monitor.runs import Run
from monitor.theme import Colors, themed

COLUMNS = (
    ("run", "Run"),
    ("user", "User"),
    ("mode", "Mode"),
    ("progress", "Progress"),
    ("rate", "Rec/s"),
    ("eta", "ETA"),
    ("throttled", "429s"),
    ("retries", "Retries"),
    ("failed", "Failed"),
    ("status", "Status"),
)

# What a narrow terminal keeps: which run, how far, how long still, how throttled, how it ends.
COMPACT = ("run", "mode", "progress", "eta", "throttled", "status")
COMPACT_WIDTHS = {"run": 12, "mode": 15}

Cell = str | Text


def run_cells(run: Run, now: float, colors: Colors | None = None, compact: bool = False) -> dict[str, Cell]:
    """The table's cells for one run (`compact`: the narrow table's, shorter)."""
    mode = run.mode or ("?" if run.announced else "unannounced")
    if run.concurrency and run.mode:
        mode = f"{run.mode} x{run.concurrency}"
    eta = run.eta(now)
    widths = COMPACT_WIDTHS if compact else {}
    failed = themed("bold $error", colors) if run.failed_batches() else ""
    return {
        "run": fmt.middle(run.run, widths.get("run", 14)),
        "user": fmt.short(run.user or "?", 10),
        "mode": fmt.short(mode, widths.get("mode", 16)),
        "progress": fmt.bar(run.progress(), colors=colors),
        "rate": fmt.rate(run.records_per_s(now)),
        "eta": "done" if run.finished else fmt.duration(eta),
        "throttled": str(run.throttled),
        "retries": str(run.retries),
        "failed": Text(str(run.failed_batches()), style=failed),
        "status": fmt.status(run.display_status(now), colors),
    }


class RunsTable(DataTable[Cell]):
    """Rows keyed by run id; each tick only changed cells are written."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._shown: dict[str, dict[str, str]] = {}
        self.compact = False
        self._theme = ""
        self.columns_shown: tuple[tuple[str, str], ...] = COLUMNS

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        self.columns_shown = tuple(c for c in COLUMNS if not self.compact or c[0] in COMPACT)
        for key, label in self.columns_shown:
            self.add_column(label, key=key)

    def set_compact(self, compact: bool) -> None:
        """The narrow table (COMPACT's columns) or the full one; rebuilt only when it changes."""
        if compact == self.compact:
            return
        self.compact = compact
        self.clear(columns=True)
        self._shown.clear()
        self._add_columns()

    def sync(self, model: Model, now: float) -> list[str]:
        """Make the rows match the model; returns the run ids added."""
        if self.app.theme != self._theme or any(run_id not in model.runs for run_id in self._shown):
            # A new theme recolours cells whose text did not change: they are written afresh too.
            self.clear()
            self._shown.clear()
            self._theme = self.app.theme
        added = []
        colors, keys = self.app.theme_variables, {key for key, _ in self.columns_shown}
        for run_id, run in model.runs.items():
            cells = {k: v for k, v in run_cells(run, now, colors, self.compact).items() if k in keys}
            plain = {k: str(v) for k, v in cells.items()}
            shown = self._shown.get(run_id)
            if shown is None:
                self.add_row(*(cells[key] for key, _ in self.columns_shown), key=run_id)
                added.append(run_id)
            else:
                for key, value in plain.items():
                    if shown[key] != value:
                        self.update_cell(run_id, key, cells[key], update_width=True)
            self._shown[run_id] = plain
        return added

    def run_at_cursor(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def select_run(self, run_id: str) -> None:
        try:
            row = self.get_row_index(run_id)
        except Exception:
            return
        if row != self.cursor_row:
            self.move_cursor(row=row)
