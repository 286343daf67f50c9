"""The model through an outage, with a hand-moved clock: stale marks, log notes, and what a restart reset."""

from __future__ import annotations

from monitor.eventlog import KIND_ERROR, KIND_INFO
from monitor.link import ago
from monitor.model import LINK_EVENT, Model
from syncbed.events import ConfigChanged, ServerStats
from syncbed.faults import FaultSettings
from syncbed.responses import RuleSettings
from tests.monitor.helpers import ManualClock


def stats(ts: float, limit: int = 5, **faults: float) -> ServerStats:
    rule = RuleSettings("sync/user", "throttle", limit, 1.0, "user", [], [], "fixed_window", True)
    return ServerStats(ts=ts, records_per_s=0.0, requests_per_s=0.0, throttled_per_s=0.0, in_flight=0, limiter={},
                       faults=FaultSettings(**faults), rules=[rule])  # type: ignore[arg-type]  # fmt: skip


def notes(model: Model) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in model.log if e.type == LINK_EVENT]


def connected_model(clock: ManualClock) -> Model:
    model = Model(clock=clock)
    model.on_connection("connecting", "http://127.0.0.1:1/api/v1/events")
    model.on_connection("connected", "http://127.0.0.1:1/api/v1/events")
    return model


def test_an_outage_marks_stale_since_when_and_the_reconnect_is_logged() -> None:
    clock = ManualClock(1000.0)
    model = connected_model(clock)
    assert not model.link.stale and notes(model) == []  # the first connection is no outage
    clock.now = 1010.0
    model.on_connection("reconnecting", "ConnectError: refused; retry in 0.4 s")
    clock.now = 1012.0
    model.on_connection("reconnecting", "ConnectError: refused; retry in 0.9 s")  # the same outage
    assert model.link.stale and model.link.down_since == 1010.0 and model.link.outages == 1
    assert ago(model.link.down_since, clock.now).endswith("(2s)")
    clock.now = 1017.5
    model.on_connection("connected", "http://127.0.0.1:1/api/v1/events")
    assert not model.link.stale
    assert [kind for kind, _ in notes(model)] == [KIND_ERROR, KIND_INFO]
    lost, back = (text for _, text in notes(model))
    assert lost.startswith("stream lost (reconnecting): ConnectError") and "stale" in lost
    assert back.startswith("stream back after 7.5 s down (outage 1)")


def test_a_restart_that_reset_faults_and_limits_is_called_out() -> None:
    clock = ManualClock(1000.0)
    model = connected_model(clock)
    model.ingest(stats(1000.0, limit=10, latency_ms=300, error_rate=0.25))
    assert model.faults["error_rate"] == 0.25 and model.limiter.rules["sync/user"].limit == 10
    clock.now = 1005.0
    model.on_connection("reconnecting", "stream ended")
    clock.now = 1008.0
    model.on_connection("connected", "http://127.0.0.1:1/api/v1/events")
    model.ingest(stats(1008.0))  # the restarted server's first stats: its defaults
    assert model.link.reset_note is not None and model.link.reset_at == 1008.0
    note = notes(model)[-1]
    assert note[0] == KIND_ERROR and note[1] == model.link.reset_note
    assert "latency_ms 300→0, error_rate 0.25→0 (back to defaults)" in note[1]
    assert "sync/user 10/1s→5/1s" in note[1]
    assert model.faults["error_rate"] == 0.0  # and the views now show the server's own
    model.ingest(stats(1009.0))
    assert len(notes(model)) == 3  # only the first stats after a reconnect is compared


def test_a_blip_that_changed_nothing_or_said_what_it_changed_is_no_restart() -> None:
    clock = ManualClock(1000.0)
    model = connected_model(clock)
    model.ingest(stats(1000.0, error_rate=0.1))
    model.on_connection("reconnecting", "ReadTimeout")
    model.on_connection("connected", "url")
    model.ingest(stats(1001.0, error_rate=0.1))
    assert model.link.reset_note is None
    model.on_connection("reconnecting", "ReadTimeout")
    model.on_connection("connected", "url")
    # An edit made while we were away comes first, from the server's buffer: it is news, not a reset.
    model.ingest(ConfigChanged(ts=1002.0, what="faults", changed=["error_rate"], latency_ms=0, jitter_ms=0,
                               error_rate=0.5, reset_rate=0.0))  # fmt: skip
    model.ingest(stats(1003.0, error_rate=0.5))
    assert model.link.reset_note is None and len(notes(model)) == 4


def test_a_replay_or_a_test_fed_model_is_never_stale() -> None:
    model = Model(clock=ManualClock(5.0))
    model.ingest(stats(5.0, error_rate=0.2))
    assert model.link.state is None and not model.link.stale and notes(model) == []
