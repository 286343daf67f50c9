"""monitor/rows.py: a run's attempts as rows, times after its start, and the details screen's summary."""

from __future__ import annotations

from monitor.model import Model
from monitor.rows import model_rows, percentile, since, summary
from tests.monitor.helpers import DEMO, ManualClock, load


def demo_model() -> Model:
    events = load(DEMO)
    model = Model(clock=ManualClock(events[-1].ts))
    model.ingest_many(events)
    return model


def test_times_count_from_the_runs_start_on_screen_and_stay_epoch_in_the_csv() -> None:
    run = demo_model().runs["agg-3"]
    shown = [r for r in model_rows(run) if r["received"] is not None]
    assert shown and all(isinstance(r["received"], str) and r["received"].startswith("+") for r in shown)
    assert all(r["received"].endswith(" s") for r in shown)
    csv = [r for r in model_rows(run, times=True) if r["received"] is not None]
    assert all(isinstance(r["received"], float) and r["received"] > 1e9 for r in csv)
    assert since(12.5, 10.0) == "+2.500 s" and since(None, 10.0) is None and since(12.5, None) == 12.5


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0


def test_the_summary_says_time_429s_percentiles_and_the_bound() -> None:
    model = demo_model()
    run = model.runs["agg-3"]
    view = run.bound(model.now())
    text = summary(run, None if view is None else view.line(), model.now())
    first = text.split("\n")[0]
    assert f"{run.throttled} x 429" in first and "service ms p50" in first and "p99" in first
    assert f"{run.batches_done()} batches stored" in first
    if view is not None:
        assert "binds" in text or "bound the run" in text
