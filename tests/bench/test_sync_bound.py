"""The sync benchmark's bound is phase-aware: no measured run beats it (time/bound >= 0.99).

Not a timing test: a run can be as slow as the machine makes it; what it cannot be is faster than the
earliest schedule the server's limits allow from where in the window it started. A ratio below 1 would
be a bound that leaves something out (the phase of the fixed window, as it once did), or a server that
admits more than its rules say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import sync_runs as bench
from bench.reference_client import GROUP
from bench.sync_report import verdicts
from client.outbox import Outbox
from syncbed.contract import SYNC_MODES
from tests.conftest import ServerFactory

RECORDS = 10_000  # 10 batches: two windows under the seed's 5/s, one burst of aggressive's 10


@pytest.mark.slow
@pytest.mark.parametrize("key", list(bench.SETTINGS))
async def test_no_quick_bench_run_beats_its_phase_aware_bound(
    server_factory: ServerFactory, tmp_path: Path, key: str
) -> None:
    _, config, limit = bench.SETTINGS[key]
    server = server_factory(config=config, args=["--latency-ms", str(bench.LATENCY_MS)])
    template = tmp_path / "template.db"
    bench.make_template(template, RECORDS)
    bodies = await bench.bodies(template, RECORDS)
    rows: list[bench.Row] = []
    floor = (bench.MINIMAL[1],) if key == "a" else ()  # the floor never retries: only where nothing binds
    for client in (*SYNC_MODES, "reference", *floor):
        token = server.token(f"{key}-{client}")
        if client == "reference":
            rows.append(await bench.run_reference(server.url, token, bodies, RECORDS, key, limit))
        elif client == bench.MINIMAL[1]:
            rows.append(await bench.run_minimal(server.url, token, client, bodies, RECORDS, key, limit))
        else:
            async with Outbox(tmp_path / f"{client}.db") as outbox:
                await bench.fill(outbox, template, RECORDS)
                rows.append(await bench.run_ours(server.url, token, outbox, client, RECORDS, key, limit))
        assert server.count(token) == RECORDS
    if key == "b":
        # A run that starts 0.9 s into the seed's window gets its second 5 at the edge 0.1 s later: with
        # the phase left out, its bound would be 1.3 s and this run would seem to beat it several times over.
        token = server.token("late")
        async with Outbox(tmp_path / "late.db") as outbox:
            await bench.fill(outbox, template, RECORDS)
            late = await bench.run_ours(server.url, token, outbox, "aggressive", RECORDS, key, limit, into=0.9)
        assert 0.85 <= late.phase < 1.0 and late.bound < 0.6
        rows.append(late)
    report = [f"{r.client}: {r.seconds:.3f} s / {r.bound:.3f} s = {r.ratio:.3f} (phase {r.phase:.3f})" for r in rows]
    print("\n".join(report))
    assert all(r.ok == r.batches == RECORDS // 1000 for r in rows), report
    assert [r.concurrency for r in rows if r.client == "reference"] == [GROUP]
    assert all(r.ratio >= 0.99 for r in rows), report


def _row(records: int, client: str, ratio: float, throttled: int) -> bench.Row:
    row = bench.Row("b", records, client, 16, 0.0, records // 1000 + throttled, throttled, records // 1000,
                    records // 1000, 5)  # fmt: skip
    row.seconds = ratio * row.bound
    return row


@pytest.mark.parametrize(
    ("ratio_10k", "ratio_100k", "refused", "verdict"),
    [(1.09, 1.02, 6, "yes"), (1.11, 1.02, 6, "no"), (1.05, 1.04, 6, "no"), (1.05, 1.02, 7, "no")],
)
def test_the_seed_target_for_adaptive_is_the_issues_ratio_and_refusal_budget(
    ratio_10k: float, ratio_100k: float, refused: int, verdict: str
) -> None:
    rows = [_row(10_000, "adaptive", ratio_10k, 5), _row(100_000, "adaptive", ratio_100k, refused)]
    rows += [_row(n, "reference", 1.0, 0) for n in (10_000, 100_000)]
    [line] = [v for v in verdicts(rows) if v.startswith("- (b) adaptive")]
    assert line.split(": ", 1)[1].startswith(verdict), line
