"""Writes tests/fixtures/events_demo.jsonl: a deterministic simulated server's events.

Three runs against a fixed-window limit of 5 sync requests per second per user and 0.3 s per batch:
a sequential run, an unannounced run, and a concurrent run (10 at once) that draws 429s and
one injected 503. `events_midrun.jsonl` is the same cut in the middle of the concurrent run.
Regenerate with `python -m tests.monitor.fixture_gen`.
"""

from __future__ import annotations

import heapq
import math
from pathlib import Path

from syncbed.events import (
    BatchReceived,
    BatchRejected,
    BatchStored,
    ConfigChanged,
    Event,
    HotKey,
    RequestThrottled,
    RunFinished,
    RunStarted,
    ServerStats,
    encode_event,
)
from syncbed.responses import RuleSettings

T0 = 1_700_000_000.0
LATENCY = 0.3
LIMIT = 5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE = FIXTURES / "events_demo.jsonl"
MIDRUN = FIXTURES / "events_midrun.jsonl"
MIDRUN_TS = T0 + 3.2


class Sim:
    def __init__(self) -> None:
        self.events: list[tuple[float, int, Event]] = []
        self.seq = 0
        self.windows: dict[tuple[str, int], int] = {}

    def emit(self, event: Event) -> None:
        self.seq += 1
        event.ts = round(event.ts, 4)
        heapq.heappush(self.events, (event.ts, self.seq, event))

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
                RunStarted(
                    ts=start,
                    run=run,
                    user=user,
                    total_records=batches * 1000,
                    total_batches=batches,
                    batch_size=1000,
                    mode=mode,
                    concurrency=concurrency,
                )
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
            wait = self.admit(user, t)
            if wait is not None:
                self.emit(
                    RequestThrottled(
                        ts=t, run=run, batch=batch, attempt=att, user=user, ip="127.0.0.1", rule="sync/user",
                        key=user, retry_after=wait, dry_run=False,
                    )
                )  # fmt: skip
                heapq.heappush(free, (t + wait + 0.01, w, batch))
                continue
            self.emit(BatchReceived(ts=t, run=run, batch=batch, attempt=att, user=user, records=1000))
            done = t + LATENCY
            if fail == (batch, att):
                self.emit(
                    BatchRejected(
                        ts=done, run=run, batch=batch, attempt=att, user=user, status=503, error="injected_fault",
                        records=1000,
                    )
                )  # fmt: skip
                heapq.heappush(free, (done + 0.2, w, batch))
                continue
            self.emit(
                BatchStored(
                    ts=done, run=run, batch=batch, attempt=att, user=user, records=1000, stored=1000, duplicates=0,
                    ms=LATENCY * 1000,
                )
            )  # fmt: skip
            ok += 1
            end = max(end, done)
            heapq.heappush(free, (done, w, 0))
        if announce:
            self.emit(
                RunFinished(
                    ts=end + 0.01,
                    run=run,
                    user=user,
                    status="complete",
                    ok_batches=ok,
                    failed_batches=0,
                    seconds=round(end + 0.01 - start, 3),
                )
            )
        return end + 0.01

    def stats(self, start: float, end: float) -> None:
        for sec in range(math.floor(start) + 1, math.ceil(end) + 1):
            keys = sorted(
                (HotKey(u, n) for (u, w), n in self.windows.items() if w == sec - 1),
                key=lambda k: -k.count,
            )
            self.emit(
                ServerStats(
                    ts=float(sec),
                    records_per_s=0.0,
                    requests_per_s=0.0,
                    throttled_per_s=0.0,
                    in_flight=0,
                    limiter={"sync/user": keys[:3], "sync/ip": [], "req/ip": []},
                    rules=[
                        rule("sync/user", LIMIT, 1.0, "user", sync=True),
                        rule("sync/ip", 10, 1.0, "ip", sync=True),
                        rule("req/ip", 300, 300.0, "ip"),
                    ],
                )
            )


def rule(name: str, limit: int, period: float, key: str, sync: bool = False) -> RuleSettings:
    paths, methods = (["/api/v1/data/sync"], ["POST"]) if sync else ([], [])
    return RuleSettings(name, "throttle", limit, period, key, paths, methods, "fixed_window", True)


def build() -> list[Event]:
    sim = Sim()
    sim.emit(
        ConfigChanged(
            ts=T0, what="faults", changed=["latency_ms"], latency_ms=300, jitter_ms=0, error_rate=0.0, reset_rate=0.0
        )
    )
    end_a = sim.run("seq-1", "alice", T0 + 0.1, batches=5, concurrency=1, mode="sequential")
    end_b = sim.run("anon-2", "carol", end_a + 0.2, batches=2, concurrency=2, mode="", announce=False)
    end_c = sim.run("agg-3", "bob", end_b + 0.5, batches=12, concurrency=10, mode="aggressive", fail=(3, 1))
    sim.stats(T0, end_c)
    out = []
    for event_id, (_, _, event) in enumerate(sorted(sim.events, key=lambda e: e[:2]), start=1):
        event.id = event_id
        out.append(event)
    return out


def main() -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    events = build()
    FIXTURE.write_bytes(b"".join(encode_event(ev) + b"\n" for ev in events))
    MIDRUN.write_bytes(b"".join(encode_event(ev) + b"\n" for ev in events if ev.ts <= MIDRUN_TS))
    print(f"wrote {FIXTURE} and {MIDRUN}")


if __name__ == "__main__":
    main()
