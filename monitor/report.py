"""`python -m monitor report`: one run as a picture (SVG or HTML) for a bug report, without a terminal."""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.color import Color, ColorParseError
from rich.console import Console, RenderableType
from rich.terminal_theme import DEFAULT_TERMINAL_THEME, TerminalTheme
from rich.text import Text
from textual.renderables.sparkline import Sparkline

from monitor import widgets_panels as panels
from monitor.admin import DEFAULT_SERVER, AdminClient, AdminError, admin_token_of
from monitor.model import Model
from monitor.rates import span_for
from monitor.replay import decode_lines, read_events
from monitor.runs import Run
from monitor.stream import EXIT_SETTINGS, EXIT_UNREACHABLE, REFUSED_STATUSES, Received
from monitor.theme import DEFAULT_THEME, THEMES, Colors, theme_colors, themed
from monitor.widgets_lanes import render_lanes
from syncbed.cli import shared_options
from syncbed.contract import RUNS_PATH
from syncbed.paths import private_file
from syncbed.wire import run_id_problem, server_url_problem

PROG = "python -m monitor report"
LIMITS_FROM_EVENTS = "limits: from the run's events"
LIMITS_FROM_SERVER = "limits: as the server has them now"
LIMITS_NONE = "limits: none known"
RATE_HORIZON = 600  # seconds the model's rate series keep: a longer run's throughput is its last ten minutes
NO_BOUND = "bound: unknown (the run never announced its size, or stored no batch)"
STATUS_STYLES = {"complete": "bold $success", "running": "bold $primary"}  # anything else is trouble


def picture(
    model: Model, run: str, width: int = 120, theme: str = DEFAULT_THEME, *, limits: str | None = None,
    source: str = "",
) -> Console:  # fmt: skip
    """The run drawn into a recording console: title, caption, lanes, bound line and throughput."""
    colors = theme_colors(theme)
    view, now = model.runs[run], model.now()
    if limits is None:
        limits = LIMITS_FROM_EVENTS if has_limits(model) else LIMITS_NONE
    # A terminal of its own, wide as asked and in full colour whatever this process's stdout is.
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      no_color=False, legacy_windows=False)  # fmt: skip
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(view.started_at))
    # The head may wrap in a narrow picture; the lanes and panel lines are cut at the edge, as on screen.
    console.print(title_line(view, now, colors))
    console.print(Text(" · ".join(part for part in (limits, source, f"started {started}") if part), style="dim"))
    lines: list[RenderableType] = [Text()]
    lines.extend(render_lanes(view, now, width, max(view.lanes.count, 1) + 2, None, colors))
    bound = view.bound(now)
    lines.append(panels.bound_text(bound, width) if bound is not None else Text(NO_BOUND, style="dim"))
    lines.append(Text())
    lines.extend(throughput(model, view, now, width, colors))
    for line in lines:
        if isinstance(line, Sparkline):  # it draws no line end: made a line of text, the next starts below
            drawn = Text()
            for seg in console.render(line, console.options.update(width=width)):
                drawn.append(seg.text, seg.style)
            line = drawn
        console.print(line, no_wrap=True, overflow="crop", crop=True)
    return console


def title_line(run: Run, now: float, colors: Colors) -> Text:
    """`run ID · aggressive · complete · 30,000/30,000 records · 30/30 batches · 5.1 s · 3 x 429`."""
    records = f"{run.records_done:,}" + (f"/{run.total_records:,}" if run.total_records is not None else "")
    batches = f"{run.batches_done():,}" + (f"/{run.total_batches:,}" if run.total_batches is not None else "")
    text = Text()
    text.append(f"run {run.run}", style="bold")
    text.append(f" · {run.mode or 'mode ?'} · ")
    text.append(run.status, style=themed(STATUS_STYLES.get(run.status, "bold $error"), colors))
    text.append(f" · {records} records · {batches} batches · {run.elapsed(now):.1f} s · ")
    text.append(f"{run.throttled:,} x 429", style=themed("bold $warning", colors) if run.throttled else "")
    return text


