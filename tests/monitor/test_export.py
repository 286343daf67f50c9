"""monitor/export.py: an export carries the events that explain its run, and a replay shows what the live view did."""

from __future__ import annotations

from pathlib import Path

from monitor.export import export_run
from monitor.model import Model
from monitor.replay import read_events
from syncbed.events import ConfigChanged, ServerStats
from tests.monitor.helpers import DEMO, ManualClock, load


def live(events: list) -> Model:  # type: ignore[type-arg]
    model = Model(clock=ManualClock(events[-1].ts))
    model.ingest_many(events)
    return model


def test_an_export_carries_the_config_and_stats_that_explain_its_run(tmp_path: Path) -> None:
    model = live(load(DEMO))
    run = model.runs["agg-3"]
    events_path, _ = export_run(run, tmp_path, model.context_of(run))
    exported = read_events(events_path)
    kinds = {type(e) for e in exported}
    assert ConfigChanged in kinds and ServerStats in kinds  # the fault edit before the run, the stats during it
    assert [e.ts for e in exported] == sorted(e.ts for e in exported)
    assert len(exported) == len(run.events) + len(model.context_of(run))


def test_a_replay_of_the_export_knows_the_faults_and_limits_the_live_view_showed(tmp_path: Path) -> None:
    model = live(load(DEMO))
    run = model.runs["agg-3"]
    events_path, _ = export_run(run, tmp_path, model.context_of(run))
    replayed = live(read_events(events_path))
    assert replayed.faults == model.faults and replayed.faults  # not "faults: not reported yet"
    assert set(replayed.limiter.rules) == set(model.limiter.rules)
    assert replayed.runs["agg-3"].fold.view().totals == run.fold.view().totals
    without, _ = export_run(run, tmp_path / "bare")
    assert live(read_events(without)).faults == {}  # what an export without its context lost
