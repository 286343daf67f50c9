"""`scripts/bench limiter`: decisions per second of each algorithm on each store, and a throttled
endpoint's requests/s through our middleware vs. the same Starlette app limited by slowapi."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import python_server, table
from harness.processes import RedisServer

ALGORITHMS = ("fixed_window", "sliding_window", "gcra")
KEYS = [f"ip:10.0.{i // 256}.{i % 256}" for i in range(1000)]
LIMIT_PER_S = 10  # the throttled endpoint's limit: nearly every request of the load is refused
CONNECTIONS = 32


# --- decisions ---------------------------------------------------------------------------------------


def memory_decisions(algorithm: str, n: int) -> float:
    """Seconds per in-process decision: the algorithm's hit() with a fresh time.time() each."""
    from server.limiter import make_algorithm

    alg = make_algorithm(algorithm, 100, 60.0)
    hit, now, keys = alg.hit, time.time, KEYS
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(n):
            hit(keys[i % 1000], now())
        best = min(best, (time.perf_counter() - started) / n)
    return best


async def engine_checks(n: int) -> float:
    """Seconds per Limiter.check() of a sync request against the three default rules (memory)."""
    from server.config import LimitsSettings
    from server.throttle import Limiter
    from syncbed.contract import SYNC_PATH

    limiter = Limiter(LimitsSettings())
    ips = [k[3:] for k in KEYS]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(n):
            await limiter.check("POST", SYNC_PATH, ips[i % 1000])
        best = min(best, (time.perf_counter() - started) / n)
    return best


async def redis_decisions(url: str, algorithm: str, n: int, in_flight: int) -> float:
    """Decisions per second through RedisStore (one Lua call each), `in_flight` at a time."""
    from server.limiter import make_algorithm
    from server.limiter_redis import RedisStore
    from server.limiter_store import Counter, counter_id

    store = RedisStore(url, max_connections=max(in_flight, 1))
    counter = Counter(counter_id("throttle", f"bench/{algorithm}", 60.0), make_algorithm(algorithm, 100, 60.0))
    try:
        await store.hit(counter, "warm", time.time())
        per_worker = n // in_flight

        async def worker(w: int) -> None:
            for i in range(per_worker):
                if await store.hit(counter, KEYS[(w * per_worker + i) % 1000], time.time()) is None:
                    raise RuntimeError("Redis did not answer during the benchmark")

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(in_flight)))
        return per_worker * in_flight / (time.perf_counter() - started)
    finally:
        await store.aclose()


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A throwaway redis-server's URL, or None when none is installed (the Redis rows are then left out)."""
    if shutil.which("redis-server") is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(data_dir=Path(tmp)).start()
        try:
            yield redis.url
        finally:
            redis.kill()


# --- the two servers (run as `python -m bench.limiter --serve ours|slowapi --port P`) -------------------


@dataclass
class BenchState:
    """The slice of AppState the throttle middleware uses."""

    limiter: object
    bus: object
    admin_token: str = "bench-admin-token-never-sent"
    counters: dict[int, int] = field(default_factory=dict)

    def stats_request(self, *, records: int, status: int) -> None:
        self.counters[status] = self.counters.get(status, 0) + 1


def make_app(kind: str, store: str) -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def ok(request: Request) -> Response:
        return JSONResponse({"ok": True})

    if kind == "ours":
        from starlette.middleware import Middleware

        from server.config import LimitsSettings, ThrottleRule
        from server.events import EventBus
        from server.limiter_store import open_store
        from server.throttle import Limiter
        from server.throttle_middleware import ThrottleMiddleware

        rule = ThrottleRule("bench/ip", LIMIT_PER_S, 1.0, "ip", ("/limited",))
        limiter = Limiter(LimitsSettings(throttles=(rule,)), open_store(store))
        app = Starlette(
            routes=[Route("/limited", ok), Route("/healthz", ok)], middleware=[Middleware(ThrottleMiddleware)]
        )
        app.state.syncbed = BenchState(limiter, EventBus())
        return app

    from slowapi import Limiter as SlowLimiter
    from slowapi import _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    slow = SlowLimiter(key_func=get_remote_address, headers_enabled=True, storage_uri="memory://")

    @slow.limit(f"{LIMIT_PER_S}/second")
    async def limited(request: Request) -> Response:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[Route("/limited", limited), Route("/healthz", ok)],
        exception_handlers={RateLimitExceeded: _rate_limit_exceeded_handler},  # type: ignore[dict-item]
    )
    app.state.limiter = slow
    return app


def serve(kind: str, port: int, store: str, log_level: str) -> None:
    import uvicorn

    # Both servers log alike: each refusal is one log line (slowapi's warning, our info) unless "error".
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    app = make_app(kind, store)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")  # type: ignore[arg-type]


# --- load ----------------------------------------------------------------------------------------------


async def load(url: str, seconds: float, connections: int = CONNECTIONS) -> tuple[float, dict[int, int]]:
    """Keep-alive GET /limited on `connections` sockets for `seconds`: requests/s and status counts."""
    host, port = url.removeprefix("http://").split(":")
    request = f"GET /limited HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    statuses: dict[int, int] = {}
    deadline = 0.0
    done = 0

    async def one() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                statuses[status] = statuses.get(status, 0) + 1
                done += 1
        finally:
            writer.close()

    deadline = time.perf_counter() + 0.5  # warm-up, not counted
    await asyncio.gather(*(one() for _ in range(connections)))
    statuses.clear()
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(one() for _ in range(connections)))
    return done / (time.perf_counter() - started), dict(statuses)


