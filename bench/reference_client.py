"""The original plan's browser client, ported literally: the benchmark's and the demo's reference.

Its `syncManager.syncBatchesConcurrent(batches, 5)` cuts the batches into groups of five, sends a
group with `Promise.all` and waits for all five before the next group. `syncBatch` answers a 429 by
sleeping `(data.retry_after || 1)` seconds (a 0 or missing `retry_after` is one second) and sending
again while `retryCount < maxRetries` (3): one attempt and three retries at most. Any other error,
or a fourth 429, rejects the batch's promise, and with it the group's `Promise.all` and the sync:
no later group is sent. Records live in memory (no outbox); no pacing, no shared gate, no jitter.

`run` (optional) announces the run and tags each request with the trace headers, so the monitor
can draw it like any other; the plan's client sends neither, and neither changes what it does.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import msgspec

from client.transport import open_client, post_json
from syncbed.contract import HEADER_ATTEMPT, HEADER_BATCH, HEADER_RUN, RUNS_PATH, SYNC_PATH, RunFinish, RunStart

GROUP = 5
MAX_RETRIES = 3  # the plan's `maxRetries`: retries after the first attempt


@dataclass
class ReferenceResult:
    batches: int
    ok_batches: int = 0
    requests: int = 0
    throttled: int = 0
    duration: float = 0.0
    started_at: float = 0.0  # wall clock (time.time()) of the first request
    waits: list[float] = field(default_factory=list)  # every sleep after a 429, in seconds
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.ok_batches == self.batches:
            return "complete"
        return "partial" if self.ok_batches else "failed"


class BatchFailed(Exception):
    """A rejected `syncBatch` promise."""


def retry_after(response: httpx.Response) -> float:
    """`data.retry_after || 1`: a missing, null, 0 or NaN field (JavaScript's falsy) waits one second.

    Other non-numbers wait one second too (the plan's server only ever sends a number).
    """
    try:
        value = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        raise BatchFailed("HTTP 429 with a body that is not JSON") from None  # `await response.json()` throws
    seconds = value.get("retry_after") if isinstance(value, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds == 0 or seconds != seconds:
        return 1.0
    return max(0.0, float(seconds))  # a negative number is truthy, and setTimeout waits 0 for it


class ReferenceSyncManager:
    """`new SyncManager(apiUrl, token)` of the original plan; `async with` it to set up the HTTP client."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        max_retries: int = MAX_RETRIES,
        concurrency: int = GROUP,
        run: str | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.max_retries = max_retries
        self.run = run
        # The browser's fetch needs no set-up, so the client is made before any clock starts. It sends
        # through the same HTTP client as ours, so the comparison is of the logic, not of HTTP stacks.
        self.http = open_client(self.api_url, concurrency, 60)

    async def __aenter__(self) -> ReferenceSyncManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def _headers(self, batch: int, attempt: int) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if self.run is not None:
            headers |= {HEADER_RUN: self.run, HEADER_BATCH: str(batch), HEADER_ATTEMPT: str(attempt)}
        return headers

    async def sync_batch(self, body: bytes, result: ReferenceResult, batch: int = 0, retry_count: int = 0) -> None:
        """`syncBatch(batch, retryCount = 0)`: POST; a 429 sleeps and recurses while retryCount < maxRetries."""
        result.requests += 1
        try:
            response = await self.http.post(
                self.api_url + SYNC_PATH, content=body, headers=self._headers(batch, retry_count + 1)
            )
        except httpx.HTTPError as exc:
            raise BatchFailed(f"{type(exc).__name__}: {exc}") from None  # fetch rejects
        if response.status_code == 429:
            result.throttled += 1
            wait = retry_after(response)
            if retry_count < self.max_retries:
                result.waits.append(wait)
                await asyncio.sleep(wait)
                return await self.sync_batch(body, result, batch, retry_count + 1)
            raise BatchFailed(f"HTTP 429 after {self.max_retries} retries")
        if not response.is_success:
            raise BatchFailed(f"HTTP {response.status_code}")

    async def sync_batches_concurrent(self, batches: list[bytes], concurrency: int = GROUP) -> ReferenceResult:
        """`syncBatchesConcurrent(batches, 5)`: groups of `concurrency`, each awaited with Promise.all."""
        result = ReferenceResult(batches=len(batches), started_at=time.time())
        started = time.perf_counter()
        for i in range(0, len(batches), concurrency):
            group = batches[i : i + concurrency]
            # Promise.all rejects at the first failure; the group's other requests still run to their end.
            outcomes = await asyncio.gather(
                *(self.sync_batch(body, result, i + k) for k, body in enumerate(group)), return_exceptions=True
            )
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            result.ok_batches += len(outcomes) - len(failures)
            if failures:
                for failure in failures:
                    if not isinstance(failure, BatchFailed):
                        raise failure
                result.errors += [str(f) for f in failures]
                break
        result.duration = time.perf_counter() - started
        return result

    async def announce(self, batches: int, batch_size: int) -> None:
        """POST the run (the trace headers name it), so the monitor knows its totals."""
        if self.run is None:
            return
        start = RunStart(batches * batch_size, batches, batch_size, "reference", GROUP, self.run)
        await post_json(self.http, self.api_url + RUNS_PATH, self.token, msgspec.json.encode(start))

    async def finish(self, result: ReferenceResult) -> None:
        if self.run is None:
            return
        failed = result.batches - result.ok_batches
        done = RunFinish(result.status, result.ok_batches, failed, round(result.duration, 6))
        url = f"{self.api_url}{RUNS_PATH}/{self.run}/finish"
        await post_json(self.http, url, self.token, msgspec.json.encode(done))
