"""Small text formatters shared by the views."""

from __future__ import annotations

from rich.text import Text

from monitor.theme import Colors, themed

STATUS_STYLES = {
    "running": "bold $primary",
    "complete": "bold $success",
    "partial": "bold $warning",
    "failed": "bold $error",
    "stalled": "bold $warning",
    "lost": "bold $error",
}


def bar(fraction: float | None, width: int = 10, colors: Colors | None = None) -> Text:
    """A text progress bar with its percentage; unknown totals show as a dim dash."""
    if fraction is None:
        return Text("?".center(width + 5), style="dim")
    filled = round(fraction * width)
    text = Text()
    text.append("█" * filled, style=themed("$success", colors))
    text.append("░" * (width - filled), style="dim")
    text.append(f" {fraction * 100:3.0f}%")
    return text


def rate(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,.0f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def status(value: str, colors: Colors | None = None) -> Text:
    return Text(value, style=themed(STATUS_STYLES.get(value, ""), colors))


def short(value: object, width: int = 10) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def middle(value: object, width: int = 12) -> str:
    """Long ids keep both ends (run ids often differ only at the end)."""
    text = str(value)
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
