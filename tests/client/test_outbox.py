from __future__ import annotations

from pathlib import Path

import pytest

from client.outbox import Outbox, OutboxBusy, sync_lock


def recs(n: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(f"r{i}", b'{"id":"r%d"}' % i) for i in range(start, start + n)]


async def test_batches_stream_in_order_up_to_the_snapshot(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db") as ob:
        await ob.put(recs(2500))
        count, upto = await ob.pending()
        assert count == 2500
        await ob.put(recs(10, start=5000))  # arrives after the snapshot: not part of this run
        sizes: list[int] = []
        seqs: list[int] = []
        async for rows in ob.batches(1000, upto):
            sizes.append(len(rows))
            seqs.extend(r[0] for r in rows)
        assert sizes == [1000, 1000, 500]
        assert seqs == sorted(seqs) and len(set(seqs)) == 2500


async def test_ack_removes_exactly_the_acknowledged_ranges(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db") as ob:
        await ob.put(recs(30))
        _, upto = await ob.pending()
        batches = [rows async for rows in ob.batches(10, upto)]
        await ob.ack([(batches[0][0][0], batches[0][-1][0]), (batches[2][0][0], batches[2][-1][0])])
        assert await ob.compact() == 20
        assert await ob.compact() == 0
        left = [rows async for rows in ob.batches(100, upto)]
        assert [r[1] for r in left[0]] == [r[1] for r in batches[1]]


async def test_acknowledged_but_not_compacted_records_go_when_reopened(tmp_path: Path) -> None:
    # A sync killed after acknowledging but before compacting: the next open finishes the job.
    async with Outbox(tmp_path / "o.db") as ob:
        await ob.put(recs(30))
        await ob.ack([(1, 10)])
        assert (await ob.pending())[0] == 30
    async with Outbox(tmp_path / "o.db") as ob:
        assert (await ob.pending())[0] == 20


async def test_sequence_numbers_are_never_reused(tmp_path: Path) -> None:
    # An acked range is deleted by seq; a reused seq could delete a record that was never sent.
    async with Outbox(tmp_path / "o.db") as ob:
        await ob.put(recs(5))
        _, upto = await ob.pending()
        await ob.ack([(1, upto)])
        await ob.compact()
        await ob.put(recs(5, start=100))
        rows = await ob.read(0, 10**9, 100)
        assert min(r[0] for r in rows) > upto


async def test_put_replaces_a_waiting_record_and_moves_it_to_the_back(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db") as ob:
        await ob.put([("a", b"1"), ("b", b"2")])
        await ob.put([("a", b"fixed")])
        assert [r[1] for r in await ob.read(0, 10**9, 10)] == [b"2", b"fixed"]
        assert await ob.get("a") == b"fixed"
        assert await ob.get("zzz") is None
        # Even when its old copy was just acknowledged, the fixed record is kept to be sent.
        await ob.ack([(1, 3)])
        await ob.put([("b", b"fixed too")])
        await ob.compact()
        assert [r[1] for r in await ob.read(0, 10**9, 10)] == [b"fixed too"]


async def test_records_survive_a_reopen(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db") as ob:
        await ob.put(recs(7))
    async with Outbox(tmp_path / "o.db") as ob:
        assert (await ob.pending())[0] == 7


async def test_runs_and_remembered_limits(tmp_path: Path) -> None:
    run = {
        "run": "x", "server": "http://s", "started_at": 1.0, "seconds": 2.0, "mode": "adaptive",
        "concurrency": 5, "status": "complete", "records": 10, "synced": 10, "batches": 1, "ok_batches": 1,
        "failed_batches": 0, "requests": 1, "throttled": 0, "retries": 0,
    }  # fmt: skip
    async with Outbox(tmp_path / "o.db") as ob:
        await ob.add_run(run)
        await ob.add_run({**run, "run": "y", "started_at": 5.0})
        assert [r["run"] for r in await ob.recent_runs(10)] == ["y", "x"]
        await ob.remember_limits("http://s", [("sync/user", 5, 1.0)])
        await ob.remember_limits("http://s", [("sync/user", 7, 1.0), ("sync/ip", 10, 1.0)])
        assert await ob.known_limits("http://s") == [("sync/ip", 10, 1.0), ("sync/user", 7, 1.0)]
        assert await ob.known_limits("http://other") == []


def test_one_sync_at_a_time(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    with sync_lock(db), pytest.raises(OutboxBusy), sync_lock(db):
        pass
    with sync_lock(db):  # released
        pass
