from __future__ import annotations

import pytest

from client.pacing import Gate, WindowPacer
from client.ratelimit_fields import Policy, Remaining


def pacer(*policies: Policy) -> WindowPacer:
    p = WindowPacer(margin=0.005, guard=0.02)
    p.learn({x.name: x for x in policies}, 0.0)
    return p


def drain(p: WindowPacer, start: float, until: float) -> list[float]:
    """Send whenever allowed between start and until; the send times."""
    t, sent = start, []
    while t < until:
        wait = p.delay(t)
        if wait > 0:
            t += wait
            continue
        p.on_send(t)
        sent.append(t)
    return [s for s in sent if s < until]


def test_gate_only_extends() -> None:
    g = Gate()
    assert g.delay(10.0) == 0.0
    g.hold(12.0)
    g.hold(11.0)
    assert g.delay(10.0) == pytest.approx(2.0)
    assert g.delay(13.0) == 0.0


def test_spends_exactly_the_quota_right_after_each_edge() -> None:
    p = pacer(Policy("sync/user", 5, 1.0))
    sent = drain(p, 100.3, 103.9)
    assert len(sent) == 5 * 4  # the partial first window, then 5 per window
    per_window: dict[int, list[float]] = {}
    for t in sent:
        per_window.setdefault(int(t), []).append(t)
    assert all(len(v) == 5 for v in per_window.values())
    for window in (101, 102, 103):
        assert per_window[window][0] == pytest.approx(window + 0.005)  # margin after the reset


def test_never_sends_in_the_guard_before_an_edge() -> None:
    p = pacer(Policy("sync/user", 5, 1.0))
    assert p.delay(100.99) == pytest.approx(0.015)  # wait for the next window plus margin
    assert p.delay(100.002) == pytest.approx(0.003)  # too close after the edge: clock jitter


def test_tightest_of_several_policies_binds() -> None:
    p = pacer(Policy("sync/ip", 10, 1.0), Policy("sync/user", 5, 1.0), Policy("req/ip", 12, 300.0))
    sent = drain(p, 300.5, 303.9)
    # sync/user allows 5 per second, req/ip 12 per 300 s: 5 + 5 + 2 and then nothing until t=600.
    assert len(sent) == 12
    assert p.delay(303.95) == pytest.approx(600.005 - 303.95)
    assert p.tightest() == Policy("req/ip", 12, 300.0)


def test_adopts_a_higher_count_from_the_server() -> None:
    p = pacer(Policy("sync/user", 5, 1.0))
    p.on_send(50.1)
    p.on_response(50.1, {"sync/user": Remaining("sync/user", 1, 1.0)})  # someone else used 3
    assert len(drain(p, 50.2, 50.99)) == 1
    # A stale answer (from the previous window) changes nothing.
    p.on_response(50.5, {"sync/user": Remaining("sync/user", 0, 1.0)})
    assert len(drain(p, 51.0, 51.9)) == 5


def test_a_429_aligns_the_window_to_the_servers_clock() -> None:
    p = pacer(Policy("sync/user", 5, 1.0))
    # The server's windows start at .25 past the second (a skewed clock): it says 0.5 s are left at 10.75.
    p.on_throttle(10.75, "sync/user", 0.5)
    assert p.delay(10.8) == pytest.approx(11.255 - 10.8)
    sent = drain(p, 11.0, 12.3)
    assert sent[:5] == pytest.approx([11.255] * 5)
    assert sent[5] == pytest.approx(12.255)


def test_a_429_for_an_unknown_rule_or_a_long_retry_is_not_taken_as_an_edge() -> None:
    p = pacer(Policy("sync/user", 5, 1.0))
    p.on_throttle(10.75, "other", 0.5)
    p.on_throttle(10.75, "sync/user", 3.0)  # longer than the window: not a fixed-window edge
    assert p.windows["sync/user"].phase == 0.0
    assert p.delay(10.8) == pytest.approx(11.005 - 10.8)  # but the window counts as spent


def test_changed_limits_are_adopted() -> None:
    p = pacer(Policy("sync/user", 5, 1.0))
    p.learn({"sync/user": Policy("sync/user", 2, 1.0)}, 7.0)
    assert len(drain(p, 7.1, 7.9)) == 2
    p.learn({"sync/user": Policy("sync/user", 4, 2.0)}, 8.0)
    assert len(drain(p, 8.1, 9.9)) == 4


def test_sends_made_before_a_policy_was_known_count_against_it() -> None:
    p = WindowPacer()
    for t in (20.1, 20.11, 20.12, 20.13):  # blind sends, before any answer
        p.on_send(t)
    p.learn({"sync/user": Policy("sync/user", 5, 1.0)}, 20.4)
    assert len(drain(p, 20.4, 20.99)) == 1
    assert len(drain(p, 21.0, 21.99)) == 5


def test_blind_sends_just_before_an_edge_count_in_the_next_window() -> None:
    p = WindowPacer(guard=0.02)
    for t in (30.985, 30.99, 30.5):  # two within the guard of the edge at 31, one well before
        p.on_send(t)
    p.learn({"sync/user": Policy("sync/user", 5, 1.0)}, 31.3)
    assert len(drain(p, 31.3, 31.99)) == 3
