"""The least a client can do: the benchmark's floor for a given concurrency on this machine.

C raw keep-alive sockets, opened before the clock starts; each of C workers takes the
next batch, writes one HTTP/1.1 request and reads the answer. No retries, no pacing,
no bookkeeping, no HTTP library. The batches come either from memory or from the same
outbox our client reads, each read synchronously on the event loop just before it is
sent. What it takes beside the bound is what the machine and the server cost any
client; what ours takes beyond it is ours.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from client.outbox import CHUNK_QUERY, LAST_SEQ
from syncbed.contract import SYNC_PATH


def outbox_bodies(path: Path, size: int, batches: int) -> Iterator[bytes]:
    """Request bodies straight from an outbox database, one read per batch (the clock is running)."""
    db = sqlite3.connect(path)
    try:
        after = 0
        for _ in range(batches):
            _, hi, count, joined = db.execute(CHUNK_QUERY, (after, LAST_SEQ, size)).fetchone()
            if not count:
                return
            after = hi
            yield b'{"pageVisits":[' + joined + b"]}"
    finally:
        db.close()


class MinimalClient:
    """`await run(bodies)` sends every body once over `concurrency` pre-opened connections."""

    def __init__(self, url: str, token: str, concurrency: int) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        if host != "127.0.0.1":
            raise ValueError("the minimal client speaks plain HTTP to 127.0.0.1 only")
        self.host, self.port = host, int(port)
        self.token = token
        self.concurrency = concurrency
        self.errors: list[str] = []
        self._conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> MinimalClient:
        self._conns = [await asyncio.open_connection(self.host, self.port) for _ in range(self.concurrency)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, writer in self._conns:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for _, w in self._conns), return_exceptions=True)

    async def run(self, bodies: Iterator[bytes]) -> tuple[float, int]:
        """(seconds from the first read to the last answer, batches answered 200)."""
        ok = 0
        head = f"POST {SYNC_PATH} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {self.token}\r\n"
        prefix = (head + "Content-Type: application/json\r\nContent-Length: ").encode()

        async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal ok
            for body in bodies:  # one shared iterator: each body is taken once, in order
                writer.write(prefix + str(len(body)).encode() + b"\r\n\r\n" + body)
                answer = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in answer.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if answer.startswith(b"HTTP/1.1 200 "):
                    ok += 1
                else:
                    self.errors.append(answer.split(b"\r\n", 1)[0].decode("latin-1"))

        started = time.perf_counter()
        await asyncio.gather(*(worker(r, w) for r, w in self._conns))
        return time.perf_counter() - started, ok
