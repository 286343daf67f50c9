"""The original plan's browser client, ported literally: the benchmark's reference.

Its `syncManager.syncBatchesConcurrent(batches, 5)` cuts the batches into groups
of five, sends a group with `Promise.all` and waits for all five before the next
group; each request that gets a 429 sleeps the body's `retry_after` on its own
and resends, up to `maxRetries` attempts. Records live in memory (no outbox) and
there is no pacing, no shared gate and no jitter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from client.transport import open_client
from syncbed.contract import SYNC_PATH

GROUP = 5
MAX_RETRIES = 5


@dataclass
class ReferenceResult:
    batches: int
    ok_batches: int = 0
    requests: int = 0
    throttled: int = 0
    duration: float = 0.0
    errors: list[str] = field(default_factory=list)


class ReferenceSyncManager:
    """`new SyncManager(apiUrl, token)` of the original plan; `async with` it to set up the HTTP client."""

    def __init__(self, api_url: str, token: str, *, max_retries: int = MAX_RETRIES, concurrency: int = GROUP) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.max_retries = max_retries
        # The browser's fetch needs no set-up, so the client is made before any clock starts. It sends
        # through the same HTTP client as ours, so the comparison is of the logic, not of HTTP stacks.
        self.http = open_client(self.api_url, concurrency, 60)

    async def __aenter__(self) -> ReferenceSyncManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def sync_batch(self, body: bytes, result: ReferenceResult) -> bool:
        """`syncBatch(batch)`: POST; on 429 sleep `retry_after` seconds and try again."""
        for _attempt in range(self.max_retries):
            result.requests += 1
            response = await self.http.post(
                self.api_url + SYNC_PATH,
                content=body,
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            )
            if response.status_code == 429:
                result.throttled += 1
                data = response.json()
                await asyncio.sleep(float(data.get("retry_after", 1)))
                continue
            if response.status_code >= 400:
                result.errors.append(f"HTTP {response.status_code}")
                return False
            return True
        result.errors.append("too many retries")
        return False

    async def sync_batches_concurrent(self, batches: list[bytes], concurrency: int = GROUP) -> ReferenceResult:
        """`syncBatchesConcurrent(batches, 5)`: groups of `concurrency`, each awaited with Promise.all."""
        result = ReferenceResult(batches=len(batches))
        started = time.perf_counter()
        for i in range(0, len(batches), concurrency):
            group = batches[i : i + concurrency]
            outcomes = await asyncio.gather(*(self.sync_batch(body, result) for body in group))
            result.ok_batches += sum(outcomes)
        result.duration = time.perf_counter() - started
        return result
