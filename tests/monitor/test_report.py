"""`python -m monitor report`: a run as an SVG or HTML picture, from a fixture, a real server's history, refusals."""

from __future__ import annotations

import html
import json
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.__main__ import parse_args
from monitor.report import LIMITS_FROM_EVENTS, LIMITS_FROM_SERVER, build, picture
from monitor.widgets_lanes import THROTTLE_MARK, THROTTLE_MARKS
from syncbed.events import RunEvent, ServerStats
from syncbed.responses import RuleSettings
from tests.cli_run import run_cli
from tests.conftest import LiveServer, ServerFactory, free_port
from tests.monitor.helpers import DEMO, SEED_AGGRESSIVE, load

BOUND = "sync/user 5/1s bound the run"  # the seed's per-user limit binds an aggressive run


def svg_text(svg: str) -> str:
    """The picture's characters in order, a line a line (Rich writes one <text> a segment, after the title's)."""
    matrix = svg[re.search(r'class="[^"]*-matrix">', svg).end() :]  # type: ignore[union-attr]
    return html.unescape("".join(re.findall(r">([^<]*)</text>", matrix))).replace("\xa0", " ")


def html_text(page: str) -> str:
    body = page[page.index("<body>") :]
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def lane_lines(text: str) -> list[str]:
    """The lanes' rows: those from lane 1 to the time axis."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(" 1 "))
    axis = next(i for i, line in enumerate(lines) if "┊0s" in line)
    return lines[first:axis]


def marks(lines: list[str]) -> int:
    return sum(line.count(THROTTLE_MARK) + line.count(THROTTLE_MARKS) for line in lines)


# --- the picture, without a socket ---------------------------------------------------------------
def test_the_svg_holds_the_run_every_429_its_axis_and_the_bound() -> None:
    model = build(load(SEED_AGGRESSIVE))
    ((run_id, run),) = model.runs.items()
    assert run.throttled == 3
    console = picture(model, run_id, 120)
    svg = console.export_svg(title=f"syncbed run {run_id}", clear=False)
    text = svg_text(svg)
    # The SVG draws every character the console printed (it leaves out runs of plain spaces).
    assert "".join(text.split()) == "".join(console.export_text().split())
    head = text.splitlines()[0]
    assert head.startswith(f"run {run_id} · aggressive · complete · 30,000/30,000 records · 30/30 batches")
    assert head.endswith("3 x 429") and LIMITS_FROM_EVENTS in text
    lanes = lane_lines(text)
    assert len(lanes) == run.lanes.count
    assert marks(lanes) == run.throttled  # each 429 is its own mark at this scale
    assert "┊0s" in text and "┊5s" in text and "throttled (429)" in text
    assert BOUND in text and "latency ms" in text and "rec/s" in text


def test_the_html_holds_the_same_picture() -> None:
    model = build(load(SEED_AGGRESSIVE))
    (run_id,) = model.runs
    page = picture(model, run_id, 100, "nord").export_html()
    text = html_text(page)
    assert run_id in text and BOUND in text and "┊0s" in text
    assert marks(lane_lines(text)) == 3


def test_a_narrow_picture_wraps_its_head_and_keeps_every_lane() -> None:
    model = build(load(SEED_AGGRESSIVE))
    (run_id,) = model.runs
    text = picture(model, run_id, 60).export_text()
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "3 x 429" in text and marks(lane_lines(text)) >= 1


def test_without_stats_the_bound_comes_from_the_limits_the_server_lists() -> None:
    """The server's history holds the run's own events only: the rules come from GET /api/v1/limiter."""
    events = [e for e in load(SEED_AGGRESSIVE) if isinstance(e, RunEvent)]
    assert not any(isinstance(e, ServerStats) for e in events)
    (run_id,) = build(events).runs
    assert BOUND not in picture(build(events), run_id).export_text()  # no rules known: slots and latency only
    rule = RuleSettings("sync/user", "throttle", 5, 1.0, "user", ["/api/v1/data/sync"], ["POST"], "fixed_window", True)
    model = build(events)
    model.limiter.seed([rule])
    text = picture(model, run_id, limits=LIMITS_FROM_SERVER).export_text()
    assert BOUND in text and LIMITS_FROM_SERVER in text
    off = build(events)
    off.limiter.seed([rule], enforced=False)  # limits off or a dry run: the rule is listed, not applied
    assert "sync/user" not in picture(off, run_id).export_text()


# --- the command, against a real server -----------------------------------------------------------
def report(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("monitor", "report", *args, timeout=60)


def refusal(out: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line a refusal prints (no traceback, nothing on stdout)."""
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def synced(
    shared_server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str, int]]:
    """A real server, and the id and 429s of an aggressive sync against its seed limits (10 at once, 5/s)."""
    srv = shared_server_factory(args=["--latency-ms", "300"])
    env = {"SYNCBED_TOKEN": srv.token("rita")}
    db = str(tmp_path_factory.mktemp("client") / "outbox.sqlite3")
    out = run_cli("client", "generate", "10000", "--db", db, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    args = ("sync", "--db", db, "--server", srv.url, "--mode", "aggressive", "--json")
    out = run_cli("client", *args, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[0])
    yield srv, result["run"], result["throttled"]


def test_a_real_servers_run_is_drawn_as_svg_and_html(synced: tuple[LiveServer, str, int], tmp_path: Path) -> None:
    srv, run_id, throttled = synced
    svg = tmp_path / "run.svg"
    out = report(run_id, "--svg", str(svg), "--server", srv.url, "--data-dir", str(srv.data_dir))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"wrote {svg}" and sorted(p.name for p in tmp_path.iterdir()) == ["run.svg"]
    assert stat.S_IMODE(svg.stat().st_mode) == 0o600  # like an export: it names users and runs
    text = svg_text(svg.read_text())
    head = text.splitlines()[0]
    assert head.startswith(f"run {run_id} · aggressive · complete · 10,000/10,000 records · 10/10 batches")
    assert throttled > 0 and head.endswith(f" · {throttled} x 429")
    assert 1 <= marks(lane_lines(text)) <= throttled  # several in one cell share one mark
    # The history holds the run's events and no `stats`: the limits are the server's of now.
    assert LIMITS_FROM_SERVER in text and f"history of {srv.url}" in text
    assert "┊0s" in text and "bound the run" in text
    page = tmp_path / "run.html"
    out = report(run_id, "--html", str(page), "--server", srv.url, "--admin-token", srv.admin_token, "--width", "90")
    assert out.returncode == 0, out.stderr
    assert run_id in html_text(page.read_text())


def test_an_unknown_run_is_a_setting_to_fix(synced: tuple[LiveServer, str, int], tmp_path: Path) -> None:
    srv, _, _ = synced
    svg = tmp_path / "run.svg"
    line = refusal(report("no-such-run", "--svg", str(svg), "--server", srv.url, "--data-dir", str(srv.data_dir)), 2)
    assert line.startswith(f"python -m monitor report: error: no run no-such-run on {srv.url}; `python -m monitor`")
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a part


def test_a_refused_admin_token_is_a_setting_to_fix(synced: tuple[LiveServer, str, int], tmp_path: Path) -> None:
    srv, run_id, _ = synced
    out = report(run_id, "--svg", str(tmp_path / "run.svg"), "--server", srv.url, "--admin-token", "sb_wrong")
    assert f"{srv.url} refused the admin token given with --admin-token" in refusal(out, 2)


def test_a_server_that_is_not_there_exits_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    out = report("some-run", "--svg", str(tmp_path / "run.svg"), "--server", url, "--admin-token", "t")
    assert f"could not reach {url}" in refusal(out, 1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--svg", "x.svg"], "RUN is required"),
        (["some-run"], "one of the arguments --svg --html is required"),
        (["bad/run", "--svg", "x.svg"], "argument RUN: expected"),
        (["some-run", "--svg", "x.svg", "--width", "9"], "argument --width"),
        (["--replay", "missing.jsonl", "--svg", "x.svg"], "no such file: missing.jsonl"),
        (["other-run", "--replay", str(SEED_AGGRESSIVE), "--svg", "x.svg"], "no run other-run in"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    assert says in refusal(report(*args), 2)


def test_a_picture_that_cannot_be_written_leaves_no_part_behind(tmp_path: Path) -> None:
    target = tmp_path / "run.svg"
    target.mkdir()  # a directory: FILE.tmp is written, and cannot be moved over it
    line = refusal(report("--replay", str(SEED_AGGRESSIVE), "--svg", str(target)), 2)
    assert line == f"python -m monitor report: error: cannot write {target}: Is a directory"
    assert [p.name for p in tmp_path.iterdir()] == ["run.svg"]  # its FILE.tmp went again


# --- from an exported file -----------------------------------------------------------------------
def test_a_replay_draws_the_files_longest_run_by_default(tmp_path: Path) -> None:
    model = build(load(DEMO))
    longest = max(model.runs.values(), key=lambda r: r.elapsed(model.now()))
    assert len(model.runs) > 1
    svg = tmp_path / "demo.svg"
    out = report("--replay", str(DEMO), "--svg", str(svg))
    assert out.returncode == 0, out.stderr
    text = svg_text(svg.read_text())
    assert text.startswith(f"run {longest.run} ") and f"export {DEMO.name}" in text
    assert not any(other in text for other in set(model.runs) - {longest.run})


def test_the_top_level_help_names_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert "python -m monitor report RUN --svg FILE" in " ".join(capsys.readouterr().out.split())
