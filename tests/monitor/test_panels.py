"""The throughput figures, the bound line and the event log: pure parts from the model, and the log's search."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from monitor.app import MonitorApp
from monitor.eventlog import Query
from monitor.model import Model
from monitor.widgets_panels import axis_line, codes_line, rate_line
from syncbed.events import ConfigChanged
from tests.monitor.helpers import SEED_FAULTS, ManualClock, load


def faults_model() -> Model:
    events = load(SEED_FAULTS)
    model = Model(clock=ManualClock(events[-1].ts))
    model.ingest_many(events)
    return model


def test_latency_of_stored_batches_and_of_attempts_from_the_recorded_run() -> None:
    model = faults_model()
    now = model.now()
    server = model.service.percentiles(now, 600)
    attempt = model.attempt_ms.percentiles(now, 600)
    assert server is not None and attempt is not None
    assert 300 <= server[0] <= server[1] <= server[2] < 400  # the server's 0.3 s, from batch.stored ms
    # received -> stored/rejected of the same attempt: every admitted one has both ends here
    assert len(model.attempt_ms._items) == 33 and 250 <= attempt[0] < 400


def test_answers_by_class_count_the_window_and_figures_keep_their_fields() -> None:
    model = faults_model()
    now = model.now() + 1
    codes = codes_line(model, now, 60, width=40).plain
    assert codes == "200 30 429 5 5xx 3 4xx 0 reset 0"  # those seen first, then the zeros
    assert codes_line(model, now, 60, width=20).plain == "200 30 429 5 5xx 3"  # a narrow panel drops zeros
    later = float(int(now) + 100)
    model.records.add(later + 0.5, 10_000)
    line = rate_line("rec/s", model.records, later + 1, 10).plain
    assert line.split() == ["rec/s", "10,000", "now", "max", "10,000"]  # fields apart, never "100000"
    assert len(line) <= 30  # fits the panel
    assert rate_line("429/s", model.throttled, now + 120, 10).plain.split() == ["429/s", "0", "now", "max", "0"]
    axis = axis_line(180, 6, 30).plain
    assert axis.startswith("-3 min") and axis.endswith("now") and "6 s/col" in axis and len(axis) == 30


def test_config_edits_read_as_old_to_new() -> None:
    model = Model(clock=ManualClock(10.0))
    model.ingest(ConfigChanged(ts=1.0, what="faults", changed=["latency_ms"], latency_ms=300, jitter_ms=0,
                               error_rate=0.0, reset_rate=0.0))  # fmt: skip
    model.ingest(ConfigChanged(ts=2.0, what="faults", changed=["error_rate"], latency_ms=300, jitter_ms=0,
                               error_rate=0.1, reset_rate=0.0))  # fmt: skip
    model.ingest(ConfigChanged(ts=3.0, what="limits", rule="sync/user", name="sync/user", limit=5, period=1.0))
    model.ingest(ConfigChanged(ts=4.0, what="limits", rule="sync/user", name="sync/user", limit=10, period=1.0,
                               algorithm="fixed_window"))  # fmt: skip
    texts = [e.text for e in model.entries()]
    assert texts == [
        "faults: latency_ms -> 300",
        "faults: error_rate 0 -> 0.1",
        "limits: sync/user -> 5/1s",
        "limits: sync/user 5/1s -> 10/1s (fixed_window)",
    ]
    assert [e.rule for e in model.entries("config")][2:] == ["sync/user", "sync/user"]


def test_attempts_are_written_b_a_and_full_run_ids_are_kept() -> None:
    model = faults_model()
    stored = [e for e in model.entries(query=Query.parse("type:batch.stored"))]
    assert len(stored) == 30 and all(" b" in e.text and "/a" in e.text for e in stored)
    run = next(iter(model.runs))
    assert run not in stored[0].text and stored[0].line(full_ids=True).startswith(run)


def test_search_terms_narrow_by_run_type_status_and_rule() -> None:
    model = faults_model()
    assert len(model.entries(query=Query.parse("status:503"))) == 3
    assert len(model.entries(query=Query.parse("rule:sync/user"))) == 5
    assert len(model.entries(query=Query.parse("type:request.throttled rule:sync/ip"))) == 0
    assert len(model.entries(query=Query.parse("b26/"))) == 4  # received, rejected, received, stored
    assert len(model.entries(query=Query.parse("b26/a2 stored"))) == 1
    assert len(model.entries("errors", query=Query.parse("run:acae3080"))) == 3
    assert model.entries(query=Query.parse("status:abc")) == []


async def test_slash_opens_a_search_that_filters_the_log_live_and_escape_clears_it() -> None:
    app = MonitorApp(replay=Path(SEED_FAULTS), speed=0)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        log = app.log_view
        assert "injected_fault" in log.text() and "stored 1000" in log.text()
        await pilot.press("slash")
        box = app.query_one("#log-search", Input)
        assert box.has_focus and box.display
        await pilot.press(*"status:503")
        await pilot.pause(0.3)
        lines = [line for line in log.text().splitlines() if line.strip()]
        assert len(lines) == 3 and all("rejected 503 injected_fault" in line for line in lines)
        assert "/status:503" in str(log.border_title)
        await pilot.press("enter")  # the search stays, the keys go back to the screen
        assert not box.has_focus and len(log.text().splitlines()) == 3
        await pilot.press("i")
        await pilot.pause(0.3)
        run = next(iter(app.model.runs))
        assert run in log.text()  # whole run ids on demand
        await pilot.press("slash", "escape")
        await pilot.pause(0.3)
        assert not box.display and "stored 1000" in log.text()
