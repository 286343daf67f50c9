"""Colours by meaning: styles name theme variables, and the Python views hold no colour of their own."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.theme import THEMES, theme_colors, themed

MONITOR = Path(__file__).resolve().parents[2] / "monitor"
HEX = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b")


def test_styles_name_theme_variables() -> None:
    dark, nord = theme_colors("textual-dark"), theme_colors("nord")
    assert themed("bold $error on $success", dark) == f"bold {dark['error']} on {dark['success']}"
    assert themed("$warning", nord) == nord["warning"] != dark["warning"]
    assert themed("dim") == "dim" and themed("bold $no-such-variable") == "bold"
    assert "textual-dark" in THEMES and "nord" in THEMES


def test_no_colour_literals_in_the_python_views() -> None:
    found = {
        path.name: HEX.findall(path.read_text())
        for path in sorted(MONITOR.glob("*.py"))
        if HEX.search(path.read_text())
    }
    assert found == {}
    assert not HEX.search((MONITOR / "monitor.tcss").read_text())  # the stylesheet too: $success, $warning...
