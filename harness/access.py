"""What a server's log says it served: its access-log lines for sync requests, with each traced attempt."""

from __future__ import annotations

import re
from dataclasses import dataclass

from syncbed.contract import SYNC_PATH

# `... syncbed.access: POST /api/v1/data/sync 503 user=u ip=... error=injected_fault trace=RUN/3/1 1.2ms`
_LINE = re.compile(
    r"syncbed\.access: POST " + re.escape(SYNC_PATH) + r" (?P<status>\d+|dropped) user=(?P<user>\S+) .*?"
    r"(?: trace=(?P<run>[^/\s]+)/(?P<batch>\d+)/(?P<attempt>\d+))? [0-9.]+ms$"
)


@dataclass(frozen=True, slots=True)
class Served:
    """One sync request a worker answered (status 0: dropped) and, when traced, the attempt it was."""

    status: int
    user: str
    run: str | None
    batch: int | None
    attempt: int | None


def served(log: str) -> list[Served]:
    """The sync requests in a server's log, in order."""
    out: list[Served] = []
    for line in log.splitlines():
        if (m := _LINE.search(line)) is None:
            continue
        status = 0 if m["status"] == "dropped" else int(m["status"])
        batch, attempt = m["batch"], m["attempt"]
        out.append(
            Served(
                status,
                m["user"],
                m["run"],
                None if batch is None else int(batch),
                None if attempt is None else int(attempt),
            )
        )
    return out
