"""The learner on its own: a quota and a window from which sends were refused, nothing else."""

from __future__ import annotations

import pytest

from client.ratelimit_fields import Policy
from client.window_learner import LEARNED, WindowLearner, window_for

T = 1_700_064_000.0  # a multiple of every candidate window


def burst(learner: WindowLearner, at: float, sent: int, refused: int, **kw: object) -> None:
    """`sent` sends at `at`: the refusals come back first, then the others' answers."""
    for _ in range(sent):
        learner.on_send(at)
    for _ in range(refused):
        learner.on_refused(at, at + 0.002, **kw)  # type: ignore[arg-type]
    for _ in range(sent - refused):
        learner.on_counted(at)


def test_a_burst_tells_the_quota_as_its_refusals_come_back() -> None:
    learner = WindowLearner()
    assert learner.policy is None
    for _ in range(10):
        learner.on_send(T + 0.1)
    got = []
    for _ in range(5):
        learner.on_refused(T + 0.1, T + 0.102, None, None)
        got.append(learner.quota)
    assert got == [9, 8, 7, 6, 5]  # the in-flight ones count as admitted until refused
    assert learner.policy == Policy(LEARNED, 5, 1.0)


def test_a_named_rule_names_the_policy_and_a_later_window_only_lowers_the_quota() -> None:
    learner = WindowLearner()
    burst(learner, T + 0.1, 10, 5, rule="sync/user", retry_after=None)
    burst(learner, T + 1.1, 5, 2, rule="sync/user", retry_after=None)  # another client took two
    assert learner.policy == Policy("sync/user", 3, 1.0)


@pytest.mark.parametrize(
    ("retry_after", "now", "window"),
    [
        (1, T + 0.7, 1.0),  # Rack::Attack, 1 s: always 1
        (35, T + 25.3, 60.0),  # the acceptance spec's 60 - 25 % 60
        (283, T + 17.9, 300.0),
        (5, T + 5.5, 5.0),  # 10 s would fit too (ceil(10 - 5.5)): the shortest that fits, until more is seen
        (7, T + 13.5, 10.0),  # longer than 1, 2 and 5 s: the 10 s window ends 7 s from here
        (7, T + 0.2, None),  # no candidate's edge is 7 s away from here
        (0.5, T, None),  # not whole seconds: not a Retry-After
    ],
)
def test_a_whole_second_retry_after_points_to_the_window_whose_edge_it_names(
    retry_after: float, now: float, window: float | None
) -> None:
    assert window_for(retry_after, now) == window


def test_a_retry_after_longer_than_the_window_regroups_the_sends_into_the_longer_one() -> None:
    learner = WindowLearner()
    burst(learner, T + 0.1, 10, 5, rule=None, retry_after=None)
    burst(learner, T + 1.1, 5, 5, rule=None, retry_after=59)  # 60 s window: the same one, refused whole
    assert learner.policy == Policy(LEARNED, 5, 60.0)


def test_one_window_refused_whole_leaves_the_quota_two_in_a_row_mean_a_longer_window() -> None:
    learner = WindowLearner()
    burst(learner, T + 0.1, 10, 5, rule=None, retry_after=None)
    burst(learner, T + 1.1, 5, 5, rule=None, retry_after=None)  # a 5/10 s limit, or someone else
    assert learner.policy == Policy(LEARNED, 5, 1.0)
    burst(learner, T + 2.1, 5, 5, rule=None, retry_after=None)
    assert learner.policy == Policy(LEARNED, 5, 2.0)  # in 2 s windows: 15 sent and 5 admitted in the first


def test_a_first_window_refused_whole_gives_a_quota_of_one_until_a_window_admits_more() -> None:
    learner = WindowLearner()
    burst(learner, T + 0.1, 3, 3, rule=None, retry_after=None)  # the last run spent this window
    assert learner.quota == 1
    burst(learner, T + 1.1, 3, 1, rule=None, retry_after=None)  # pacing at 1 would never see this: a probe's
    assert learner.quota == 2
