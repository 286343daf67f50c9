"""Records tests/fixtures/events_seed_aggressive.jsonl and events_seed_faults.jsonl from a real server.

Each is the event stream (stats included) of one real client run under the seed limits (sync/user
5/1s, 0.3 s per batch): 30,000 records in aggressive mode, and the same with 10% injected 503s. The
ETA tests replay them, so the monitor's ETA is checked against what a real run did.
events_demo_acts.jsonl is the demo's six acts (`python -m monitor --demo`) as the monitor saw them.
Regenerate with `python -m tests.monitor.record_runs [runs|demo]` (about 30 s and 40 s).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.server import LiveServer
from monitor.stream import Received, StreamFollower, Undecodable
from syncbed.events import RunFinished, encode_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AGGRESSIVE = FIXTURES / "events_seed_aggressive.jsonl"
FAULTS = FIXTURES / "events_seed_faults.jsonl"
DEMO_ACTS = FIXTURES / "events_demo_acts.jsonl"
RECORDS = 30_000


async def record(srv: LiveServer, run: str, workdir: Path) -> list[Received]:
    events: list[Received] = []
    follower = StreamFollower(srv.url, srv.admin_token, lambda ev, _id: events.append(ev), lambda *_: None)
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(1.5)  # connected, and a stats event with the rules already in
    db = str(workdir / f"{run}.sqlite3")
    token = srv.token(run)
    env = {**os.environ, "SYNCBED_TOKEN": token}
    client = [sys.executable, "-m", "client", "--db", db]
    gen = await asyncio.create_subprocess_exec(*client, "generate", str(RECORDS), env=env, stdout=subprocess.DEVNULL)
    await gen.wait()
    proc = await asyncio.create_subprocess_exec(
        *client, "sync", "--server", srv.url, "--mode", "aggressive", "--json", env=env, stdout=subprocess.DEVNULL
    )
    await proc.wait()
    for _ in range(100):  # the run.finished and one more stats
        if any(isinstance(ev, RunFinished) for ev in events):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.2)
    task.cancel()
    return events


def _write(out: Path, events: list[Received]) -> None:
    out.write_bytes(b"".join(encode_event(ev) + b"\n" for ev in events if not isinstance(ev, Undecodable)))
    print(f"wrote {out}: {len(events)} events")


async def record_demo() -> None:
    from harness.demo_clients import Demo

    events: list[Received] = []
    with Demo(pause=0.5) as demo:
        follower = StreamFollower(demo.url, demo.admin_token, lambda ev, _id: events.append(ev), lambda *_: None)
        task = asyncio.create_task(follower.run())
        await asyncio.sleep(1.5)
        demo.start_clients()
        while not demo.wait_clients(0):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.2)
        task.cancel()
    _write(DEMO_ACTS, events)


async def record_runs() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, out, extra in (("agg", AGGRESSIVE, []), ("faults", FAULTS, ["--error-rate", "0.1"])):
            srv = LiveServer.at(work / name / "data", args=["--latency-ms", "300", *extra])
            srv.data_dir.mkdir(parents=True)
            srv.start()
            try:
                events = await record(srv, f"seed-{name}", work)
            finally:
                srv.stop()
            _write(out, events)


if __name__ == "__main__":
    which = sys.argv[1:] or ["runs", "demo"]
    for name in which:
        asyncio.run(record_runs() if name == "runs" else record_demo())
