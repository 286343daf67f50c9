"""The monitor's model fed from recorded and hand-made event sequences (no screen)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.eventlog import KIND_ERROR
from monitor.lanes import FAILED, IN_FLIGHT, STORED, THROTTLED, LaneAllocator
from monitor.model import Model
from monitor.rates import RateSeries
from monitor.stream import Undecodable, decode
from syncbed.events import BATCH_EVENT_CLASSES, BatchStored, Event, RequestThrottled, ServerStats
from tests.monitor.helpers import DEMO, MIDRUN, ManualClock, load


def fed(path: Path) -> tuple[Model, list[Event]]:
    events = load(path)
    model = Model(clock=ManualClock(max(e.ts for e in events)))
    model.ingest_many(events)
    return model, events


def test_recorded_runs_progress_counts_and_rates() -> None:
    model, events = fed(DEMO)
    assert list(model.runs) == ["seq-1", "anon-2", "agg-3"]
    assert model.newest_run() is model.runs["agg-3"]
    assert model.last_id == events[-1].id

    seq = model.runs["seq-1"]
    assert (seq.progress(), seq.status, seq.records_done, seq.throttled, seq.retries) == (1.0, "complete", 5000, 0, 0)
    assert seq.lanes.count == 1  # the seed's "before" picture: one lane
    assert seq.records_per_s(model.now()) == 5000 / 1.51
    assert seq.eta(model.now()) == 0.0

    agg = model.runs["agg-3"]
    throttled = [e for e in events if isinstance(e, RequestThrottled) and e.run == "agg-3"]
    retries = {
        (e.batch, e.attempt)
        for e in events
        if isinstance(e, BATCH_EVENT_CLASSES) and e.run == "agg-3" and e.attempt is not None and e.attempt > 1
    }
    assert agg.throttled == len(throttled) > 0
    assert agg.retries == len(retries)
    assert agg.progress() == 1.0 and agg.batches_done() == 12 and agg.failed_batches() == 0
    assert agg.rejected == 1
    assert agg.lanes.count >= 5  # concurrent: several lanes
    assert {a.state for a in agg.attempts} == {STORED, THROTTLED, FAILED}

    anon = model.runs["anon-2"]  # never announced: shows, totals unknown
    assert (anon.announced, anon.user, anon.progress(), anon.eta(model.now())) == (False, "carol", None, None)
    assert anon.batches_done() == 2 and anon.status == "running"

    stored = [e for e in events if isinstance(e, BatchStored)]
    assert model.records.total == sum(e.records for e in stored) == 19000
    assert model.throttled.total == model.status_counts[429] == len(throttled)
    assert model.status_counts[200] == len(stored) and model.status_counts[503] == 1
    rule = model.limiter.rules["sync/user"]
    assert (rule.limit, rule.period, rule.throttled) == (5, 1.0, len(throttled))
    assert model.faults["latency_ms"] == 300


def test_midrun_shows_in_flight_waiting_and_eta() -> None:
    model, _ = fed(MIDRUN)
    agg = model.runs["agg-3"]
    now = model.now()
    assert agg.status == "running" and agg.in_flight() == model.in_flight() == 5
    assert 0 < agg.progress() < 1  # type: ignore[operator]
    eta = agg.eta(now)
    assert eta is not None and eta > 0
    waiting = [a for a in agg.attempts if a.next_start is None and agg.waiting_until(a, now) is not None]
    assert waiting and all(a.state in (THROTTLED, FAILED) for a in waiting)
    assert {a.state for a in agg.attempts if a.end is None} == {IN_FLIGHT}


def _ev(type_: str, ts: float, **fields: Any) -> Event:
    """An event of run "r" by "u", through the same decoder the stream uses (so it must be a whole one)."""
    return msgspec.convert({"type": type_, "ts": ts, "run": "r", "user": "u", **fields}, Event)  # type: ignore[arg-type]


def test_eta_and_rate_from_recent_records() -> None:
    clock = ManualClock(0.0)
    model = Model(clock=clock)
    model.ingest(
        _ev(
            "run.started",
            0.0,
            total_records=10_000,
            total_batches=10,
            batch_size=1000,
            mode="conservative",
            concurrency=5,
        )
    )
    for i in range(3):
        model.ingest(_ev("batch.received", i + 0.7, batch=i + 1, attempt=1, records=1000))
        model.ingest(
            _ev("batch.stored", i + 1.0, batch=i + 1, attempt=1, records=1000, stored=1000, duplicates=0, ms=300)
        )
    clock.now = 3.0
    run = model.runs["r"]
    assert run.progress() == 0.3
    assert run.records_per_s(3.0) == 1000.0
    # No rules known: 7 batches at 5 in flight need 2 x 0.3 s, at the pace so far (3 s for a 0.3 s bound).
    assert run.eta(3.0) == pytest.approx(6.0)
    clock.now = 20.0  # nothing for a long time: the rate falls to zero, the run is stalled
    assert run.records_per_s(20.0) == 0.0
    assert run.display_status(20.0) == "running" and run.display_status(40.0) == "stalled"


def test_waiting_gap_retries_and_failed_batches() -> None:
    clock = ManualClock(1.5)
    model = Model(clock=clock)
    model.ingest(
        _ev("request.throttled", 1.0, batch=1, attempt=1, ip="i", rule="sync/user", key="u", retry_after=1.0,
            dry_run=False)
    )  # fmt: skip
    run = model.runs["r"]
    first = run.attempts[0]
    assert first.state == THROTTLED and first.start == first.end == 1.0
    assert run.waiting_until(first, 1.5) == 1.5  # still waiting: the gap grows with the clock
    model.ingest(_ev("batch.received", 2.0, batch=1, attempt=2, records=10))
    assert run.waiting_until(first, 5.0) == 2.0 and run.retries == 1
    model.ingest(_ev("batch.rejected", 2.3, batch=1, attempt=2, status=503, error="injected_fault"))
    assert run.failed_batches() == 0  # a 503 is retried
    model.ingest(_ev("batch.received", 3.0, batch=1, attempt=3, records=10))
    model.ingest(_ev("batch.rejected", 3.1, batch=1, attempt=3, status=422, error="invalid_records"))
    assert run.failed_batches() == 1 and run.retries == 2
    assert run.waiting_until(run.attempts[-1], 9.0) is None  # a 422 is not retried
    model.ingest(_ev("run.finished", 3.2, status="partial", ok_batches=0, failed_batches=1, seconds=2.2))
    assert run.status == "partial" and run.failed_batches() == 1


def test_lanes_sequential_then_concurrent() -> None:
    model = Model(clock=ManualClock(10.0))
    t = 0.0
    for b in range(1, 4):  # sequential: one lane
        model.ingest(_ev("batch.received", t, batch=b, attempt=1, records=1))
        t += 0.3
        model.ingest(_ev("batch.stored", t, batch=b, attempt=1, records=1, stored=1, duplicates=0, ms=300))
    assert [a.lane for a in model.runs["r"].attempts] == [0, 0, 0]
    for b in range(4, 7):  # three at once: three lanes
        model.ingest(_ev("batch.received", 5.0, batch=b, attempt=1, records=1))
    model.ingest(_ev("batch.stored", 5.3, batch=5, attempt=1, records=1, stored=1, duplicates=0, ms=300))
    model.ingest(_ev("batch.received", 5.4, batch=7, attempt=1, records=1))  # takes the freed lane 1
    assert [a.lane for a in model.runs["r"].attempts[3:]] == [0, 1, 2, 1]


def test_stored_without_received_is_drawn_back_from_ms() -> None:
    model = Model(clock=ManualClock(10.0))
    model.ingest(_ev("batch.stored", 5.0, batch=1, attempt=1, records=1, stored=1, duplicates=0, ms=250))
    att = model.runs["r"].attempts[0]
    assert (att.start, att.end, att.state) == (4.75, 5.0, STORED)


@settings(deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 5)), max_size=60))
def test_lane_allocator_never_overlaps_and_picks_lowest(spans: list[tuple[float, float]]) -> None:
    lanes = LaneAllocator()
    placed: list[tuple[float, float, int]] = []
    pending: list[tuple[float, int]] = []
    for start, length in sorted(spans):
        for end, lane in sorted(pending):  # attempts that ended by this start free their lane
            if end <= start:
                lanes.release(lane, end)
                pending.remove((end, lane))
        lane = lanes.assign(start)
        busy = {ln for _, e, ln in placed if e > start}
        assert lane not in busy
        assert all(ln in busy for ln in range(lane))  # every lower lane was taken
        placed.append((start, start + length, lane))
        if length == 0:
            lanes.release(lane, start)
        else:
            pending.append((start + length, lane))


def test_log_filters_by_kind_and_run() -> None:
    model, events = fed(DEMO)
    throttled = model.entries("throttled", limit=1000)
    assert len(throttled) == model.status_counts[429] and all(e.type == "request.throttled" for e in throttled)
    errors = model.entries("errors", limit=1000)
    assert [e.type for e in errors] == ["batch.rejected"]
    only = model.entries("all", run="seq-1", limit=1000)
    assert only and {e.run for e in only} == {"seq-1"}
    assert model.entries("all", limit=3)[-1].id == max(e.id or 0 for e in events if not isinstance(e, ServerStats))


def test_summary_and_clear() -> None:
    model, _ = fed(DEMO)
    lines = model.summary()
    assert len(lines) == 3 and "seq-1" in lines[0] and "complete" in lines[0] and "5/5 batches" in lines[0]
    assert "x 429" in lines[2]
    last = model.last_id
    model.clear()
    assert not model.runs and not model.log and model.records.total == 0 and model.last_id == last


def test_rate_series_buckets() -> None:
    series = RateSeries(horizon=10)
    for ts in (1.1, 1.9, 2.5, 4.0):
        series.add(ts)
    assert series.series(5.2, 5) == [0.0, 2.0, 1.0, 0.0, 1.0]
    assert series.last_second(5.2) == 1.0 and series.last_second(4.5) == 0.0
    for ts in range(100):
        series.add(float(ts))
    assert series.series(100.0, 3) == [1.0, 1.0, 1.0] and len(series._buckets) <= 10 + 64


event_types = st.sampled_from(
    [
        "run.started",
        "batch.received",
        "batch.stored",
        "batch.rejected",
        "request.throttled",
        "run.finished",
        "stats",
        "config.changed",
        "stream.dropped",
        "stream.reset",
        "limiter.store",
        "other",
    ]
)
junk = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from(["1", "x", ""]),
    st.floats(-1, 1e10),
    st.lists(st.integers(), max_size=2),
)
fields = st.sampled_from(["run", "batch", "attempt", "records", "status", "ms", "ts", "limiter", "rules", "missed"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(event_types, st.dictionaries(fields, junk, max_size=6)), max_size=25))
def test_garbage_events_are_counted_and_logged_never_break_the_model(items: list[tuple[str, dict[str, Any]]]) -> None:
    model = Model(clock=ManualClock(50.0))
    decoded = [decode(json.dumps({**fields, "type": type_}), type_) for type_, fields in items]
    for event in decoded:
        model.ingest(event)
    bad = [e for e in decoded if isinstance(e, Undecodable)]
    assert model.undecodable == len(bad) and model.events_seen == len(items)
    assert len(model.entries("errors", limit=1000)) >= len(bad)
    model.summary()
    for run in model.runs.values():
        run.eta(50.0), run.failed_batches(), run.progress()


def test_an_event_of_a_newer_server_is_shown_as_unreadable() -> None:
    model = Model(clock=ManualClock(5.0))
    model.ingest(decode('{"type": "run.paused", "ts": 4.0, "run": "r"}', "run.paused"), 9)
    model.ingest(decode("{not json", "batch.stored"), 10)
    (first, second) = model.entries("errors")
    assert (first.type, first.id, first.ts, first.kind) == ("run.paused", 9, 4.0, KIND_ERROR)
    assert "unreadable run.paused event" in first.text and "$.type" in first.text
    assert (second.type, second.ts) == ("batch.stored", 5.0)  # no time of its own: when it came
    assert model.undecodable == 2 and model.last_id == 10 and not model.runs