def throughput(model: Model, run: Run, now: float, width: int, colors: Colors) -> list[RenderableType]:
    """The throughput panel's lines over the run's span, its sparklines drawn as Rich renderables."""
    end = math.floor(now) + 1  # the rate lines count complete seconds only: the run's last one is one
    span, per_column = span_for(end - run.started_at, width, RATE_HORIZON)
    bins = -(-span // per_column)
    return [
        panels.rate_line("rec/s", model.records, end, span),
        _spark(model.records.binned(end, span, width), width, "$success", colors),
        panels.rate_line("429/s", model.throttled, end, span),
        _spark(model.throttled.binned(end, span, width), width, "$warning", colors),
        panels.axis_line(span, per_column if bins == width else None, width),
        panels.latency_head(),
        panels.latency_line("server", model.service.percentiles(end, span)),
        panels.latency_line("attempt", model.attempt_ms.percentiles(end, span)),
        panels.codes_line(model, end, span, width),
        panels.faults_line(model) if model.faults else Text("faults: none in the run's events", style="dim"),
    ]


def _spark(data: list[float], width: int, variable: str, colors: Colors) -> Sparkline[float]:
    """A sparkline from the dark shade of the colour to the colour, as the live panel draws it."""
    return Sparkline(data or [0.0], width=width, min_color=_color(f"{variable}-darken-3", colors),
                     max_color=_color(variable, colors))  # fmt: skip


def _color(spec: str, colors: Colors) -> Color:
    try:
        return Color.parse(themed(spec, colors))
    except ColorParseError:  # the ANSI themes name terminal colours Rich spells otherwise
        return Color.default()


def terminal_theme(colors: Colors) -> TerminalTheme:
    """The page behind the picture in the theme's background and text colours (ANSI ones as Rich's)."""
    palette = DEFAULT_TERMINAL_THEME.ansi_colors
    try:
        back, fore = (Color.parse(colors[name]).get_truecolor() for name in ("background", "foreground"))
    except (ColorParseError, KeyError):
        return DEFAULT_TERMINAL_THEME
    return TerminalTheme(back, fore, [palette[i] for i in range(8)], [palette[i] for i in range(8, 16)])


def has_limits(model: Model) -> bool:
    """Whether the events told the model any rule's limit (a `stats` or a limits edit did)."""
    return any(rule.limit is not None for rule in model.limiter.rules.values())


def build(events: Sequence[Received]) -> Model:
    """The model of these events, its clock stopped at the last one."""
    last = max((e.ts for e in events if e.ts is not None), default=0.0)
    model = Model(clock=lambda: last)
    model.ingest_many(events)
    return model


def write(console: Console, path: Path, kind: str, title: str, theme: TerminalTheme) -> None:
    """The picture written whole: into FILE.tmp (0600, it names users and runs), then moved over FILE."""
    body = console.export_svg(title=title, theme=theme) if kind == "svg" else console.export_html(theme=theme)
    tmp = path.with_name(path.name + ".tmp")
    try:
        private_file(tmp).write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like every other refusal of the report (argparse's usage block stays in --help)."""
        self.exit(EXIT_SETTINGS, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description=__doc__, parents=[shared_options()])
    parser.add_argument("run", nargs="?", metavar="RUN", help="the run id (with --replay: default the file's longest)")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--svg", type=Path, metavar="FILE", help="write the picture as SVG")
    out.add_argument("--html", type=Path, metavar="FILE", help="write the picture as HTML")
    parser.add_argument("--server", default=os.environ.get("SYNCBED_SERVER", DEFAULT_SERVER), help="server URL")
    parser.add_argument("--admin-token", help="the server's admin token (default: read from --data-dir)")
    parser.add_argument("--data-dir", type=Path, help="the local server's data directory (for its admin token)")
    parser.add_argument("--replay", type=Path, metavar="EXPORT.jsonl", help="draw an exported run, no server")
    parser.add_argument("--width", type=_width, default=120, help="columns of the picture (default: 120)")
    parser.add_argument("--theme", choices=THEMES, default=DEFAULT_THEME, metavar="NAME",
                        help=f"colours: {', '.join(THEMES)}")  # fmt: skip
    args = parser.parse_args(argv)
    if args.run is None and args.replay is None:
        parser.error("RUN is required (or --replay EXPORT.jsonl)")
    if args.run is not None and (problem := run_id_problem(args.run)) is not None:
        parser.error(f"argument RUN: {problem}")
    return args


def _width(text: str) -> int:
    if not text.isdigit() or not 40 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"expected a whole number of columns from 40 to 1000, got {text!r}")
    return int(text)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _from_file(args: argparse.Namespace) -> tuple[Model, str, str] | int:
    """(model, run, caption note) of an exported file, or the exit code after saying what is wrong."""
    if not args.replay.is_file():
        return _fail(f"no such file: {args.replay}", EXIT_SETTINGS)
    try:
        events = read_events(args.replay)
    except OSError as exc:
        return _fail(f"cannot read {args.replay}: {exc.strerror or exc}", EXIT_SETTINGS)
    model = build(events)
    if not model.runs:
        return _fail(f"{args.replay} holds no run's events", EXIT_SETTINGS)
    run = args.run or max(model.runs.values(), key=lambda r: r.elapsed(model.now())).run
    if run not in model.runs:
        return _fail(f"no run {run} in {args.replay}; it holds {', '.join(model.runs)}", EXIT_SETTINGS)
    if len(model.runs) > 1:  # the picture is of one run: its throughput must not count the others'
        model = build([e for e in events if getattr(e, "run", None) in (None, run)])
    return model, run, LIMITS_FROM_EVENTS if has_limits(model) else "limits: none in the file"


async def _fetch(admin: AdminClient, run: str) -> tuple[Model, str]:
    """The run's model from the server's history; its limits from the server when its events hold none."""
    model = build(decode_lines((await admin.run_events(run)).splitlines()))
    if run not in model.runs or has_limits(model):
        return model, LIMITS_FROM_EVENTS
    try:
        view = await admin.limiter()
    except AdminError as exc:  # the run's picture is still worth having: say what its bound lacks
        return model, f"{LIMITS_NONE} ({exc})"
    model.limiter.seed(view.rules, enforced=view.enabled and not view.dry_run)
    return model, LIMITS_FROM_SERVER


def _refusal(exc: AdminError, server: str, run: str, token_source: str) -> tuple[str, int]:
    """What to fix, in one sentence, and the exit code, when the server did not hand the run over."""
    if exc.status == 404:
        where = f"`python -m monitor` lists the runs as they go, GET {RUNS_PATH} the server's recent ones"
        return f"no run {run} on {server}; {where}", EXIT_SETTINGS
    if exc.status in REFUSED_STATUSES:
        fix = "pass --admin-token TOKEN or --data-dir DIR with the data directory of the server at that address"
        return f"{server} refused the admin token {token_source} ({exc}); {fix}", EXIT_SETTINGS
    if exc.status is None:
        fix = "is the server running there? Start it with `python -m server`, or pass --server URL"
        return f"could not reach {server} ({exc}); {fix}", EXIT_UNREACHABLE
    return f"{server} could not export run {run} ({exc})", EXIT_UNREACHABLE


def _from_server(args: argparse.Namespace) -> tuple[Model, str, str] | int:
    if (problem := server_url_problem(args.server)) is not None:
        return _fail(f"argument --server: {problem}", EXIT_SETTINGS)
    try:
        token, source = admin_token_of(args.admin_token, args.data_dir)
    except ValueError as exc:
        return _fail(str(exc), EXIT_SETTINGS)
    run, server = args.run, args.server
    try:
        model, note = asyncio.run(_fetch(AdminClient(server, token), run))
    except AdminError as exc:
        return _fail(*_refusal(exc, server, run, source))
    if run not in model.runs:
        return _fail(f"{server} holds no events of run {run}", EXIT_SETTINGS)
    return model, run, note


def main(argv: list[str]) -> int:
    """`python -m monitor report ...`: 0 written, 2 a setting to fix, 1 a server that was not there."""
    args = parse_args(argv)
    got = _from_file(args) if args.replay is not None else _from_server(args)
    if isinstance(got, int):
        return got
    model, run, note = got
    source = f"export {args.replay.name}" if args.replay is not None else f"history of {args.server}"
    console = picture(model, run, args.width, args.theme, limits=note, source=source)
    path, kind = (args.svg, "svg") if args.svg is not None else (args.html, "html")
    try:
        write(console, path, kind, f"syncbed run {run}", terminal_theme(theme_colors(args.theme)))
    except OSError as exc:
        return _fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_SETTINGS)
    print(f"wrote {path}")
    return 0
