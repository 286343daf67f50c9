"""SyncManager: streams the outbox to the server in concurrent batches and never loses a record."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from client import answers
from client.eta import EtaEstimator, windows_of
from client.outbox import LAST_SEQ, RUN_RUNNING, Chunk, Outbox, sync_lock
from client.policy import Action, Outcome, RetryPolicy
from client.ratelimit_fields import Policy, usable
from client.result import FailedBatch, Progress, SyncResult
from client.scheduler import ADAPTIVE, Scheduler
from client.transport import open_client, post_batch, post_json, servers_of
from syncbed.contract import (
    DEFAULT_BATCH_RECORDS,
    HEADER_ATTEMPT,
    HEADER_BATCH,
    HEADER_RUN,
    RUNS_PATH,
    SYNC_PATH,
    RunFinish,
    RunStart,
    SyncResponse,
    is_temporary,
)
from syncbed.wire import server_url_problem

log = logging.getLogger("client.sync")

ProgressCallback = Callable[[Progress], None]


async def _drop(*futures: asyncio.Future[Any]) -> None:
    """Cancel what is still running and wait for it, so no error is left unretrieved."""
    for future in futures:
        future.cancel()
    await asyncio.gather(*futures, return_exceptions=True)


@dataclass(slots=True)
class _Batch:
    index: int
    chunk: Chunk
    body: bytes | None = None  # the whole batch's request body, built ahead by the producer
    attempts: int = 0
    sends: int = 0  # times through the scheduler: a resend at once on another connection is not one
    failures: int = 0
    throttled: int = 0
    failed: list[tuple[int, str, int | None]] = field(default_factory=list)  # (records, reason, status)


def _payload(chunk: Chunk) -> bytes:
    """The request body, from the stored wire JSON without re-encoding."""
    return b'{"pageVisits":[' + chunk.joined + b"]}"


class SyncManager:
    """Sync everything the outbox holds; `await sync()` returns a `SyncResult`."""

    def __init__(
        self,
        server: str | Sequence[str],
        token: str,
        outbox: Outbox,
        *,
        mode: str = ADAPTIVE,
        concurrency: int | None = None,
        batch_size: int = DEFAULT_BATCH_RECORDS,
        max_retries: int = 8,
        timeout: float = 30.0,
        use_ratelimit_fields: bool = True,
        remember_limits: bool = True,
        on_progress: ProgressCallback | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.servers = servers_of(server)  # a cluster's workers: send n of batch b goes to servers[(b + n) % len]
        for url in self.servers:
            if (problem := server_url_problem(url)) is not None:
                raise ValueError(problem)
        # The workers share one limiter, so the limits learnt are the cluster's: remembered under all its URLs.
        self.server = ",".join(self.servers)
        self.token = token
        self.outbox = outbox
        self.mode = mode
        self.batch_size = batch_size
        self.timeout = timeout
        self.remember = remember_limits
        self.on_progress = on_progress
        self.transport = transport
        self.policy = retry or RetryPolicy(max_retries=max_retries)
        self.rng = rng or random.Random()
        self.sleep = sleep  # backoffs; the scheduler's holds and pacing use it too, with `clock`
        self.scheduler = Scheduler(mode, concurrency, use_fields=use_ratelimit_fields, clock=clock, sleep=sleep)
        self.eta = EtaEstimator(clock)
        self._result = SyncResult(run="", mode=mode, concurrency=0)
        self._failed_records = 0
        self._t0 = 0.0
        self._abort: str | None = None  # set when the token or the client is refused: nothing else can succeed
        self._abort_status = 401
        self._acks: asyncio.Queue[tuple[int, int, int] | None] = asyncio.Queue()  # (lo, hi, records)
        self._run_row: asyncio.Future[int] | None = None  # the run's row in the outbox's history
        self._committed = 0  # records whose acknowledgement is committed
        self._first_answer = asyncio.Event()
        self._last_answer = 0.0

    # --- progress -----------------------------------------------------------
    def progress(self) -> Progress:
        r = self._result
        elapsed = time.perf_counter() - self._t0 if self._t0 else 0.0
        rate = r.synced_records / elapsed if elapsed > 0 else 0.0
        answered = r.ok_batches + len(r.failed)
        windows = windows_of(self.scheduler.windows)
        e = self.eta.estimate(answered, r.total_batches - answered, self.scheduler.limit(), windows)
        return Progress(
            records_done=r.synced_records,
            records_total=r.total_records,
            batches_done=r.ok_batches,
            batches_failed=len(r.failed),
            batches_total=r.total_batches,
            in_flight=self.scheduler.in_flight,
            throttled=r.throttled,
            retries=r.retries,
            elapsed=elapsed,
            rate=rate,
            eta=None if e is None else e.eta,
            bound=None if e is None else e.bound,
            pace=None if e is None else e.pace,
        )

    def _emit(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress())

    # --- the run ------------------------------------------------------------
    async def sync(self) -> SyncResult:
        with sync_lock(self.outbox.path):
            return await self._sync()

    async def _sync(self) -> SyncResult:
        self._t0 = time.perf_counter()
        # Queued at once, these run back to back on the outbox's thread: one wait for the event loop,
        # not four. The first chunk is read before the snapshot is known (`_produce` checks it).
        compacting = asyncio.ensure_future(self.outbox.compact())  # acknowledgements a killed run left behind
        pending = asyncio.ensure_future(self.outbox.pending())
        known = asyncio.ensure_future(self.outbox.known_limits(self.server))
        first = asyncio.ensure_future(self.outbox.chunk(0, LAST_SEQ, self.batch_size))
        try:
            if await compacting:  # records went after the reads were queued: read again (an interrupted sync)
                await _drop(pending, first)
                pending = asyncio.ensure_future(self.outbox.pending())
                first = asyncio.ensure_future(self.outbox.chunk(0, LAST_SEQ, self.batch_size))
            total, upto = await pending
            limits = await known
        except BaseException:
            await _drop(compacting, pending, known, first)
            raise
        r = self._result = SyncResult(
            run=f"c-{int(time.time())}-{secrets.token_hex(4)}",
            mode=self.mode,
            concurrency=0,
            total_records=total,
            total_batches=math.ceil(total / self.batch_size),
            started_at=time.time(),
        )
        if total == 0:
            await _drop(first)
            self._emit()
            return r
        # Recorded as running from the start (queued behind the first read, so the first burst does not
        # wait for it), so a killed run is still in the history: the next run's start marks it interrupted.
        self._run_row = asyncio.ensure_future(self.outbox.start_run(self._figures()))
        if self.remember:
            # Rows an older client stored from fields it misread (w=inf, q=0) would stall the pacer: skip them.
            self.scheduler.preload({n: Policy(n, q, w) for n, q, w in limits if usable(q, w)})
        workers = self.scheduler.cap
        http = open_client(self.servers, workers, self.timeout, self.transport)
        try:
            # Enough read ahead for a whole burst: each batch is ~0.25 MB, held for a moment.
            queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=workers)
            acker = asyncio.create_task(self._acker())
            # The run carries our own id, so batches need not wait for the announcement; it goes
            # out once the first batch is answered, so its work on the server never sits in front
            # of the first burst (the monitor merges a late announcement into the run).
            announce = asyncio.create_task(self._announce(http))
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._produce(queue, upto, workers, first))
                    for _ in range(workers):
                        group.create_task(self._work(http, queue))
                # Done when the last batch was answered, like any client; committing the last
                # acknowledgements is bookkeeping (a crash now only resends those batches).
                r.duration = (self._last_answer or time.perf_counter()) - self._t0
            finally:
                await _drop(first)  # done by now unless the task group failed first
                await self._acks.put(None)
                await acker
                if not announce.done() and not self._first_answer.is_set():
                    announce.cancel()
                await asyncio.gather(announce, return_exceptions=True)
            r.concurrency = self.scheduler.peak
            self._emit()
            await self._finish(http)
        finally:
            if self.transport is None:  # a transport passed in stays its owner's to close
                await http.aclose()
        await self.outbox.compact()
        await self._record()
        return r

    async def _announce(self, http: httpx.AsyncClient) -> None:
        """POST the run; a server without the endpoint (404) or any failure keeps our own id."""
        await self._first_answer.wait()
        r = self._result
        start = RunStart(
            total_records=r.total_records,
            total_batches=r.total_batches,
            batch_size=self.batch_size,
            mode=self.mode,
            concurrency=self.scheduler.cap,
            run=r.run,
        )
        try:
            response = await self._post_any(http, RUNS_PATH, msgspec.json.encode(start), min(self.timeout, 10.0))
        except httpx.HTTPError as exc:
            log.warning("could not announce the run (%s); continuing as %s", exc, r.run)
            return
        if response.is_success:
            try:
                run = msgspec.json.decode(response.content).get("run")
            except (msgspec.DecodeError, AttributeError):
                run = None
            if isinstance(run, str | int) and str(run):
                r.run = str(run)  # normally our own id back; if not, the server's wins from here on
        elif response.status_code != 404:
            log.warning(
                "the server refused the run announcement (HTTP %s): %s", response.status_code, _message(response)
            )
        self._emit()

    async def _finish(self, http: httpx.AsyncClient) -> None:
        r = self._result
        finish = RunFinish(
            status=r.status, ok_batches=r.ok_batches, failed_batches=len(r.failed), seconds=round(r.duration, 6)
        )
        try:
            body = msgspec.json.encode(finish)
            await self._post_any(http, f"{RUNS_PATH}/{r.run}/finish", body, min(self.timeout, 5.0))
        except httpx.HTTPError as exc:
            log.warning("could not report the end of the run: %s", exc)

    async def _post_any(self, http: httpx.AsyncClient, path: str, body: bytes, timeout: float) -> httpx.Response:
        """POST to the first server that answers (a worker down or answering 5xx passes it to the next)."""
        for i, server in enumerate(self.servers):
            last = i == len(self.servers) - 1
            try:
                response = await post_json(http, server + path, self.token, body, timeout=timeout)
            except httpx.HTTPError:
                if last:
                    raise
                continue
            if response.status_code < 500 or last:
                return response
        raise AssertionError("unreachable: servers_of never returns an empty list")

    def _figures(self, *, final: bool = False) -> dict[str, Any]:
        """The run's row: final figures, or (while it runs) what is done so far, acknowledged records committed."""
        r = self._result
        return {
            "status": r.status if final else RUN_RUNNING,  # a run's row says `running` until it ends
            "run": r.run,
            "server": self.server,
            "started_at": r.started_at,
            "seconds": r.duration if final else time.perf_counter() - self._t0,
            "mode": r.mode,
            "concurrency": r.concurrency if final else self.scheduler.peak,
            "records": r.total_records,
            "synced": r.synced_records if final else self._committed,
            "batches": r.total_batches,
            "ok_batches": r.ok_batches,
            "failed_batches": len(r.failed),
            "requests": r.requests,
            "throttled": r.throttled,
            "retries": r.retries,
        }

    async def _record(self) -> None:
        if self.remember and self.scheduler.windows.known:
            policies = [w.policy for w in self.scheduler.windows.windows.values()]
            await self.outbox.remember_limits(self.server, [(p.name, p.quota, p.window) for p in policies])
        assert self._run_row is not None
        await self.outbox.finish_run(await self._run_row, self._figures(final=True))

    # --- tasks --------------------------------------------------------------
    async def _produce(
        self, queue: asyncio.Queue[_Batch | None], upto: int, workers: int, first: Awaitable[Chunk | None]
    ) -> None:
        head = await first
        if head is not None and head.hi > upto:  # records were added between the two reads
            head = await self.outbox.chunk(0, upto, self.batch_size)
        if head is not None:
            await queue.put(_Batch(0, head, _payload(head)))
            index = 1
            async for chunk in self.outbox.chunks(self.batch_size, upto, after=head.hi):
                await queue.put(_Batch(index, chunk, _payload(chunk)))
                index += 1
        for _ in range(workers):
            await queue.put(None)

    async def _acker(self) -> None:
        """Delete acknowledged ranges, coalescing whatever queued up into one transaction."""
        while True:
            spans: list[tuple[int, int]] = []
            stop = False
            item = await self._acks.get()
            while True:
                if item is None:
                    stop = True
                else:
                    spans.append((item[0], item[1]))
                    self._committed += item[2]
                if self._acks.empty():
                    break
                item = self._acks.get_nowait()
            assert self._run_row is not None
            # The run's row goes in the same transaction; the last one's figures are `_record`'s to write.
            await self.outbox.ack(spans, None if stop else (await self._run_row, self._figures()))
            if stop:
                return

    async def _work(self, http: httpx.AsyncClient, queue: asyncio.Queue[_Batch | None]) -> None:
        while (batch := await queue.get()) is not None:
            await self._deliver(http, batch)
            r = self._result
            if batch.failed:
                records = sum(n for n, _, _ in batch.failed)
                _, reason, status = batch.failed[0]
                r.failed.append(FailedBatch(batch.index, records, reason, status, batch.attempts))
                self._failed_records += records
            else:
                r.ok_batches += 1
            self._emit()

    async def _deliver(self, http: httpx.AsyncClient, batch: _Batch) -> None:
        """Send one batch (and its halves after a 413) until each part is stored or given up."""
        parts = [batch.chunk]
        while parts:
            part = parts.pop(0)
            if self._abort is not None:
                batch.failed.append((part.records, self._abort, self._abort_status))
                continue
            sent = await self._send(http, batch, part)
            if sent is None:  # refused while it waited for its slot: never sent
                assert self._abort is not None
                batch.failed.append((part.records, self._abort, self._abort_status))
                continue
            outcome, ack = sent
            if is_temporary(outcome.status):
                batch.failures += 1
            if outcome.status == 429:
                batch.throttled += 1
            decision = self.policy.decide(
                outcome, failures=batch.failures, throttled=batch.throttled, records=part.records, rng=self.rng
            )
            if decision.action is Action.DONE:
                self._acked(part, ack)
            elif decision.action is Action.THROTTLED:
                self.scheduler.throttled(
                    rule=outcome.rule, retry_after=outcome.retry_after, hold=decision.delay, exact=outcome.exact
                )
                parts.insert(0, part)
            elif decision.action is Action.BACKOFF:
                self._result.retries += 1
                log.info("batch %d: %s; retrying in %.2fs", batch.index, decision.reason, decision.delay)
                self._emit()
                await self.sleep(decision.delay)
                parts.insert(0, part)
            elif decision.action is Action.SPLIT:
                self._result.splits += 1
                batch.body = None
                parts[0:0] = await self._halves(part)
            else:
                if outcome.status == 401:
                    self._abort = f"not sent: the token was refused ({decision.reason})"
                reason = decision.reason
                if outcome.status == 403:
                    # A blocklist or a ban refuses every request alike: retrying into it only prolongs it.
                    reason = f"the server refuses this client ({decision.reason})"
                    if self._abort is None:
                        self._abort, self._abort_status = f"not sent: {reason}", 403
                batch.failed.append((part.records, reason, outcome.status))

    async def _halves(self, part: Chunk) -> list[Chunk]:
        """The two halves of a chunk, re-read from the outbox (a record replaced since is left out)."""
        rows = await self.outbox.read(part.lo - 1, part.hi, part.records)
        if len(rows) < 2:
            return [Chunk.of(rows)] if rows else []
        mid = len(rows) // 2
        return [Chunk.of(rows[:mid]), Chunk.of(rows[mid:])]

    def _acked(self, part: Chunk, ack: SyncResponse | None) -> None:
        r = self._result
        self._acks.put_nowait((part.lo, part.hi, part.records))
        r.synced_records += part.records
        if ack is not None:
            r.stored += ack.stored
            r.duplicates += ack.duplicates

    async def _send(
        self, http: httpx.AsyncClient, batch: _Batch, part: Chunk
    ) -> tuple[Outcome, SyncResponse | None] | None:
        """One POST through the scheduler; None when the sync stopped while it waited. Never raises for HTTP."""
        # Built before the slot (by the producer, unless split), so a paced send leaves right at the edge.
        body = batch.body if batch.body is not None and part is batch.chunk else _payload(part)
        sent_at = await self.scheduler.acquire()
        if self._abort is not None:  # a 401 or 403 came back meanwhile: nothing sent after it can succeed
            self.scheduler.release()
            return None
        started = time.perf_counter()
        self.eta.sent(sent_at)

        # A retry (and a 429's resend) goes to another worker than the last send; a resend at once after a
        # connection closed under it (post_batch) stays on the same one: the request never reached it.
        server = self.servers[(batch.index + batch.sends) % len(self.servers)]
        batch.sends += 1

        def headers() -> dict[str, str]:  # once per send: a resend on another connection is another attempt
            batch.attempts += 1
            self._result.requests += 1
            return {HEADER_RUN: self._result.run, HEADER_BATCH: str(batch.index), HEADER_ATTEMPT: str(batch.attempts)}

        try:
            response = await post_batch(http, server + SYNC_PATH, self.token, body, headers, self.scheduler.cap)
            answer = answers.read(response, fields=self.scheduler.use_fields)
        except httpx.HTTPError as exc:
            answer = answers.failure(exc)
        finally:
            self.scheduler.release()
        self._first_answer.set()
        self._last_answer = time.perf_counter()
        status, seconds = answer.outcome.status, time.perf_counter() - started
        o = answer.outcome
        self.scheduler.observe(
            sent_at=sent_at, status=status, policies=answer.policies, remaining=answer.remaining, seconds=seconds,
            rule=o.rule, retry_after=o.retry_after,
        )  # fmt: skip
        self.eta.answered(sent_at, seconds, ok=status is not None and 200 <= status < 300, failed=is_temporary(status))
        if status == 429:
            self._result.met(o.rule)
            self._emit()
        return answer.outcome, answer.ack


def _message(response: httpx.Response) -> str:
    """The server's sentence from a JSON error body, or a short excerpt of whatever it sent."""
    body = answers.error_body(response)
    if body is not None and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return response.content[:200].decode("utf-8", "replace") or "no message"
