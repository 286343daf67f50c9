"""`scripts/bench cluster`'s machinery on a tiny load: every configuration in its section, every count exact.

Not a timing test: a rate can be whatever the machine makes it; what cannot vary is which configurations
the section holds, that each server holds exactly the records pushed to it, and that every subscriber saw
every batch of its run.
"""

from __future__ import annotations

import pytest

from bench import cluster
from bench.cluster_load import IN_FLIGHT
from tests.conftest import require_postgres, require_redis

BATCHES = 3


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_the_cluster_section_holds_every_configuration_and_exact_counts() -> None:
    require_redis()
    require_postgres()
    result = cluster.run(n_batches=BATCHES, rounds=1, pairs=1)
    section = cluster.render(result)

    configs = [(r.backend, r.workers) for r in result.ingest]
    assert sorted(configs) == sorted((b, n) for b in cluster.BACKENDS for n in cluster.WORKERS)
    for row in result.ingest:
        slots = IN_FLIGHT * (1 if row.backend == "sqlite" else row.workers)  # --workers N is one port
        assert row.pushed == (slots + BATCHES) * 1000, row
        assert row.counted == row.pushed, row
        assert len(row.rates) == 1 and row.rates[0] > 0
        line = f"| {cluster.BACKENDS[row.backend]} | {row.workers} |"
        assert sum(1 for x in section.splitlines() if x.startswith(line)) == 1, line
        assert f"{row.counted:,} / {row.pushed:,} (yes)" in section

    assert len(result.subscribed) == 2
    for sub in result.subscribed:
        assert sub.counted == sub.pushed, sub
        assert len(sub.none) == len(sub.some) == 1
        seen = sub.some[0].seen
        assert len(seen) == cluster.SUBSCRIBERS
        assert all(s["batch.stored"] == BATCHES and s["stream.dropped"] == 0 for s in seen), seen
        assert sum(1 for x in section.splitlines() if x.startswith(f"| {sub.name} |")) == 2

    assert section.startswith("### cluster\n")
    assert "Every server held exactly what was pushed to it: yes." in section
    assert "saw every batch.stored event of its run: yes" in section
    assert "ingest cost of 3 subscribers: **" in section
    assert "cores for everything" in section
