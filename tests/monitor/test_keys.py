"""The key table: the help screen names every binding, and docs/monitor.md's table is the help's, row by row."""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding

from monitor.app import MonitorApp
from monitor.keys import KEYS
from monitor.screens import HelpScreen
from tests.monitor.helpers import DEMO

DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitor.md"
NAMES = {"question_mark": "?", "f1": "F1", "slash": "/"}  # how a person writes the keys Textual spells out


def docs_keys() -> list[tuple[str, str]]:
    """The rows of the table under docs/monitor.md's `## Keys`."""
    section = DOCS.read_text().split("\n## Keys\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past the head and its rule
    cells = [[cell.strip().replace("`", "") for cell in row.strip("|").split("|")] for row in rows]
    return [(key, does) for key, does in cells]


def test_docs_key_table_is_the_help_table() -> None:
    assert docs_keys() == [(k.shown, k.does) for k in KEYS]


async def test_the_help_screen_names_every_binding_and_the_palette() -> None:
    app = MonitorApp(replay=DEMO, speed=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
    rows = {line.split("  ")[1].strip(): line for line in text.splitlines() if line.startswith("  ") and "  " in line}
    shown = " ".join(rows)
    bound = [key for b in app.BINDINGS if isinstance(b, Binding) for key in b.key.split(",")]
    assert bound and all(NAMES.get(key, key) in shown for key in bound), (bound, shown)
    assert "ctrl+p" in shown and "↑ ↓" in shown and "enter" in shown
