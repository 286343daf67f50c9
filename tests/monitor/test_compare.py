"""Runs compared side by side (the demo's acts): one time scale, each run from its own start."""

from __future__ import annotations

from monitor.app import MonitorApp
from monitor.compare import BLOCKS, compared, full_height, render_compare
from monitor.model import Model
from monitor.widgets_lanes import THROTTLE_MARK, THROTTLE_MARKS, bar_label, render_lanes, time_window
from tests.monitor.helpers import DEMO_ACTS, SEED_AGGRESSIVE, ManualClock, load


def fed(path: object) -> Model:
    events = load(path)  # type: ignore[arg-type]
    model = Model(clock=ManualClock(events[-1].ts))
    model.ingest_many(events)
    return model


def marks(text: str) -> int:
    return text.count(THROTTLE_MARK) + text.count(THROTTLE_MARKS)


def test_the_demo_acts_one_row_each_in_start_order_when_their_lanes_do_not_fit() -> None:
    model = fed(DEMO_ACTS)
    runs = list(model.runs.values())
    group = compared(runs, runs[3])
    assert [r.run for r in group] == [r.run for r in sorted(runs, key=lambda r: r.started_at)]
    assert full_height(group) > 20
    lines = [line.plain for line in render_compare(group, runs[3], model.now(), 100, 20)]
    rows = lines[:6]
    assert [row[2:].split()[1] for row in rows] == [r.mode for r in group]
    assert [row.startswith("▸") for row in rows] == [r is runs[3] for r in group]
    seq, ref, cons, agg, adaptive = (row[17:] for row in rows[:5])
    # Sequential is one in flight at a time, the others five: the lowest block against a taller one.
    assert set(seq.strip()) == {BLOCKS[0]} and BLOCKS[4] in cons
    # The plan's client and aggressive draw 429s and waits; conservative and adaptive neither.
    assert marks(ref) and "╌" in ref and marks(agg) and "╌" in agg
    assert not marks(cons) and not marks(adaptive) and "╌" not in cons + adaptive
    # One scale: sequential (3 s) is about three times as long on screen as adaptive (1.2 s).
    seconds = {r.mode: time_window(r, model.now())[1] for r in group[:5]}
    drawn = len(seq.rstrip()) / len(adaptive.rstrip())
    assert abs(drawn - seconds["sequential"] / seconds["adaptive"]) < 0.3
    assert lines[-2].lstrip().startswith("┊0s") and "in flight at once" in lines[-3]


def test_every_lane_of_every_run_when_they_fit() -> None:
    model = fed(DEMO_ACTS)
    group = compared(model.runs.values(), next(iter(model.runs.values())))[:2]
    lines = [line.plain for line in render_compare(group, group[0], model.now(), 100, full_height(group))]
    assert lines[0].startswith("▸ 1 sequential") and "0 429s" in lines[0]
    assert lines[2].startswith("  2 reference") and "5 429s" in lines[2]
    assert len([line for line in lines[3:8] if line.startswith(" ")]) == 5  # its five lanes
    assert sum(marks(line) for line in lines[3:8]) == 5


def test_each_429_of_a_real_seed_limit_run_is_its_own_mark() -> None:
    model = fed(SEED_AGGRESSIVE)
    run = next(iter(model.runs.values()))
    assert run.throttled >= 1
    for width in (80, 120, 200):
        lanes = [line.plain for line in render_lanes(run, model.now(), width, run.lanes.count + 2)][:-2]
        assert sum(line.count(THROTTLE_MARK) for line in lanes) == run.throttled
        assert not any(THROTTLE_MARKS in line for line in lanes)


def test_a_label_that_does_not_fit_is_never_cut_into_another_number() -> None:
    assert bar_label(17, 2) == "17" and bar_label(17, 3) == "17 "
    assert bar_label(17, 1) == "…" and bar_label(None, 1) == "?" and bar_label(5, 0) == ""


async def test_v_stacks_the_runs_started_near_the_selected_one_and_back() -> None:
    app = MonitorApp(replay=DEMO_ACTS, speed=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "6 runs compared" not in str(app.lanes_box.border_title)
        await pilot.press("v")
        assert app.compare and str(app.lanes_box.border_title).endswith("6 runs compared on one time scale")
        text = str(app.lanes_view.render())
        assert all(f"{i} " in text for i in range(1, 7)) and "in flight at once" in text
        await pilot.press("v")
        assert not app.compare and "lane" in str(app.lanes_box.border_title)