def measure(kind: str, seconds: float, store: str = "memory", log_level: str = "info") -> tuple[float, float]:
    args = ("--serve", kind, "--store", store, "--log-level", log_level)
    with python_server("bench.limiter", *args) as (url, _):
        rps, statuses = asyncio.run(load(url, seconds))
    total = sum(statuses.values()) or 1
    unexpected = set(statuses) - {200, 429}
    if unexpected:
        raise RuntimeError(f"{kind}: unexpected statuses {statuses}")
    return rps, statuses.get(429, 0) / total


# --- report --------------------------------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


async def decision_rows(quick: bool, redis_url: str | None) -> list[list[str]]:
    n = 100_000 if quick else 500_000
    rows = []
    for algorithm in ALGORITHMS:
        s = memory_decisions(algorithm, n)
        rows.append(["memory", algorithm, "1", fmt_rate(1 / s), f"{s * 1e6:.2f}"])
    s = await engine_checks(n // 5)
    rows.append(["memory", "Limiter.check, 3 default rules", "1", fmt_rate(1 / s), f"{s * 1e6:.2f}"])
    if redis_url is None:
        rows.append(["redis", "(redis-server not installed: not measured)", "", "", ""])
        return rows
    m = 4_000 if quick else 20_000
    for algorithm in ALGORITHMS:
        for in_flight in (1, 32):
            rate = await redis_decisions(redis_url, algorithm, m, in_flight)
            rows.append(["redis", algorithm, str(in_flight), fmt_rate(rate), f"{1e6 / rate:.1f}"])
    return rows


def http_rows(quick: bool, redis_url: str | None) -> tuple[list[list[str]], float]:
    seconds, rounds = (3.0, 1) if quick else (5.0, 3)
    ours: list[float] = []
    slow: list[float] = []
    share: dict[str, float] = {}
    for _ in range(rounds):  # alternate, so machine noise hits both alike
        rps, share["ours"] = measure("ours", seconds)
        ours.append(rps)
        rps, share["slowapi"] = measure("slowapi", seconds)
        slow.append(rps)
    ratio = statistics.median(ours) / statistics.median(slow)
    rows = [
        [
            "syncbed ThrottleMiddleware (memory)",
            fmt_rate(statistics.median(ours)),
            f"{share['ours']:.1%}",
            f"{ratio:.2f}x",
        ],
        ["slowapi 0.1 + limits (memory)", fmt_rate(statistics.median(slow)), f"{share['slowapi']:.1%}", "1.00x"],
    ]
    if redis_url is not None:
        rps, sh = measure("ours", seconds, redis_url)
        rows.append(
            ["syncbed ThrottleMiddleware (redis)", fmt_rate(rps), f"{sh:.1%}", f"{rps / statistics.median(slow):.2f}x"]
        )
    if not quick:
        a, _ = measure("ours", seconds, log_level="error")
        b, _ = measure("slowapi", seconds, log_level="error")
        rows.append(["syncbed, refusals not logged", fmt_rate(a), "", f"{a / b:.2f}x vs. slowapi not logging"])
        rows.append(["slowapi, refusals not logged", fmt_rate(b), "", ""])
    return rows, ratio


async def run_decisions(quick: bool, redis_url: str | None) -> list[list[str]]:
    return await decision_rows(quick, redis_url)


def main(quick: bool = False) -> str:
    with redis_server() as redis_url:
        decisions = asyncio.run(run_decisions(quick, redis_url))
        http, ratio = http_rows(quick, redis_url)
    memory_us = max(float(r[4]) for r in decisions[:3])
    verdict_us = "meets" if memory_us < 5 else "MISSES"
    verdict_http = "meets" if ratio >= 2 else "MISSES"
    return (
        "### limiter\n\n"
        "Decisions: each algorithm's `hit()` in process (a fresh `time.time()` per call, 1,000 keys), "
        "and one Lua call per decision through `RedisStore` to a local redis-server, 1 or 32 in flight.\n\n"
        + table(["store", "algorithm", "in flight", "decisions/s", "µs per decision (1 / rate)"], decisions)
        + f"\n\nSlowest in-process decision: **{memory_us:.2f} µs** (target < 5 µs: {verdict_us}).\n\n"
        f"Throttled endpoint: `GET /limited` limited to {LIMIT_PER_S}/s per IP (fixed window), one uvicorn "
        f"process each, {CONNECTIONS} keep-alive connections from one load generator on loopback, so nearly "
        "every answer is a 429. Both servers log each refusal (INFO/WARNING to a discarded stderr) unless "
        "the row says otherwise; ours also publishes a `request.throttled` event and sends the RateLimit "
        "fields, slowapi its X-RateLimit headers. Median of the rounds.\n\n"
        + table(["server", "requests/s", "share 429", "ours / slowapi"], http)
        + f"\n\nRatio ours / slowapi: **{ratio:.2f}x** (target >= 2x: {verdict_http}).\n"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--serve", choices=["ours", "slowapi"], help="run one of the two benchmark servers")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--store", default="memory")
    p.add_argument("--log-level", default="info")
    a = p.parse_args()
    if a.serve:
        serve(a.serve, a.port, a.store, a.log_level)
    else:
        print(main(a.quick))
