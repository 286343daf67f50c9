"""The monitor's ETA and bound from the physics, on runs recorded from a real server (no screen)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.bound import enforced, physics_of, rules_at
from monitor.limiter import RuleView
from monitor.model import Model
from monitor.runs import LOST, STALLED, Run
from monitor.widgets_panels import bound_text
from syncbed.events import BatchStored, RunFinished
from tests.monitor.helpers import DEMO_ACTS, SEED_AGGRESSIVE, SEED_FAULTS, ManualClock, load

MARKS = (0.10, 0.25, 0.50, 0.75, 0.90)


def etas(path: Path) -> list[tuple[float, float, float]]:
    """(progress mark, the monitor's ETA, the true time left) as the run crosses each mark."""
    events = load(path)
    end = next(e.ts for e in events if isinstance(e, RunFinished))  # the fixture's own final time
    clock = ManualClock(events[0].ts)
    model = Model(clock=clock)
    marks, out = list(MARKS), []
    for ev in events:
        clock.now = ev.ts
        model.ingest(ev)
        run = model.newest_run()
        progress = run.progress() if run is not None else None
        while run is not None and progress is not None and marks and progress >= marks[0]:
            eta = run.eta(ev.ts)
            assert eta is not None
            out.append((marks.pop(0), eta, end - ev.ts))
    assert not marks, "the run never crossed every mark"
    return out


@pytest.mark.parametrize("path", [SEED_AGGRESSIVE, SEED_FAULTS], ids=["aggressive", "faults-10pct"])
def test_eta_is_within_10_percent_of_the_time_left_from_10_percent_on(path: Path) -> None:
    for mark, eta, left in etas(path):
        # The last answers land milliseconds apart, so near the end 10% of what is left is below the
        # clock's own noise: there 50 ms is the tolerance.
        assert abs(eta - left) <= max(0.1 * left, 0.05), f"at {mark:.0%}: ETA {eta:.3f} s, {left:.3f} s left"


def test_the_bound_names_the_rate_limit_and_the_run_keeps_close_to_it() -> None:
    events = load(SEED_AGGRESSIVE)
    first_store = next(i for i, e in enumerate(events) if isinstance(e, BatchStored))
    model = Model(clock=ManualClock(events[first_store + 10].ts))
    model.ingest_many(events[: first_store + 10])
    run = model.newest_run()
    assert run is not None
    view = run.bound(model.now())
    assert view is not None and not view.whole
    assert view.verdict.binds == "sync/user 5/1s"
    assert view.line().startswith("sync/user 5/1s binds: ") and "x the bound" in view.line()
    assert view.ratio is not None and 1.0 <= view.ratio < 1.2

    assert bound_text(view, 200).plain == "bound: " + view.line()
    short = bound_text(view, 60).plain  # a narrow screen keeps the rule, the batches left, the bound and the ratio
    assert short.startswith("sync/user 5/1s: ") and " left ≥ " in short and short.endswith("x") and len(short) <= 60

    model.ingest_many(events[first_store + 10 :])
    done = run.bound(model.now())
    assert done is not None and done.whole and done.verdict.batches == 30
    assert done.line().startswith("sync/user 5/1s bound the run: 30 batches needed at least ")


def test_rules_are_found_where_the_servers_epoch_aligned_windows_are() -> None:
    views = [RuleView("sync/user", 5, 1.0), RuleView("req/ip", 300, 300.0), RuleView("track", 9, 1.0, kind="track")]
    views.append(RuleView("other", 1, 1.0, paths=["/api/v1/runs"]))
    sends = [99.2, 100.1, 100.2, 100.3]
    user, ip = rules_at(views, sends, 100.5)  # the track and the rule of another path do not count
    assert (user.name, user.elapsed, user.used) == ("sync/user", pytest.approx(0.5), 3)
    assert (ip.name, ip.elapsed, ip.used) == ("req/ip", pytest.approx(100.5), 4)


def _run_with_one_store(ts: float) -> Run:
    model = Model(clock=ManualClock(ts))
    for ev in load(SEED_AGGRESSIVE):
        model.ingest(ev)
        if isinstance(ev, BatchStored):
            break
    run = model.newest_run()
    assert run is not None
    return run


def test_a_quiet_run_is_stalled_then_lost_not_running() -> None:
    run = _run_with_one_store(0.0)
    last = run.last_ts
    assert run.display_status(last + 1.0) == "running"
    assert run.display_status(last + 31.0) == STALLED
    assert run.display_status(last + 301.0) == LOST
    assert physics_of(run, [], last) is not None  # announced and one batch stored: L is known


def test_between_answers_the_eta_counts_down_and_a_wide_limit_leaves_concurrency_binding() -> None:
    model = Model(clock=ManualClock(0.0))
    events = [e for e in load(SEED_AGGRESSIVE) if not isinstance(e, RunFinished)][:40]
    model.ingest_many(events)
    run = model.newest_run()
    assert run is not None
    model.limiter.rule("sync/user").limit = 1000  # a limit far above C/L: 10 in flight at 0.3 s bind
    model.limiter.rule("sync/ip").limit = 1000
    now = events[-1].ts + 0.3
    eta = run.eta(now)
    assert eta is not None and run.eta(now + 0.1) == pytest.approx(eta - 0.1)
    view = run.bound(now)
    assert view is not None and view.verdict.binds == "concurrency"


def test_a_rule_the_server_lists_but_does_not_apply_is_left_out() -> None:
    listed = RuleView("sync/user", 5, 1.0)
    assert enforced(listed, [100.1, 100.2, 100.3])
    listed.silent = 2  # two stats with traffic and never a key of it: limits are off
    assert not enforced(listed, [])
    listed.counted = True  # it showed a key once: it counts
    assert enforced(listed, [100.0 + i / 20 for i in range(10)])  # 10 in a window: at most the 2x edge burst
    assert not enforced(listed, [100.0 + i / 20 for i in range(11)])  # 11 got through: a dry run


def test_a_limit_lowered_mid_run_leaves_the_bound_a_bound() -> None:
    # The demo's last act: sync/user 5/1s dropped to 3/1s 1.5 s in. Drawn event by event, no run is ever
    # far under its bound; the faults act's bound keeps the 5/s it started with, so it ends well above.
    events = load(DEMO_ACTS)
    clock = ManualClock(events[0].ts)
    model = Model(clock=clock)
    lowest: dict[str, float] = {}
    for event in events:
        clock.now = event.ts
        model.ingest(event)
        for run in model.runs.values():
            view = run.bound(clock.now)
            if view is not None and view.ratio is not None:
                lowest[run.run] = min(lowest.get(run.run, 9.0), view.ratio)
    assert len(lowest) == 6 and min(lowest.values()) >= 0.98, lowest
    last = list(model.runs.values())[-1]
    view = last.bound(clock.now)
    assert view is not None and view.whole and view.ratio is not None and view.ratio > 1.3
    assert view.line().startswith("sync/user 5/1s bound the run") and last.loosest["sync/user"] == 5
