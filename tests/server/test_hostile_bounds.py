"""Hostile limit edits: a limit or period out of range is refused at every entry, and the server keeps serving."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.config import ThrottleRule
from server.limiter import make_algorithm
from server.refusals import ratelimit_headers
from server.rule import Rule
from syncbed import contract
from syncbed.bounds import MAX_LIMIT, MAX_PERIOD_S, MIN_LIMIT, MIN_PERIOD_S
from tests.cli_run import server_refuses
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import TIMEOUT, auth, batch, throttle

ROOMY = throttle("sync/user", 1000, "60s", key="user", sync=True) + throttle("sync/ip", 1000, "60s", sync=True)

BAD_EDITS: list[tuple[dict[str, Any], str]] = [
    ({"period": 1e-300}, "period"),
    ({"period": 1e308}, "period"),
    ({"period": -1}, "period"),
    ({"period": 0}, "period"),
    ({"period": 0.0005}, "period"),
    ({"period": "0.1ms"}, "period"),
    ({"period": "8d"}, "period"),
    ({"period": "NaN"}, "period"),
    ({"period": "inf"}, "period"),
    ({"period": "Infinity"}, "period"),
    ({"period": "1e-300"}, "period"),
    ({"period": 10**400}, "period"),
    ({"period": True}, "period"),
    ({"limit": 0}, "limit"),
    ({"limit": -1}, "limit"),
    ({"limit": MAX_LIMIT + 1}, "limit"),
    ({"limit": 10**30}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": 2.0}, "limit"),
    ({"limit": "5"}, "limit"),
    ({"limit": 5, "period": 1e-300}, "period"),
]


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(config=ROOMY)


def _rules(view: dict[str, Any]) -> list[tuple[object, ...]]:
    return [(r["name"], r["limit"], r["period"], r["enabled"]) for r in view["rules"]]


async def test_out_of_range_edits_are_refused_and_syncs_still_pass(server: LiveServer) -> None:
    token = server.token("alice")
    admin = server.admin_headers()
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        before = (await client.get(server.url + contract.LIMITER_PATH, headers=admin)).json()
        for i, (change, field) in enumerate(BAD_EDITS):
            for rule in ("sync/user", "req/ip"):
                r = await client.put(server.url + contract.LIMITS_PATH, headers=admin, json={"rule": rule, **change})
                assert r.status_code == 422, (change, r.text)
                body = r.json()
                assert body["error"] == contract.E_INVALID_REQUEST and body["field"] == field, body
                assert body["message"].startswith(f"{field}: ") and "from" in body["message"], body
            sync = await client.post(server.url + contract.SYNC_PATH, content=batch(2, f"b{i}"), headers=auth(token))
            assert sync.status_code == 200, (change, sync.text)
            view = await client.get(server.url + contract.LIMITER_PATH, headers=admin)
            assert view.status_code == 200, (change, view.text)
            assert _rules(view.json()) == _rules(before)
    assert "Traceback" not in server.log()


async def test_the_extremes_of_the_range_are_accepted_and_serve(server: LiveServer) -> None:
    token = server.token("alice")
    admin = server.admin_headers()
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for change in ({"period": "1ms", "limit": MAX_LIMIT}, {"period": "7d", "limit": MIN_LIMIT}):
            r = await client.put(server.url + contract.LIMITS_PATH, headers=admin, json={"rule": "sync/ip", **change})
            assert r.status_code == 200, r.text
            sync = await client.post(server.url + contract.SYNC_PATH, content=batch(1, "x"), headers=auth(token))
            assert sync.status_code in (200, 429), sync.text
            for item in sync.headers["ratelimit"].split(","):
                t = int(item.split(";t=")[1])
                assert 0 <= t <= 2 * MAX_PERIOD_S
            assert (await client.get(server.url + contract.LIMITER_PATH, headers=admin)).status_code == 200


@pytest.mark.parametrize(
    ("limit", "period", "field"),
    [
        ("5", "1e-300", "period"),
        ("5", "1e308", "period"),
        ("5", "nan", "period"),
        ("5", "inf", "period"),
        ("5", "-1", "period"),
        ("5", '"0.5ms"', "period"),
        ("5", '"8d"', "period"),
        ("0", '"1s"', "limit"),
        ("10000000000", '"1s"', "limit"),
        ("true", '"1s"', "limit"),
        ("-3", '"1s"', "limit"),
    ],
)
def test_out_of_range_rules_in_toml_refuse_to_start(tmp_path: Path, limit: str, period: str, field: str) -> None:
    config = tmp_path / "limits.toml"
    config.write_text(f'[[limits.throttle]]\nname = "sync/user"\nlimit = {limit}\nperiod = {period}\n')
    line = server_refuses(tmp_path / "data", "--config", str(config))
    assert line.startswith(f"error: configuration: limits.throttle[0].{field}: "), line


@pytest.mark.parametrize("name", ["fixed_window", "sliding_window", "gcra"])
@pytest.mark.parametrize(
    ("limit", "period"),
    [(MIN_LIMIT, MIN_PERIOD_S), (MAX_LIMIT, MIN_PERIOD_S), (MIN_LIMIT, MAX_PERIOD_S), (MAX_LIMIT, MAX_PERIOD_S)],
)
def test_the_arithmetic_stays_small_at_the_bounds(name: str, limit: int, period: float) -> None:
    """At every corner of the range each algorithm decides, lists and fills the RateLimit field with small numbers."""
    rule = Rule.from_config(ThrottleRule("r", limit, period, algorithm=name), "throttle")  # type: ignore[arg-type]
    alg = make_algorithm(name, limit, period)
    for now in (0.0, 1.7e9, 4.1e9):  # the epoch, today, 2100
        for i in range(3):
            d = alg.hit("k", now + i * 1e-4)
            assert all(math.isfinite(x) for x in (d.reset, d.retry_after))
            # A refused sliding window may wait into the next window: up to two periods.
            assert -1e-6 <= d.reset <= 2 * MAX_PERIOD_S and 0 <= d.retry_after <= 2 * MAX_PERIOD_S
            headers = dict(ratelimit_headers([(rule, d)]))
            assert len(headers[b"ratelimit"]) < 60 and len(headers[b"ratelimit-policy"]) < 60
        assert all(-1e-6 <= u.reset <= 2 * MAX_PERIOD_S for u in alg.top(5, now))
        alg.clear()
