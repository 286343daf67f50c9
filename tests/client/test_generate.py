from __future__ import annotations

import itertools
from urllib.parse import urlparse

import msgspec

from client.generate import encoded, visits
from syncbed.contract import PageVisit

NOW = 1_800_000_000_000


def test_records_are_valid_unique_and_plausible() -> None:
    records = list(visits(5000, seed=42, now_ms=NOW))
    assert len(records) == 5000
    assert len({r.id for r in records}) == 5000
    for r in records:
        msgspec.json.decode(msgspec.json.encode(r), type=PageVisit)  # passes the wire schema
        assert urlparse(r.url).scheme == "https" and urlparse(r.url).netloc
    hosts = {urlparse(r.url).netloc for r in records}
    assert len(hosts) >= 8  # a mix of sites
    assert sum(1 for r in records if r.title) > 0.9 * len(records)
    assert len({r.tab_id for r in records}) < len(records) / 3  # tabs are reused within sessions


def test_history_spans_days_and_never_the_future() -> None:
    records = list(visits(6000, seed=1, now_ms=NOW))
    times = [r.visited_at for r in records]
    assert max(times) <= NOW
    assert (max(times) - min(times)) / 86_400_000 > 2
    backwards = sum(1 for a, b in itertools.pairwise(times) if b < a)
    assert backwards < len(times) / 20  # time mostly moves on (sessions may overlap a little)


def test_same_seed_same_records_other_seed_other_ids() -> None:
    a = list(visits(100, seed=7, now_ms=NOW))
    assert a == list(visits(100, seed=7, now_ms=NOW))
    assert [r.id for r in visits(150, seed=7, now_ms=NOW)][:100] == [r.id for r in a]
    assert not {r.id for r in a} & {r.id for r in visits(100, seed=8, now_ms=NOW)}


def test_encoded_chunks_carry_wire_json() -> None:
    chunks = list(encoded(visits(25, seed=3, now_ms=NOW), chunk=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    rid, body = chunks[0][0]
    assert msgspec.json.decode(body)["id"] == rid and b"visitedAt" in body
