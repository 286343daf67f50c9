"""Throughput, limiter, event-log and status panels, each refreshed from the model by the app."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Label, Sparkline, Static

from monitor import format as fmt
from monitor.eventlog import KIND_ERROR, KIND_THROTTLED
from monitor.limiter import format_period
from monitor.model import Model

SPARK_SECONDS = 180  # the sparklines' history: the last three minutes
KIND_STYLES = {KIND_THROTTLED: "#ff9f1c", KIND_ERROR: "#f85149"}
STATUS_STYLES = {200: "#3fb950", 429: "#ff9f1c"}


def flight_line(model: Model) -> Text:
    text = Text()
    text.append(f"in flight {model.in_flight()}", style="bold")
    if model.stats is not None:
        text.append(f"  server says {model.stats.in_flight}", style="dim")
    return text


def status_line(model: Model) -> Text:
    text = Text()
    if not model.status_counts:
        return Text("no answers yet", style="dim")
    for code in sorted(model.status_counts):
        text.append(f"{code or 'err'}", style=STATUS_STYLES.get(code, "#f85149"))
        text.append(f":{model.status_counts[code]:,} ")
    return text


def faults_line(model: Model) -> Text:
    f = model.faults
    if not f:
        return Text("faults: not reported yet", style="dim")
    text = Text()
    text.append("lat ", style="dim")
    text.append(f"{f.get('latency_ms', 0)}±{f.get('jitter_ms', 0)}ms")
    text.append(" err ", style="dim")
    text.append(f"{float(f.get('error_rate') or 0) * 100:g}%")
    text.append(" reset ", style="dim")
    text.append(f"{float(f.get('reset_rate') or 0) * 100:g}%")
    return text


class ThroughputPanel(Vertical):
    """records/s and 429s/s: big current values and sparklines over the last minutes."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="digits-row"):
            with Vertical(classes="digits-box"):
                yield Label("records/s", classes="dim-label")
                yield Digits("0", id="records-digits")
            with Vertical(classes="digits-box"):
                yield Label("429s/s", classes="dim-label")
                yield Digits("0", id="throttled-digits")
        yield Sparkline([], id="records-spark")
        yield Sparkline([], id="throttled-spark")
        yield Static(id="in-flight")
        yield Static(id="status-codes")
        yield Static(id="faults")

    def on_mount(self) -> None:
        self.records_digits = self.query_one("#records-digits", Digits)
        self.throttled_digits = self.query_one("#throttled-digits", Digits)
        self.records_spark = self.query_one("#records-spark", Sparkline)
        self.throttled_spark = self.query_one("#throttled-spark", Sparkline)
        self.flight = self.query_one("#in-flight", Static)
        self.codes = self.query_one("#status-codes", Static)
        self.faults = self.query_one("#faults", Static)
        self.ready = True

    def show(self, model: Model, now: float) -> None:
        if not getattr(self, "ready", False):
            return
        # The last minutes, but no more than the model has seen, so a short run fills the line.
        seen = now - model.first_ts if model.first_ts is not None else 0.0
        seconds = max(10, min(SPARK_SECONDS, max(self.content_size.width, 10), int(seen) + 2))
        self.records_digits.update(f"{model.records.last_second(now):.0f}")
        self.throttled_digits.update(f"{model.throttled.last_second(now):.0f}")
        self.records_spark.data = model.records.series(now, seconds)
        self.throttled_spark.data = model.throttled.series(now, seconds)
        self.flight.update(flight_line(model))
        self.codes.update(status_line(model))
        self.faults.update(faults_line(model))


def limiter_text(model: Model, height: int, width: int) -> Text:
    if not model.limiter.rules:
        return Text("no limiter figures yet (they come with the server's stats)", style="dim")
    text = Text()
    name_w = max(width - 14, 6)
    text.append(f"{'rule':<{name_w}} {'limit':>6} {'429s':>5}", style="dim underline")
    lines = 1
    for rule in model.limiter.rules.values():
        if lines >= height:
            break
        limit = f"{rule.limit}/{format_period(rule.period)}" if rule.limit is not None else "?"
        text.append("\n")
        text.append(f"{fmt.short(rule.name, name_w):<{name_w}}", style="bold")
        text.append(f" {limit:>6}")
        text.append(f" {rule.throttled:>5}", style="#ff9f1c" if rule.throttled else "dim")
        lines += 1
        for key, count in rule.keys[:3]:
            if lines >= height:
                break
            hot = rule.limit is not None and count > rule.limit
            text.append("\n")
            text.append(f"  {fmt.short(key, name_w - 2):<{name_w - 2}}", style="dim")
            text.append(f" {count:>6}", style="bold #f85149" if hot else "")
            lines += 1
    return text


class LimiterPanel(Static):
    def show(self, model: Model) -> None:
        size = self.content_size
        self.update(limiter_text(model, max(size.height, 1), max(size.width, 20)))


class LogPanel(Static):
    """The newest events that pass the log's filters, newest at the bottom."""

    def show(self, model: Model, kind_filter: str, run: str | None) -> None:
        size = self.content_size
        entries = model.entries(kind_filter, run, limit=max(size.height, 1))
        text = Text(no_wrap=True, overflow="ellipsis")
        id_width = max((len(str(e.id)) for e in entries if e.id is not None), default=1)
        for i, entry in enumerate(entries):
            if i:
                text.append("\n")
            ident = str(entry.id) if entry.id is not None else "-"
            text.append(f"{ident:>{id_width}} ", style="dim")
            text.append(entry.text, style=KIND_STYLES.get(entry.kind, ""))
        if not entries:
            text.append("no events match", style="dim")
        self.update(text)
        where = f" · run {fmt.short(run, 10)}" if run else ""
        self.border_title = f"Events · {kind_filter}{where}"
