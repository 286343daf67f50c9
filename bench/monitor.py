"""How many events per second the monitor's model and its refreshing view keep up with.

`python -m bench.monitor [--quick]`. Part 1 feeds the pure model (JSON decode + ingest, as the stream
follower does). Part 2 runs the real app headless (Textual `run_test`, 120x40) and feeds synthetic
events at rising rates on the app's own event loop, while the view refreshes ten times a second; it
reports the rate reached and how far behind the newest event the drawn view was at each frame.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator

import msgspec

from monitor.app import MonitorApp
from monitor.model import Model
from monitor.stream import Received, decode

TARGET_RATE = 5_000
TARGET_LAG = 1.0
BATCHES_PER_RUN = 5_000
_encode = msgspec.json.Encoder().encode


def synthetic(count: int, start_run: int = 0) -> Iterator[tuple[str, bytes]]:
    """(type, data JSON) of a plausible stream: runs of 10 lanes, 10% 429s, a stats event per 1,000."""
    run_no, batch, emitted = start_run, 0, 0
    in_flight: list[int] = []
    while emitted < count:
        run = f"bench-{run_no}"
        if batch == 0:
            yield "run.started", _encode({"type": "run.started", "ts": 0.0, "run": run, "user": "u",
                                          "total_records": BATCHES_PER_RUN * 1000, "total_batches": BATCHES_PER_RUN,
                                          "batch_size": 1000, "mode": "aggressive", "concurrency": 10})  # fmt: skip
            emitted += 1
        batch += 1
        base = {"ts": 0.0, "run": run, "batch": batch, "attempt": 1, "user": "u"}
        if batch % 10 == 0:
            yield "request.throttled", _encode({"type": "request.throttled", **base, "ip": "127.0.0.1",
                                                "rule": "sync/user", "key": "u", "retry_after": 0.5,
                                                "dry_run": False})  # fmt: skip
            emitted += 1
            continue
        yield "batch.received", _encode({"type": "batch.received", **base, "records": 1000})
        in_flight.append(batch)
        emitted += 1
        if len(in_flight) >= 9:
            done = in_flight.pop(0)
            yield "batch.stored", _encode({"type": "batch.stored", **base, "batch": done, "records": 1000,
                                           "stored": 1000, "duplicates": 0, "ms": 300})  # fmt: skip
            emitted += 1
        if emitted % 1000 == 0:
            yield "stats", _encode({"type": "stats", "ts": 0.0, "records_per_s": 0, "requests_per_s": 0,
                                    "throttled_per_s": 0, "in_flight": 9, "limiter": {"sync/user": [
                                        {"key": "u", "count": 6}]}})  # fmt: skip
            emitted += 1
        if batch >= BATCHES_PER_RUN:
            while in_flight:
                done = in_flight.pop(0)
                yield "batch.stored", _encode({"type": "batch.stored", **base, "batch": done, "records": 1000,
                                               "stored": 1000, "duplicates": 0, "ms": 300})  # fmt: skip
                emitted += 1
            yield "run.finished", _encode({"type": "run.finished", "ts": 0.0, "run": run, "user": "u",
                                           "status": "complete", "ok_batches": batch, "failed_batches": 0,
                                           "seconds": 1.0})  # fmt: skip
            emitted += 1
            run_no, batch = run_no + 1, 0


def _stamp(event: Received, ts: float) -> Received:
    event.ts = ts
    return event


def model_rate(count: int) -> float:
    """Events per second through decode + ingest, no screen."""
    frames = list(synthetic(count))
    model = Model()
    started = time.perf_counter()
    for i, (etype, raw) in enumerate(frames):
        model.ingest(_stamp(decode(raw, etype), started + i * 1e-4), i + 1)
    return len(frames) / (time.perf_counter() - started)


class LagApp(MonitorApp):
    """The real app, noting after each frame how old the newest event on screen was."""

    def __init__(self) -> None:
        super().__init__()
        self.lags: list[float] = []
        self.frame_ms: list[float] = []

    def refresh_views(self) -> None:
        started = time.perf_counter()
        super().refresh_views()
        self.frame_ms.append((time.perf_counter() - started) * 1000)
        if self.model.last_ts is not None:
            self.lags.append(time.time() - self.model.last_ts)


async def app_run(rate: int, seconds: float) -> dict[str, float]:
    """Feed `rate` events/s for `seconds` into the headless app; the lag counts from each event's due time."""
    app = LagApp()
    frames = synthetic(int(rate * seconds) + 1)
    fed = 0
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        app.lags.clear()
        app.frame_ms.clear()
        first_frame = app.frames
        start = time.time()
        total = int(rate * seconds)
        while fed < total:
            now = time.time()
            due = min(total, int((now - start) * rate) + 1)
            while fed < due:
                etype, raw = next(frames)
                # Stamped with its due time, so a feeder that falls behind shows up as lag.
                app.model.ingest(_stamp(decode(raw, etype), start + fed / rate), fed + 1)
                fed += 1
            await asyncio.sleep(0.005)
        elapsed = time.time() - start
        await pilot.pause(0.3)
        drawn = app.frames - first_frame
    lags = sorted(app.lags) or [0.0]
    return {
        "rate": rate,
        "achieved": fed / elapsed,
        "lag_p50": statistics.median(lags),
        "lag_p95": lags[int(0.95 * (len(lags) - 1))],
        "lag_max": lags[-1],
        "fps": drawn / (elapsed + 0.3),
        "frame_ms": statistics.median(app.frame_ms or [0.0]),
    }


def main(quick: bool = False) -> str:
    count = 50_000 if quick else 200_000
    model_eps = model_rate(count)
    rates = [1_000, 5_000, 10_000] if quick else [1_000, 2_000, 5_000, 10_000, 20_000, 40_000]
    seconds = 3.0 if quick else 8.0
    rows = [asyncio.run(app_run(rate, seconds)) for rate in rates]
    sustained = [r for r in rows if r["achieved"] >= 0.95 * r["rate"] and r["lag_p95"] < TARGET_LAG]
    best = max((int(r["rate"]) for r in sustained), default=0)
    verdict = "met" if best >= TARGET_RATE else "NOT met"
    lines = [
        "## Monitor: events per second the model and the view sustain",
        "",
        f"Model alone (JSON decode + ingest of {count:,} synthetic events): **{model_eps:,.0f} events/s**.",
        "",
        f"The app headless (120x40, refresh every 100 ms), fed for {seconds:g} s per rate on its own loop; "
        "lag = age of the newest event on screen when a frame is drawn (from the event's due time).",
        "",
        "| offered events/s | reached events/s | view lag p50 | p95 | max | frames/s | refresh ms (median) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rate']:,.0f} | {r['achieved']:,.0f} | {r['lag_p50']:.2f} s | {r['lag_p95']:.2f} s "
            f"| {r['lag_max']:.2f} s | {r['fps']:.1f} | {r['frame_ms']:.1f} |"
        )
    lines += [
        "",
        f"Highest offered rate reached with the view under {TARGET_LAG:g} s behind (p95): **{best:,} events/s** "
        f"(target {TARGET_RATE:,}: {verdict}).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.monitor", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer events, fewer rates, 3 s each")
    print(main(parser.parse_args().quick))
