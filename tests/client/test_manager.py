"""SyncManager's policy against an in-memory server (httpx.MockTransport): no sockets, real SQLite."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from client.manager import SyncManager
from client.outbox import Chunk, Outbox
from client.policy import RetryPolicy
from client.result import Progress
from client.scheduler import INITIAL_BURST
from tests.client.fakes import START, Clock, FakeServer, Seen, filled

FAST = RetryPolicy(max_retries=3, base=0.001, cap=0.01)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    ob = await filled(tmp_path / "outbox.db", 1000)
    yield ob
    await ob.close()


def manager(outbox: Outbox, server: FakeServer, **kw: object) -> SyncManager:
    kw.setdefault("batch_size", 100)
    kw.setdefault("retry", FAST)
    return SyncManager("http://fake", "tok", outbox, transport=server.transport(), rng=random.Random(3), **kw)  # type: ignore[arg-type]


async def test_complete_sync_sends_each_record_once_with_trace_headers(outbox: Outbox) -> None:
    server = FakeServer(latency=0.005)
    result = await manager(outbox, server, mode="conservative").sync()
    assert result.complete and result.status == "complete"
    assert (result.ok_batches, result.total_batches, result.synced_records) == (10, 10, 1000)
    assert result.stored == 1000 and result.duplicates == 0 and result.requests == 10
    assert len(server.stored) == 1000
    assert sorted(s.batch for s in server.seen) == list(range(10))
    assert {s.attempt for s in server.seen} == {1}
    assert {s.run for s in server.seen} == {result.run}
    assert server.announced == [
        {"total_records": 1000, "total_batches": 10, "batch_size": 100, "mode": "conservative", "concurrency": 5,
         "run": result.run}
    ]  # fmt: skip
    assert server.finished == [
        (
            result.run,
            {
                "status": "complete",
                "ok_batches": 10,
                "failed_batches": 0,
                "seconds": pytest.approx(result.duration, abs=1e-3),
            },
        )
    ]
    assert await outbox.pending() == (0, 0)
    runs = await outbox.recent_runs(5)
    assert runs[0]["run"] == result.run and runs[0]["status"] == "complete"


async def test_the_run_is_announced_after_the_first_answer_and_a_server_id_wins(outbox: Outbox) -> None:
    server = FakeServer(latency=0.02)
    order: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        order.append(request.url.path)
        if request.url.path == "/api/v1/runs":
            return httpx.Response(201, json={"run": "server-chose-this"})
        return await server.handle(request)

    transport = httpx.MockTransport(handle)
    result = await SyncManager(
        "http://fake", "tok", outbox, mode="sequential", batch_size=250, transport=transport
    ).sync()
    assert order[0] == "/api/v1/data/sync" and order.count("/api/v1/runs") == 1
    assert result.run == "server-chose-this"
    # The first batch carries the client's id; later ones and the finish carry the server's.
    assert server.seen[0].run.startswith("c-") and server.seen[-1].run == "server-chose-this"
    assert server.finished[0][0] == "server-chose-this"


async def test_a_server_without_the_runs_endpoint_gets_a_client_made_run_id(outbox: Outbox) -> None:
    server = FakeServer(runs_status=404)
    result = await manager(outbox, server).sync()
    assert result.complete
    assert result.run.startswith("c-")
    assert server.announced[0]["run"] == result.run  # offered to the server too
    assert {s.run for s in server.seen} == {result.run}


@pytest.mark.parametrize(("mode", "expected"), [("sequential", 1), ("conservative", 5), ("aggressive", 10)])
async def test_fixed_modes_keep_their_concurrency(outbox: Outbox, mode: str, expected: int) -> None:
    # Long enough for a burst of ten to be under way together on a loaded machine (each send costs ~2 ms of CPU).
    server = FakeServer(latency=0.1)
    result = await manager(outbox, server, mode=mode, batch_size=100).sync()
    assert result.complete
    assert server.max_in_flight == expected
    assert result.concurrency == expected


async def test_concurrency_override(outbox: Outbox) -> None:
    server = FakeServer(latency=0.02)
    await manager(outbox, server, mode="conservative", concurrency=3, batch_size=50).sync()
    assert server.max_in_flight == 3


async def test_adaptive_starts_with_a_small_burst_until_the_server_answers(outbox: Outbox) -> None:
    server = FakeServer(latency=0.05)
    await manager(outbox, server, mode="adaptive", batch_size=20).sync()
    first = server.seen[0].at
    blind = [s for s in server.seen if s.at < first + 0.04]
    assert len(blind) == INITIAL_BURST
    assert server.max_in_flight > INITIAL_BURST  # then opens up: no limits advertised, no 429s


async def test_429_holds_every_worker_and_costs_no_attempt(outbox: Outbox) -> None:
    refused: set[int] = set()

    def hook(seen: Seen) -> httpx.Response | None:
        if seen.batch == 2 and len(refused) < 3:
            refused.add(seen.attempt)
            return httpx.Response(429, json={"error": "rate_limited", "message": "m", "rule": "x", "retry_after": 0.15})
        return None

    server = FakeServer(latency=0.01, hook=hook)
    retry = RetryPolicy(max_retries=0, base=0.001)  # no transient retries at all: 429s must not use them up
    result = await manager(outbox, server, mode="aggressive", retry=retry).sync()
    assert result.complete
    assert result.throttled == 3 and result.retries == 0
    assert [s.attempt for s in server.seen if s.batch == 2] == [1, 2, 3, 4]
    for refusal in (s for s in server.seen if s.status == 429):
        later = [s.at for s in server.seen if s.at > refusal.at]
        # Nobody (not just the refused batch) sends during the hold.
        assert not later or min(later) >= refusal.at + 0.15 - 0.005


async def test_transient_errors_are_retried_and_one_bad_batch_never_stops_the_others(outbox: Outbox) -> None:
    def hook(seen: Seen) -> httpx.Response | Exception | None:
        if seen.batch == 7:
            return httpx.ReadError("connection dropped")  # forever
        if seen.batch in (1, 4) and seen.attempt <= 2:
            return httpx.Response(503, json={"error": "injected_fault", "message": "try again"})
        if seen.batch == 5 and seen.attempt == 1:
            return httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return None

    server = FakeServer(hook=hook)
    result = await manager(outbox, server, mode="conservative").sync()
    assert not result.complete and result.status == "partial"
    assert result.ok_batches == 9
    [failed] = result.failed
    assert failed.batch == 7 and failed.records == 100 and failed.attempts == 4
    assert failed.reason.startswith("gave up after 3 retries: network error ReadError")
    assert result.retries == 2 + 2 + 1 + 3
    assert (await outbox.pending())[0] == 100


async def test_413_splits_until_the_parts_fit(outbox: Outbox) -> None:
    def hook(seen: Seen) -> httpx.Response | None:
        if len(seen.ids) > 30:
            return httpx.Response(413, json={"error": "batch_too_large", "message": "too big", "max_records": 30})
        return None

    server = FakeServer(hook=hook)
    result = await manager(outbox, server, mode="conservative").sync()
    assert result.complete and result.ok_batches == 10
    assert result.splits == 10 * 3  # 100 -> 50+50 -> 25 x 4
    assert len(server.stored) == 1000
    assert max(len(s.ids) for s in server.seen if s.status == 200) <= 30


async def test_422_fails_the_batch_keeps_its_records_and_a_fixed_rerun_completes(outbox: Outbox) -> None:
    good_body = await outbox.get("pv-000000000001-0000342")
    assert good_body is not None
    record = msgspec.json.decode(good_body)
    await outbox.put([(record["id"], msgspec.json.encode({**record, "url": "ftp://files.example/x"}))])

    def hook(seen: Seen) -> httpx.Response | None:
        if any(not url.startswith("http") for url in seen.urls):
            msg = "Record 42: url must be an http or https URL."
            return httpx.Response(422, json={"error": "invalid_records", "message": msg})
        return None

    server = FakeServer(hook=hook)
    result = await manager(outbox, server, mode="conservative").sync()
    assert result.status == "partial" and result.ok_batches == 9 and result.total_batches == 10
    [failed] = result.failed
    assert failed.batch == 9 and failed.status == 422 and failed.attempts == 1  # a replaced record moves back
    assert failed.reason == "HTTP 422 invalid_records: Record 42: url must be an http or https URL."
    assert (await outbox.pending())[0] == 100

    await outbox.put([(record["id"], good_body)])  # the user fixes the record
    again = await manager(outbox, server, mode="conservative").sync()
    assert again.complete and again.total_batches == 1 and again.synced_records == 100
    assert len(server.stored) == 1000 and await outbox.pending() == (0, 0)


async def test_a_refused_token_stops_sending(outbox: Outbox) -> None:
    def hook(seen: Seen) -> httpx.Response:
        return httpx.Response(401, json={"error": "unauthorized", "message": "The bearer token is not valid."})

    server = FakeServer(hook=hook, latency=0.01)
    result = await manager(outbox, server, mode="conservative").sync()
    assert result.status == "failed" and len(result.failed) == 10
    assert len(server.seen) <= 5  # what was already on its way, then nothing
    assert all("token" in f.reason for f in result.failed)
    assert (await outbox.pending())[0] == 1000


async def test_progress_reports_every_step(outbox: Outbox) -> None:
    seen: list[Progress] = []
    server = FakeServer(latency=0.005)
    await manager(outbox, server, mode="conservative", on_progress=seen.append).sync()
    done = [p.records_done for p in seen]
    assert done == sorted(done) and done[-1] == 1000
    assert seen[-1].batches_done == 10 and seen[-1].fraction == 1.0 and seen[-1].eta == 0
    assert all(p.records_total == 1000 and p.batches_total == 10 for p in seen)
    assert any(p.in_flight > 1 for p in seen)


async def test_streams_the_outbox_instead_of_loading_it(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real_chunk = Outbox.chunk

    async def counting_chunk(self: Outbox, after: int, upto: int, limit: int) -> Chunk | None:
        chunk = await real_chunk(self, after, upto, limit)
        reads.append(chunk.records if chunk else 0)
        return chunk

    monkeypatch.setattr(Outbox, "chunk", counting_chunk)
    ahead: list[int] = []
    server = FakeServer(latency=0.005)

    def hook(seen: Seen) -> None:
        ahead.append(sum(1 for n in reads if n) - len([s for s in server.seen if s.status == 200]))

    server.hook = hook
    await manager(outbox, server, mode="conservative", batch_size=10).sync()
    assert max(reads) == 10 and sum(reads) == 1000
    assert max(ahead) <= 5 + 5 + 2  # the workers' batches, the queue (one per worker), the one being read


async def test_nothing_to_sync(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "empty.db") as ob:
        server = FakeServer()
        result = await manager(ob, server).sync()
    assert result.complete and result.total_batches == 0 and server.seen == [] and server.announced == []


class LateArrivals(Outbox):
    """Another process adds records right after the sync took its snapshot (between its two first reads)."""

    extra: list[tuple[str, bytes]] = []

    async def chunk(self, after: int, upto: int, limit: int) -> Chunk | None:
        if self.extra:
            rows, self.extra = self.extra, []
            await self.put(rows)
        return await super().chunk(after, upto, limit)


async def test_records_added_during_the_first_read_wait_for_the_next_sync(tmp_path: Path) -> None:
    from client.generate import encoded, visits

    path = tmp_path / "late.db"
    await (await filled(path, 10, seed=4)).close()
    outbox = await LateArrivals(path).open()
    try:
        outbox.extra = next(iter(encoded(visits(5, seed=5))))
        server = FakeServer()
        result = await manager(outbox, server).sync()
        assert result.complete and result.total_records == 10 and result.synced_records == 10
        assert len(server.stored) == 10
        assert (await outbox.pending())[0] == 5  # the late five are kept for the next sync
    finally:
        await outbox.close()


async def test_acknowledgements_left_by_an_interrupted_sync_are_applied_before_anything_is_read(
    outbox: Outbox,
) -> None:
    """A sync cancelled on an open outbox leaves acknowledged ranges undeleted; the next sync drops them first."""
    _, upto = await outbox.pending()
    await outbox.ack([(1, 300), (501, 600)])  # as if batches 0-2 and 5 were answered before the cancel
    server = FakeServer()
    result = await manager(outbox, server).sync()
    assert result.complete and (result.total_records, result.total_batches) == (600, 6)
    assert len(server.stored) == 600 and result.requests == 6
    sent = {s.batch for s in server.seen}
    assert sent == set(range(6))
    assert await outbox.pending() == (0, 0) and upto == 1000


async def test_a_refused_announcement_logs_the_servers_sentence(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeServer(runs_status=403)
    with caplog.at_level("WARNING", logger="client.sync"):
        result = await manager(outbox, server).sync()
    assert result.complete  # the batches still go; only the announcement was refused
    assert "refused the run announcement (HTTP 403): no such path" in caplog.text


async def test_pacing_holds_and_backoffs_run_on_the_managers_clock(outbox: Outbox) -> None:
    clock = Clock()

    def hook(seen: Seen) -> httpx.Response | None:
        if seen.batch == 3 and seen.attempt == 1:
            return httpx.Response(503, json={"error": "injected_fault", "message": "try again"})
        return None

    server = FakeServer(limit=3, clock=clock, hook=hook)  # 3 a second on the fake clock: 10 batches span 3 windows
    retry = RetryPolicy(max_retries=3, base=10.0, cap=10.0)  # seconds of backoff a real clock would wait out
    result = await manager(outbox, server, mode="aggressive", retry=retry, clock=clock, sleep=clock.sleep).sync()
    assert result.complete and result.retries == 1
    windows = [math.floor(s.at) for s in server.seen if s.status == 200]
    assert max(windows.count(w) for w in windows) <= 3
    assert clock.now - START >= 2  # at least two window edges waited for, none of them for real
    assert max(clock.slept) > 1  # the backoff
