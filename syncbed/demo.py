"""`scripts/demo`: start a throwaway server, create a user, push a real batch and show the answer."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from syncbed import contract


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--records", type=int, default=1000, help="records in the batch (default 1000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="syncbed-demo-") as tmp:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "server", "--data-dir", tmp, "--port", str(port), "--log-level", "warning"]
        server = subprocess.Popen([*cmd, "--latency-ms", "300"])
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + contract.HEALTH_PATH, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            token = subprocess.run(
                [*cmd[:5], "token", "create", "demo"], capture_output=True, text=True, check=True
            ).stdout.strip()
            print(f"server on {url}, data in {Path(tmp)}; user 'demo' has a token")
            body = {
                "pageVisits": [
                    {"id": f"demo-{i}", "url": f"https://example.com/{i}", "visitedAt": 1_700_000_000_000 + i}
                    for i in range(args.records)
                ]
            }
            headers = {"Authorization": f"Bearer {token}"}
            started = time.perf_counter()
            r = httpx.post(url + contract.SYNC_PATH, json=body, headers=headers, timeout=30)
            print(f"POST {contract.SYNC_PATH} ({args.records} records) -> {r.status_code} {r.text} "
                  f"in {time.perf_counter() - started:.2f}s")  # fmt: skip
            again = httpx.post(url + contract.SYNC_PATH, json=body, headers=headers, timeout=30)
            print(f"same batch again -> {again.status_code} {again.text} (idempotent)")
            count = httpx.get(url + contract.COUNT_PATH, headers=headers, timeout=10).json()["count"]
            print(f"server holds {count} records for 'demo'")
            return 0 if r.status_code == 200 and count == args.records else 1
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
