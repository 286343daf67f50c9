"""Writes tests/fixtures/events_demo.jsonl: a deterministic simulated server's events.

Three runs against a fixed-window limit of 5 sync requests per second per user and 0.3 s per batch:
a sequential run, an unannounced run, and a concurrent run (10 at once) that draws 429s and
one injected 503. `events_midrun.jsonl` is the same cut in the middle of the concurrent run.
Regenerate with `python -m tests.monitor.fixture_gen`.
"""

from __future__ import annotations

import heapq
import json
import math
from pathlib import Path
from typing import Any

T0 = 1_700_000_000.0
LATENCY = 0.3
LIMIT = 5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE = FIXTURES / "events_demo.jsonl"
MIDRUN = FIXTURES / "events_midrun.jsonl"
MIDRUN_TS = T0 + 3.2


class Sim:
    def __init__(self) -> None:
        self.events: list[tuple[float, int, dict[str, Any]]] = []
        self.seq = 0
        self.windows: dict[tuple[str, int], int] = {}

    def emit(self, ts: float, type_: str, **fields: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (round(ts, 4), self.seq, {"ts": round(ts, 4), "type": type_, **fields}))

    def admit(self, user: str, ts: float) -> float | None:
        """None when admitted, else retry_after (Rack::Attack fixed window)."""
        window = math.floor(ts)
        count = self.windows.get((user, window), 0) + 1
        self.windows[(user, window)] = count
        return None if count <= LIMIT else round(1 - (ts - window), 3)

    def run(
        self,
        run: str,
        user: str,
        start: float,
        batches: int,
        concurrency: int,
        mode: str,
        announce: bool = True,
        fail: tuple[int, int] | None = None,
    ) -> float:
        if announce:
            self.emit(
                start,
                "run.started",
                run=run,
                user=user,
                total_records=batches * 1000,
                total_batches=batches,
                batch_size=1000,
                mode=mode,
                concurrency=concurrency,
            )
        queue = list(range(1, batches + 1))
        attempts = dict.fromkeys(queue, 0)
        # (time a worker is free, worker id, batch to retry or 0)
        free = [(start + 0.001 * w, w, 0) for w in range(concurrency)]
        heapq.heapify(free)
        ok = 0
        end = start
        while free:
            t, w, retry = heapq.heappop(free)
            batch = retry or (queue.pop(0) if queue else 0)
            if not batch:
                continue
            attempts[batch] += 1
            att = attempts[batch]
            base = {"run": run, "batch": batch, "attempt": att, "user": user}
            wait = self.admit(user, t)
            if wait is not None:
                self.emit(t, "request.throttled", **base, ip="127.0.0.1", rule="sync/user", key=user, retry_after=wait)
                heapq.heappush(free, (t + wait + 0.01, w, batch))
                continue
            self.emit(t, "batch.received", **base, records=1000)
            done = t + LATENCY
            if fail == (batch, att):
                self.emit(done, "batch.rejected", **base, status=503, error="injected_fault")
                heapq.heappush(free, (done + 0.2, w, batch))
                continue
            self.emit(done, "batch.stored", **base, records=1000, stored=1000, duplicates=0, ms=300)
            ok += 1
            end = max(end, done)
            heapq.heappush(free, (done, w, 0))
        if announce:
            self.emit(
                end + 0.01,
                "run.finished",
                run=run,
                user=user,
                status="complete",
                ok_batches=ok,
                failed_batches=0,
                seconds=round(end + 0.01 - start, 3),
            )
        return end + 0.01

    def stats(self, start: float, end: float) -> None:
        for sec in range(math.floor(start) + 1, math.ceil(end) + 1):
            keys = sorted(
                ({"key": u, "count": n} for (u, w), n in self.windows.items() if w == sec - 1),
                key=lambda k: -k["count"],
            )
            self.emit(
                sec,
                "stats",
                records_per_s=0,
                requests_per_s=0,
                throttled_per_s=0,
                in_flight=0,
                limiter={"sync/user": keys[:3], "sync/ip": [], "req/ip": []},
                rules=[
                    {"name": "sync/user", "limit": LIMIT, "period": 1.0},
                    {"name": "sync/ip", "limit": 10, "period": 1.0},
                    {"name": "req/ip", "limit": 300, "period": 300.0},
                ],
            )


def build() -> list[dict[str, Any]]:
    sim = Sim()
    sim.emit(T0, "config.changed", what="faults", latency_ms=300, jitter_ms=0, error_rate=0.0, reset_rate=0.0)
    end_a = sim.run("seq-1", "alice", T0 + 0.1, batches=5, concurrency=1, mode="sequential")
    end_b = sim.run("anon-2", "carol", end_a + 0.2, batches=2, concurrency=2, mode="", announce=False)
    end_c = sim.run("agg-3", "bob", end_b + 0.5, batches=12, concurrency=10, mode="aggressive", fail=(3, 1))
    sim.stats(T0, end_c)
    out = []
    for event_id, (_, _, data) in enumerate(sorted(sim.events), start=1):
        out.append({"id": event_id, **data})
    return out


def main() -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    events = build()
    FIXTURE.write_text("".join(json.dumps(ev) + "\n" for ev in events))
    MIDRUN.write_text("".join(json.dumps(ev) + "\n" for ev in events if ev["ts"] <= MIDRUN_TS))
    print(f"wrote {FIXTURE} and {MIDRUN}")


if __name__ == "__main__":
    main()
