"""Throughput, bound, limiter, event-log and status panels, each refreshed from the model by the app."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, RichLog, Sparkline, Static

from monitor import format as fmt
from monitor.bound import BoundView
from monitor.eventlog import KIND_ERROR, KIND_THROTTLED, LEGEND, SEARCH_HELP, LogEntry, Query
from monitor.limiter import format_period
from monitor.model import CODE_CLASSES, Model
from monitor.rates import RateSeries, span_for, span_label
from monitor.runs import Run
from monitor.theme import Colors, themed

SPARK_SECONDS = 180  # the sparklines' history: the last three minutes
# Colours by meaning, named by theme variable and resolved with the app's theme (monitor/theme.py).
KIND_STYLES = {KIND_THROTTLED: "$warning", KIND_ERROR: "$error"}
STATUS_STYLES = {200: "$success", 429: "$warning"}
CODE_STYLES = {"200": "$success", "429": "$warning", "4xx": "$error", "5xx": "$error", "reset": "$error"}
SLOW = "bold $warning"  # a run more than 1.5x its bound
LINE_IDS = ("records-line", "throttled-line", "spark-axis", "latency-head", "latency-server", "latency-attempt",
            "status-codes", "in-flight", "faults")  # fmt: skip
# The first kept longest; the latency head and the server's line go together.
OPTIONAL_LINES = ("latency-head", "latency-server", "faults", "latency-attempt", "in-flight")
NUM_W = 7  # every figure in a fixed field this wide, so two never run together


def flight_line(model: Model) -> Text:
    text = Text()
    text.append(f"in flight {model.in_flight()}", style="bold")
    if model.stats is not None:
        text.append(f"  server says {model.stats.in_flight}", style="dim")
    return text


def status_line(model: Model, colors: Colors | None = None) -> Text:
    text = Text()
    if not model.status_counts:
        return Text("no answers yet", style="dim")
    for code in sorted(model.status_counts):
        text.append(f"{code or 'err'}", style=themed(STATUS_STYLES.get(code, "$error"), colors))
        text.append(f":{model.status_counts[code]:,} ")
    return text


def codes_line(model: Model, now: float, span: int, width: int = 30, colors: Colors | None = None) -> Text:
    """The answers of the last `span` seconds by class (200, 429, 4xx, 5xx, dropped): those seen, then zeros."""
    counts = {name: model.codes[name].sum_between(now - span, now - 1) for name in CODE_CLASSES}
    parts = [(n, c) for n, c in counts.items() if c] + [(n, c) for n, c in counts.items() if not c]
    text, used = Text(), 0
    for name, count in parts:
        piece = f"{name} {count:,.0f}"
        if used + len(piece) > width or (not count and used + len(piece) + 1 > width):
            break
        if used:
            text.append(" ")
        text.append(name, style=themed(CODE_STYLES[name], colors) if count else "dim")
        text.append(f" {count:,.0f}", style="" if count else "dim")
        used += len(piece) + 1
    return text


def rate_line(label: str, series: RateSeries, now: float, span: int) -> Text:
    """`rec/s   1,234 now  max  5,012`: fixed fields, so two figures never run together."""
    peak = max(series.series(now, span), default=0.0)
    text = Text()
    text.append(f"{label:<6}", style="dim")
    text.append(f"{series.last_second(now):>{NUM_W},.0f}", style="bold")
    text.append(" now  max", style="dim")
    text.append(f"{peak:>{NUM_W},.0f}")
    return text


def axis_line(span: int, per_column: int | None, width: int) -> Text:
    """The sparklines' time axis: how far back the left edge is (and a column's seconds when one is one bin)."""
    left, right = f"-{span_label(span)}", "now"
    middle = f" {per_column} s/col " if per_column else "─"
    fill = max(0, width - len(left) - len(right) - len(middle))
    return Text(left + "─" * (fill // 2) + middle + "─" * (fill - fill // 2) + right, style="dim")


def latency_head() -> Text:
    return Text(f"{'latency ms':<10}{'p50':>6}{'p95':>6}{'p99':>6}", style="dim")


def latency_line(label: str, values: list[float] | None) -> Text:
    """`  server     301   305   310`: stored batches' service time, or attempts' send to answer."""
    text = Text()
    text.append(f"  {label:<8}", style="dim")
    if values is None:
        text.append(f"{'-':>6}{'-':>6}{'-':>6}", style="dim")
        return text
    for v in values:
        text.append(f"{v:>6,.0f}")
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
    """records/s and 429s/s now and at their peak, sparklines with a time axis, latency and answers."""

    DEFAULT_CSS = """
    ThroughputPanel > Static { height: 1; }
    ThroughputPanel > Sparkline { height: 1fr; min-height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="records-line")
        yield Sparkline([], id="records-spark")
        yield Static(id="throttled-line")
        yield Sparkline([], id="throttled-spark")
        yield Static(id="spark-axis")
        yield Static(id="latency-head")
        yield Static(id="latency-server")
        yield Static(id="latency-attempt")
        yield Static(id="status-codes")
        yield Static(id="in-flight")
        yield Static(id="faults")

    def on_mount(self) -> None:
        self.lines = {name: self.query_one(f"#{name}", Static) for name in LINE_IDS}
        self.records_spark = self.query_one("#records-spark", Sparkline)
        self.throttled_spark = self.query_one("#throttled-spark", Sparkline)
        self.ready = True

    def show(self, model: Model, now: float) -> None:
        if not getattr(self, "ready", False):
            return
        width = max(self.content_size.width, 10)
        # The last three minutes, but no more than the model has seen, so a short run fills the line.
        seen = now - model.first_ts if model.first_ts is not None else 0.0
        span, per_column = span_for(seen, width, SPARK_SECONDS)
        self.lines["records-line"].update(rate_line("rec/s", model.records, now, span))
        self.lines["throttled-line"].update(rate_line("429/s", model.throttled, now, span))
        self.records_spark.data = model.records.binned(now, span, width)
        self.throttled_spark.data = model.throttled.binned(now, span, width)
        bins = -(-span // per_column)
        self.lines["spark-axis"].update(axis_line(span, per_column if bins == width else None, width))
        self.lines["latency-head"].update(latency_head())
        self.lines["latency-server"].update(latency_line("server", model.service.percentiles(now, span)))
        self.lines["latency-attempt"].update(latency_line("attempt", model.attempt_ms.percentiles(now, span)))
        self.lines["status-codes"].update(codes_line(model, now, span, width, self.app.theme_variables))
        self.lines["in-flight"].update(flight_line(model))
        self.lines["faults"].update(faults_line(model))
        # A short panel keeps the rates, sparklines, axis and answers, and drops the rest in this order.
        spare = self.content_size.height - 6
        for i, name in enumerate(OPTIONAL_LINES):
            self.lines[name].display = i < spare


class BoundLine(Static):
    """One line under the lanes: what binds the selected run now and how far it is from its bound."""

    DEFAULT_CSS = """
    BoundLine { height: 1; padding: 0 1; }
    """

    def show(self, run: Run | None, now: float) -> None:
        view = run.bound(now) if run is not None else None
        if view is None:
            self.update(Text("bound: known once the run has announced its size and stored a batch", style="dim"))
            return
        self.update(bound_text(view, self.content_size.width or 200, self.app.theme_variables))


def bound_text(view: BoundView, width: int, colors: Colors | None = None) -> Text:
    """The bound line, in its short form (`sync/user 5/1s: 25 batches ≥ 4.8 s · 1.04x`) when narrow."""
    text = Text()
    if not view.whole:
        text.append("bound: ", style="dim")
    text.append(view.line().split(" · ")[0], style="bold")
    if view.ratio is not None:
        text.append(" · so far ", style="dim")
        text.append(f"{view.ratio:.2f}x", style=themed(SLOW, colors) if view.ratio > 1.5 else "bold")
        text.append(" the bound", style="dim")
    if text.cell_len <= width:
        return text
    v = view.verdict
    short = Text()
    short.append(f"{v.binds}: {v.batches:,} {'done' if view.whole else 'left'} ≥ {v.bound:.1f} s", style="bold")
    if view.ratio is not None:
        short.append(f" · {view.ratio:.2f}x", style=themed(SLOW, colors) if view.ratio > 1.5 else "bold")
    return short


def limiter_text(model: Model, height: int, width: int, colors: Colors | None = None) -> Text:
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
        text.append(f" {rule.throttled:>5}", style=themed("$warning", colors) if rule.throttled else "dim")
        lines += 1
        for key, count in rule.keys[:3]:
            if lines >= height:
                break
            hot = rule.limit is not None and count > rule.limit
            text.append("\n")
            text.append(f"  {fmt.short(key, name_w - 2):<{name_w - 2}}", style="dim")
            text.append(f" {count:>6}", style=themed("bold $error", colors) if hot else "")
            lines += 1
    return text


class LimiterPanel(Static):
    def show(self, model: Model) -> None:
        size = self.content_size
        self.update(limiter_text(model, max(size.height, 1), max(size.width, 20), self.app.theme_variables))


class LogPanel(Vertical):
    """The events that pass the log's filters, newest at the bottom; scrollable, searchable with `/`."""

    DEFAULT_CSS = """
    LogPanel > #log-search { display: none; height: 1; border: none; padding: 0; }
    LogPanel.searching > #log-search { display: block; }
    LogPanel > RichLog { height: 1fr; background: transparent; scrollbar-size-vertical: 1; }
    """
    BINDINGS = [
        Binding("slash", "search", "Search", show=False),
        Binding("i", "full_ids", "Full ids", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.query_text = ""
        self.full_ids = False
        self._key: tuple[object, ...] | None = None  # what the written lines were filtered by
        self._written = 0  # model.logged when the lines were last written
        self._empty = False  # "no events match" is what is written
        self._id_w = 2

    def compose(self) -> ComposeResult:
        yield Input(placeholder=SEARCH_HELP, id="log-search")
        yield RichLog(id="log-lines", max_lines=2000, wrap=False, auto_scroll=False)

    @property
    def lines(self) -> RichLog:
        return self.query_one("#log-lines", RichLog)

    def show(self, model: Model, kind_filter: str, run: str | None) -> None:
        log = self.lines
        if not log.size.width:
            return  # not laid out yet: RichLog would hold the lines back
        query = Query.parse(self.query_text) if self.query_text else None
        self._id_w = max(2, len(str(model.last_id or 0)))  # the ids' column, as wide as the newest id
        key = (kind_filter, run, self.query_text, self.full_ids, log.size.width, self._id_w)
        at_end = log.scroll_y >= log.max_scroll_y
        fresh = model.logged - self._written
        new: list[LogEntry] = []
        if key == self._key and 0 <= fresh <= len(model.log):
            new = [e for e in list(model.log)[len(model.log) - fresh :] if e.matches(kind_filter, run, query)]
        if key != self._key or not 0 <= fresh <= len(model.log) or (new and self._empty):
            # Filters changed (or the log was cleared, or outran the view): write it afresh.
            log.clear()
            new = model.entries(kind_filter, run, limit=log.max_lines or 2000, query=query)
            self._key, self._empty = key, not new
            if not new:
                log.write(Text("no events match", style="dim"))
        entries = new
        self._written = model.logged
        for entry in entries:
            log.write(self._line_of(entry), scroll_end=False)
        if entries and at_end:
            log.scroll_end(animate=False, immediate=False)
        where = f" · run {fmt.short(run, 10)}" if run else ""
        search = f" · /{self.query_text}" if self.query_text else ""
        self.border_title = f"Events · {kind_filter}{where}{search}"
        self.border_subtitle = f"{LEGEND} · i full ids" if not self.full_ids else f"{LEGEND} · full ids"

    def text(self) -> str:
        """The lines written, as plain text (for tests and the screen reader's eye)."""
        return "\n".join(strip.text for strip in self.lines.lines)

    def _line_of(self, entry: LogEntry) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{entry.id if entry.id is not None else '-':>{self._id_w}} ", style="dim")
        text.append(entry.line(self.full_ids), style=themed(KIND_STYLES.get(entry.kind, ""), self.app.theme_variables))
        return text

    # --- search and toggles ------------------------------------------------
    def action_search(self) -> None:
        self.add_class("searching")
        box = self.query_one("#log-search", Input)
        box.value = self.query_text
        box.focus()

    def action_full_ids(self) -> None:
        self.full_ids = not self.full_ids

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-search":
            self.query_text = event.value.strip()
            event.stop()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "log-search":
            self.lines.focus()  # the search stays; the box stays up to show it
            event.stop()

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape" and self.has_class("searching"):
            self.query_text = ""
            self.remove_class("searching")
            self.lines.focus()
            event.stop()
