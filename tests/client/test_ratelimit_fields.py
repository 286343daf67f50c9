from __future__ import annotations

import pytest

from client.ratelimit_fields import Policy, Remaining, parse_members, parse_policies, parse_remaining
from tests.client.malformed_fields import MALFORMED_POLICY, MALFORMED_REMAINING


def test_server_shapes() -> None:
    assert parse_policies(['"sync/user";q=5;w=1']) == {"sync/user": Policy("sync/user", 5, 1.0)}
    assert parse_remaining(['"sync/user";r=0;t=1']) == {"sync/user": Remaining("sync/user", 0, 1.0)}


def test_several_items_and_header_lines() -> None:
    policies = parse_policies(['"req/ip";q=300;w=300, "sync/ip";q=10;w=1', '"sync/user";q=5;w=1'])
    assert set(policies) == {"req/ip", "sync/ip", "sync/user"}
    assert policies["req/ip"] == Policy("req/ip", 300, 300.0)
    remaining = parse_remaining(['"req/ip";r=299;t=120, "sync/ip";r=9;t=1, "sync/user";r=4;t=1'])
    assert remaining["req/ip"].remaining == 299 and remaining["req/ip"].reset == 120


def test_quoted_commas_semicolons_and_tokens() -> None:
    members = parse_members(['"a,b;c";q=1;w=2, tok;q=3;flag, "esc\\"q";q=4'])
    assert members[0] == ("a,b;c", {"q": 1, "w": 2})
    assert members[1] == ("tok", {"q": 3, "flag": True})
    assert members[2][0] == 'esc"q'
    assert parse_policies(['"half";q=3;w=0.5']) == {"half": Policy("half", 3, 0.5)}


def test_unusable_items_are_skipped_not_fatal() -> None:
    assert parse_policies(['"x";w=1', '"y";q=-1;w=1', '"z";q=abc', '"o";q=0;w=1']) == {}
    assert parse_remaining(['"x";t=1', '"y";r=?1', '"z";r=-1', '"n";r=1;t=-1']) == {}
    # A policy without w is read with a one-second window; a missing t reads as 0.
    assert parse_policies(['"x";q=3']) == {"x": Policy("x", 3, 1.0)}
    assert parse_remaining(['"x";r=2']) == {"x": Remaining("x", 2, 0.0)}


@pytest.mark.parametrize("value", MALFORMED_POLICY)
def test_a_malformed_policy_is_ignored(value: str) -> None:
    assert parse_policies([value]) == {}
    # Beside a good line, the good item survives unless the malformed one breaks the whole field's syntax.
    found = parse_policies(['"good";q=5;w=1', value])
    assert set(found) <= {"good"} and "a" not in found
    assert all(p.quota >= 1 and 0 < p.window < float("inf") for p in found.values())


@pytest.mark.parametrize("value", MALFORMED_REMAINING)
def test_a_malformed_remaining_is_ignored(value: str) -> None:
    assert parse_remaining([value]) == {}
    found = parse_remaining(['"good";r=4;t=1', value])
    assert set(found) <= {"good"} and "a" not in found


def test_one_bad_item_in_a_well_formed_list_leaves_the_others() -> None:
    policies = parse_policies(['"a";q=nan;w=1, "sync/user";q=5;w=1, "b";q=5;w=0'])
    assert policies == {"sync/user": Policy("sync/user", 5, 1.0)}
    remaining = parse_remaining(['"a";r=inf, "sync/user";r=4;t=1'])
    assert remaining == {"sync/user": Remaining("sync/user", 4, 1.0)}
