"""Throttle rules as TOML tables, for the configs the demos, benchmarks and tests start servers with."""

from __future__ import annotations

from syncbed.contract import SYNC_PATH


def throttle(name: str, limit: int, period: str, key: str = "ip", sync: bool = False) -> str:
    """One [[limits.throttle]] table of a TOML config; `sync`: only for POSTs to the sync endpoint."""
    table = f'[[limits.throttle]]\nname = "{name}"\nlimit = {limit}\nperiod = "{period}"\nkey = "{key}"\n'
    return table + (f'paths = ["{SYNC_PATH}"]\nmethods = ["POST"]\n' if sync else "")
