"""Colours by meaning from the app's theme: Rich styles written like TCSS (`"bold $error"`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

from textual.theme import BUILTIN_THEMES

DEFAULT_THEME = "textual-dark"
THEMES = tuple(sorted(BUILTIN_THEMES))
_VARIABLE = re.compile(r"\$([a-z][a-z0-9-]*)")

Colors = Mapping[str, str]


@cache
def theme_colors(name: str = DEFAULT_THEME) -> Colors:
    """A built-in theme's variables (for views drawn without an app, e.g. in a test)."""
    return BUILTIN_THEMES[name].to_color_system().generate()


def themed(spec: str, colors: Colors | None = None) -> str:
    """`spec` with each `$variable` replaced by the theme's colour; unknown names are left out."""
    values = theme_colors() if colors is None else colors
    return _VARIABLE.sub(lambda m: values.get(m.group(1), ""), spec).strip()
