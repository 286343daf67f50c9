"""`scripts/bench ingest`: 100,000 records (100 batches, 5 at once) through our server and a bare reference."""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import msgspec

from bench.common import python_server, syncbed_server, table

CONCURRENCY = 5


def make_bodies(n_batches: int, size: int, prefix: str) -> list[bytes]:
    return [
        msgspec.json.encode(
            {
                "pageVisits": [
                    {
                        "id": f"{prefix}-{b}-{i}",
                        "url": f"https://example.com/articles/{b}/{i}?ref=bench",
                        "visitedAt": 1_700_000_000_000 + b * size + i,
                        "title": f"An article about benchmark number {i}",
                        "durationMs": 1000 + i,
                        "tabId": i % 12,
                    }
                    for i in range(size)
                ]
            }
        )
        for b in range(n_batches)
    ]


async def push(url: str, bodies: list[bytes], token: str | None) -> float:
    """Seconds to push every body with CONCURRENCY requests in flight; every answer must be a 200."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY)) as c:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                r = await c.post("/api/v1/data/sync", content=body, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


def run(quick: bool) -> str:
    n_batches = 20 if quick else 100
    records = n_batches * 1000
    rounds = 1 if quick else 3
    ours: list[float] = []
    bare: list[float] = []
    # Alternate the two servers round by round so machine noise hits both alike.
    for r in range(rounds):
        with syncbed_server("--no-limits") as srv:
            token = srv.token("bench")
            ours.append(records / asyncio.run(push(srv.url, make_bodies(n_batches, 1000, f"o{r}"), token)))
        with python_server("bench.bare_server") as (url, _):
            bare.append(records / asyncio.run(push(url, make_bodies(n_batches, 1000, f"b{r}"), None)))
    best_ours, best_bare = max(ours), max(bare)
    ratio = best_ours / best_bare
    rows = [
        [
            "syncbed (auth, validation, limiter off, events on)",
            f"{best_ours:,.0f}",
            ", ".join(f"{x:,.0f}" for x in ours),
        ],
        ["bare Starlette + aiosqlite (reference)", f"{best_bare:,.0f}", ", ".join(f"{x:,.0f}" for x in bare)],
    ]
    verdict = "meets" if ratio >= 0.7 else "MISSES"
    return (
        f"### ingest\n\n{records:,} records in {n_batches} batches of 1,000, {CONCURRENCY} requests in flight, "
        f"HTTP on loopback; rate limits **off** in our server (this measures ingest, not the limiter). "
        f"Best of {rounds} alternating rounds.\n\n"
        + table(["server", "records/s (best)", "all rounds"], rows)
        + f"\n\nRatio ours / bare: **{ratio:.2f}** (target >= 0.70: {verdict}).\n"
    )


def main(quick: bool = False) -> str:
    return run(quick)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    print(main(p.parse_args().quick))
