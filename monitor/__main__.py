"""`python -m monitor`: follow a server's events live, replay an exported run, or run the demo.

`python -m monitor report RUN --svg FILE` draws one run as a picture instead (see `report --help`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from monitor.admin import DEFAULT_SERVER, admin_token_of
from monitor.export import EXPORTS_DIR
from monitor.stream import EXIT_SETTINGS, StreamFailed
from monitor.theme import DEFAULT_THEME, THEMES
from syncbed.cli import shared_options
from syncbed.contract import RESPONSE_STYLES
from syncbed.paths import default_data_dir
from syncbed.wire import server_url_problem

REPORT = "report"  # the one subcommand; every other command line is the flat options below


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m monitor", description=__doc__, parents=[shared_options()])
    parser.add_argument("--server", default=os.environ.get("SYNCBED_SERVER", DEFAULT_SERVER), metavar="URL[,URL...]",
                        help="server URL; a cluster's workers comma-separated: when one breaks, the next is "
                        "followed from the last event seen")  # fmt: skip
    parser.add_argument("--admin-token", help="the server's admin token (default: read from --data-dir)")
    parser.add_argument("--data-dir", type=Path, help="the local server's data directory (for its admin token)")
    parser.add_argument("--replay", type=Path, metavar="FILE.jsonl", help="replay exported events instead")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed; 0 shows the end at once")
    parser.add_argument(
        "--export-dir", type=Path, help="where the export key writes (default: the data directory's exports/)"
    )
    parser.add_argument("--demo", action="store_true", help="start a server and demo clients, and watch them")
    demo = parser.add_argument_group("the demo (with --demo; scripts/demo --monitor passes its own)")
    demo.add_argument("--records", type=int, default=10_000, help="records per act (default 10000: 10 batches)")
    demo.add_argument("--latency-ms", type=int, default=300, help="server latency per batch (default 300)")
    demo.add_argument("--response", choices=RESPONSE_STYLES, default="syncbed", help="the server's response style")
    parser.add_argument("--theme", choices=THEMES, default=DEFAULT_THEME, metavar="NAME",
                        help=f"colours (ctrl+p switches live): {', '.join(THEMES)}")  # fmt: skip
    scripted = parser.add_argument_group("scripted runs (CI, docs)")
    scripted.add_argument("--headless", action="store_true", help="no terminal output (with --exit-after)")
    scripted.add_argument("--exit-after", type=float, metavar="S", help="quit after S seconds")
    scripted.add_argument("--screenshot", type=Path, metavar="FILE.svg", help="save the screen when quitting")
    scripted.add_argument("--size", type=_size, default=(120, 36), metavar="WxH", help="headless screen size")
    return parser.parse_args(argv)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected WIDTHxHEIGHT, e.g. 120x36") from None
    return width, height


def _fail(message: str, code: int) -> int:
    print(f"python -m monitor: error: {message}", file=sys.stderr)
    return code


def _stream_failure(server: str, token_source: str, failure: StreamFailed) -> str:
    """What to fix, in one sentence, when the stream could never be followed."""
    if failure.refused:
        return (
            f"{server} refused the admin token {token_source} ({failure.detail}); pass --admin-token TOKEN "
            "or --data-dir DIR with the data directory of the server at that address"
        )
    return (
        f"could not reach {server} within {failure.within:g} s ({failure.detail}); is the server running "
        "there? Start it with `python -m server`, or pass --server URL"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [REPORT]:
        from monitor.report import main as report  # no Textual app: a picture of one run

        return report(argv[1:])
    args = parse_args(argv)
    if args.records < 1 or args.latency_ms < 0:
        return _fail("--records must be at least 1 and --latency-ms at least 0", EXIT_SETTINGS)
    from monitor.app import MonitorApp  # Textual loads only when a screen is wanted

    export_dir = args.export_dir or (args.data_dir or default_data_dir()) / EXPORTS_DIR
    common = {"export_dir": export_dir, "exit_after": args.exit_after, "screenshot": args.screenshot,
              "theme": args.theme}  # fmt: skip
    size = args.size if args.headless else None
    if args.replay is not None:
        if not args.replay.is_file():
            print(f"no such file: {args.replay}", file=sys.stderr)
            return EXIT_SETTINGS
        app = MonitorApp(replay=args.replay, speed=args.speed, **common)
        app.run(headless=args.headless, size=size)
    elif args.demo:
        # The one place the monitor reaches the layer above it: --demo starts a server and clients to watch,
        # which only the harness may do. Imported here, so the dashboard itself never depends on it.
        from harness.demo_clients import Demo, narrate, story

        with Demo(records=args.records, latency_ms=args.latency_ms, response=args.response) as demo:
            # The acts are there to be compared: their lanes are stacked on one time scale from the start.
            app = MonitorApp(server=demo.url, admin_token=demo.admin_token, compare=True, **common)
            narrate(demo, app)
            demo.start_clients()
            app.run(headless=args.headless, size=size)
            print("\n".join(story(demo)))
    else:
        for url in args.server.split(","):
            if (problem := server_url_problem(url)) is not None:
                return _fail(f"argument --server: {problem}", EXIT_SETTINGS)
        try:
            token, source = admin_token_of(args.admin_token, args.data_dir)
        except ValueError as exc:
            return _fail(str(exc), EXIT_SETTINGS)
        app = MonitorApp(server=args.server, admin_token=token, **common)
        app.run(headless=args.headless, size=size)
        if app.failure is not None:
            return _fail(_stream_failure(args.server, source, app.failure), app.failure.exit_code)
    lines = app.model.summary()
    print("\n".join(lines) if lines else "no runs seen")
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
