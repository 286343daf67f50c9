"""Every key of the main screen, once: bindings, help table, command palette and docs all come from here."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True, slots=True)
class Key:
    """One key: `keys` and `action` bind it (none: a widget's own key); `label` is the footer's word."""

    shown: str  # how the help and docs/monitor.md write it
    does: str
    action: str = ""
    keys: str = ""
    label: str = ""
    footer: bool = True


KEYS = (
    Key("↑ ↓", "select a run (the newest is followed until you pick another)"),
    Key("enter, d", "the selected run's details: every batch and attempt", "details", "d", "Details"),
    Key("p", "pause / resume the view (events are still collected; a replay holds)", "pause", "p", "Pause"),
    Key("c", "clear what was seen (the stream position is kept)", "clear", "c", "Clear"),
    Key(
        "v",
        "lanes: the selected run alone / beside the runs started near it, on one time scale",
        "compare",
        "v",
        "Compare",
    ),
    Key("f", "event log filter: all → throttled → errors", "filter", "f", "Filter"),
    Key("r", "event log: the selected run only / every run", "run_filter", "r", "This run"),
    Key("/", "event log: search (run:ID type:T status:N rule:R narrow it)", "log_search", "slash", "Search", False),
    Key("i", "event log: whole run ids / short ones", "log_ids", "i", "Full ids", False),
    Key("a", "faults and limits: latency, jitter, error and reset rates, sync/user limit", "admin", "a", "Faults"),
    Key("x", "export the selected run: events (JSON Lines) and batches (CSV)", "export", "x", "Export"),
    Key("?, F1", "this help", "help", "question_mark,f1", "Help"),
    Key("ctrl+p", "command palette: every action by name, and the theme", "command_palette"),
    Key("q, ctrl+c", "quit (prints a summary of the runs)", "quit", "q", "Quit"),
)

# A narrow footer cuts at the right: what a newcomer needs first goes left.
FOOTER_FIRST = ("help", "quit")
# Ctrl-C is Textual's copy key; here it quits, from anywhere, as in any terminal program.
CTRL_C = Binding("ctrl+c", "quit", "Quit", show=False, priority=True)


def bindings() -> list[BindingType]:
    """The app's bindings: every key above that is not a widget's own or Textual's palette key."""
    keys = sorted((k for k in KEYS if k.keys), key=lambda k: k.action not in FOOTER_FIRST)
    shown = {"help": "?", "log_search": "/"}
    out: list[BindingType] = [
        Binding(k.keys, k.action, k.label, show=k.footer, key_display=shown.get(k.action)) for k in keys
    ]
    return [*out, CTRL_C]


def palette_actions() -> list[Key]:
    """The actions the command palette offers: every bound key's."""
    return [k for k in KEYS if k.keys]


def help_table(does_width: int = 60) -> str:
    """The help screen's key table: keys in a column, each sentence wrapped beside its key (fits 80 columns)."""
    width = max(len(k.shown) for k in KEYS) + 2
    indent = " " * (width + 2)
    lines = [
        textwrap.fill(k.does, does_width + width + 2, initial_indent=f"  {k.shown:<{width}}", subsequent_indent=indent)
        for k in KEYS
    ]
    return "\n".join(lines)
