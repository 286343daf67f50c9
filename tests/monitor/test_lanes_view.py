"""The lanes picture as text: bars per lane, labels, 429 counts, waits, axis and legend."""

from __future__ import annotations

import pytest

from monitor import format as fmt
from monitor.lanes import STATE_LABELS
from monitor.model import Model
from monitor.widgets_lanes import axis, render_lanes, shared_span, time_window
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


def test_each_429_is_its_own_mark_on_the_slot_it_waits_in() -> None:
    lines = picture(DEMO, "agg-3")
    lanes = [line for line in lines[:-2] if line.strip()]
    # Ten in flight: five stored, five refused within 4 ms. Each 429 holds its own slot while it waits,
    # as the client's worker does, so it is its own mark on its own lane, and its retry follows there.
    assert len(lanes) == 10 and lanes[9].startswith("10 ")
    for lane in lanes[5:]:
        assert lane[3] == "\u2715" and lane[4] == "╌"
    assert lanes[5].split("╌")[-1].startswith("6") and lanes[9].split("╌")[-1].startswith("10")
    # A mark is never a digit, so it cannot merge with a batch label into another number.
    assert not any(ch.isdigit() for lane in lanes[5:] for ch in lane[3:5])
    assert "╌" in lanes[2]  # the 503'd batch waits for its retry too


def test_runs_compared_share_one_scale() -> None:
    events = load(DEMO)
    model = Model(clock=ManualClock(events[-1].ts))
    model.ingest_many(events)
    agg, now = model.runs["agg-3"], model.now()
    span = shared_span(model.runs.values(), agg, now)
    longest = max(time_window(r, now)[1] for r in model.runs.values())
    assert span == pytest.approx(longest) and span > time_window(agg, now)[1]  # the slowest run sets the scale
    alone = render_lanes(agg, model.now(), 100, 12)[-2].plain
    shared = render_lanes(agg, model.now(), 100, 12, span)[-2].plain
    assert alone != shared and shared.split()[-1] != alone.split()[-1]  # the axis says the longer span


def test_mid_run_keeps_in_flight_bars_open_to_now() -> None:
    lines = picture(MIDRUN, "agg-3", width=60)
    ends = [len(line.rstrip()) for line in lines[:-2] if line.rstrip().endswith("▌")]
    assert ends.count(max(ends)) == 5  # the five in flight reach now, past every finished bar


def test_few_rows_say_how_many_lanes_are_hidden() -> None:
    lines = picture(DEMO, "agg-3", height=5)
    assert lines[2].strip() == "… 8 more lanes" and len(lines) == 5


def test_axis_labels_fit_and_ids_keep_their_ends() -> None:
    text = axis(50, 10.0).plain
    assert text.split() == ["┊0s", "┊2s", "┊4s", "┊6s", "┊8s"] and len(text) == 53
    assert fmt.middle("c-1795900240-5169c6c4", 14) == "c-17…-5169c6c4" and fmt.middle("short", 14) == "short"
