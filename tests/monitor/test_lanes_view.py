"""The lanes picture as text: bars per lane, labels, 429 counts, waits, axis and legend."""

from __future__ import annotations

from monitor import format as fmt
from monitor.lanes import STATE_LABELS
from monitor.model import Model
from monitor.widgets_lanes import axis, render_lanes
from tests.monitor.helpers import DEMO, MIDRUN, ManualClock, load


def picture(path: object, run: str, width: int = 100, height: int = 12) -> list[str]:
    events = load(path)  # type: ignore[arg-type]
    model = Model(clock=ManualClock(events[-1].ts))
    model.ingest_many(events)
    return [line.plain for line in render_lanes(model.runs[run], model.now(), width, height)]


def test_sequential_run_is_one_lane_of_labelled_bars() -> None:
    lines = picture(DEMO, "seq-1")
    assert lines[0].startswith(" 1 1") and all(f"{b}" in lines[0] for b in range(1, 6))
    assert lines[0].count("▌") == 5  # five bars, each closed by a half block
    assert all(not line.strip() for line in lines[1:10])
    assert lines[-2].lstrip().startswith("┊0s") and all(label in lines[-1] for label in STATE_LABELS.values())


def test_concurrent_run_stacks_lanes_and_counts_simultaneous_429s() -> None:
    lines = picture(DEMO, "agg-3")
    lanes = [line for line in lines[:-2] if line.strip()]
    assert len(lanes) == 6 and lanes[5].startswith(" 6 ")
    # Five 429s within 4 ms land in one cell of lane 6: drawn as a count, then a dashed wait to the retry.
    assert lanes[5][3] == "5" and "╌" in lanes[5]
    assert "╌" in lanes[2]  # the 503'd batch waits for its retry too


def test_mid_run_keeps_in_flight_bars_open_to_now() -> None:
    lines = picture(MIDRUN, "agg-3", width=60)
    assert sum(1 for line in lines[:5] if line.rstrip().endswith("▌")) == 5  # the five in flight reach the edge


def test_few_rows_say_how_many_lanes_are_hidden() -> None:
    lines = picture(DEMO, "agg-3", height=5)
    assert lines[2].strip() == "… 4 more lanes" and len(lines) == 5


def test_axis_labels_fit_and_ids_keep_their_ends() -> None:
    text = axis(50, 10.0).plain
    assert text.split() == ["┊0s", "┊2s", "┊4s", "┊6s", "┊8s"] and len(text) == 53
    assert fmt.middle("c-1795900240-5169c6c4", 14) == "c-17…-5169c6c4" and fmt.middle("short", 14) == "short"
