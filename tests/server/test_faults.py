"""Faults: validation, the draw, latency (unit level; the live server tests are further down)."""

from __future__ import annotations

import json
import random
import time

import httpx
import pytest

from server.faults import FaultError, Faults
from syncbed import contract
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import auth, batch


def test_defaults_are_harmless() -> None:
    assert Faults().snapshot() == {"latency_ms": 0, "jitter_ms": 0, "error_rate": 0.0, "reset_rate": 0.0}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms", -1),
        ("latency_ms", 1.5),
        ("latency_ms", "300"),
        ("latency_ms", True),
        ("jitter_ms", 10**9),
        ("error_rate", 1.01),
        ("error_rate", float("nan")),
        ("reset_rate", -0.1),
        ("reset_rate", None),
        ("bogus", 1),
    ],
)
def test_update_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    faults = Faults()
    with pytest.raises(FaultError) as info:
        faults.update(**{"error_rate": 0.5, field: value})
    assert info.value.field == field and field in str(info.value)
    assert faults.error_rate == 0.0  # all or nothing


def test_update_applies_a_subset() -> None:
    faults = Faults(latency_ms=10)
    assert faults.update(error_rate=1, jitter_ms=5.0) == {
        "latency_ms": 10,
        "jitter_ms": 5,
        "error_rate": 1.0,
        "reset_rate": 0.0,
    }


def test_draw_rates() -> None:
    faults = Faults(error_rate=0.25, reset_rate=0.25, rng=random.Random(7))
    draws = [faults.draw() for _ in range(4000)]
    assert 800 < draws.count("error") < 1200 and 800 < draws.count("reset") < 1200
    assert Faults(error_rate=1, reset_rate=1).draw() == "error"
    assert Faults(reset_rate=1).draw() == "reset"
    assert Faults().draw() == "ok"


async def test_hold_sleeps_what_is_left_of_latency_plus_jitter() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    faults = Faults(latency_ms=300, jitter_ms=100, rng=random.Random(1), sleep=fake_sleep)
    for _ in range(50):
        await faults.hold(time.perf_counter(), faults.delay_s())
    assert all(0.29 <= s <= 0.4 for s in slept) and len(slept) == 50
    assert max(slept) - min(slept) > 0.05

    # Work that already took 0.25 s of a 0.3 s latency leaves 0.05 s to wait; work past it leaves none.
    await faults.hold(time.perf_counter() - 0.25, 0.3)
    assert 0.04 <= slept[-1] <= 0.05
    await faults.hold(time.perf_counter() - 0.5, 0.3)
    no_delay = Faults(sleep=fake_sleep)
    await no_delay.hold(time.perf_counter(), no_delay.delay_s())
    assert len(slept) == 51


def test_from_settings() -> None:
    class Settings:
        latency_ms = 5
        jitter_ms = 1
        error_rate = 0.1
        reset_rate = 0.2

    assert Faults.from_settings(Settings()).snapshot()["reset_rate"] == 0.2


# --- against a real server ---------------------------------------------------------------------

TIMEOUT = httpx.Timeout(30.0)


async def sync(client: httpx.AsyncClient, srv: LiveServer, token: str, n: int, prefix: str) -> httpx.Response:
    return await client.post(srv.url + contract.SYNC_PATH, content=batch(n, prefix), headers=auth(token))


async def test_latency_ms_delays_every_batch(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits", "--latency-ms", "300"])
    token = srv.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for i in range(2):
            began = time.monotonic()
            r = await sync(client, srv, token, 10, f"lat{i}")
            assert r.status_code == 200
            assert time.monotonic() - began >= 0.3


async def test_error_rate_one_answers_503_and_stores_nothing(server_factory: ServerFactory) -> None:
    srv = server_factory(config="[faults]\nerror_rate = 1.0\n", args=["--no-limits"])
    token = srv.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for i in range(5):
            r = await sync(client, srv, token, 20, f"err{i}")
            assert r.status_code == 503
            assert r.json()["error"] == contract.E_INJECTED_FAULT and r.json()["message"]
    assert srv.count(token) == 0


async def test_reset_rate_one_drops_the_connection_and_stores_nothing(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits", "--reset-rate", "1"])
    token = srv.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for i in range(3):
            with pytest.raises(httpx.TransportError):
                await sync(client, srv, token, 20, f"reset{i}")
    assert srv.count(token) == 0
    log = srv.log()
    assert "Traceback" not in log and " 500" not in log
    assert log.count("injected fault: dropping the connection") == 3


async def test_live_fault_changes_apply_to_the_next_request_and_are_events(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits"])
    token = srv.token("alice")
    url = srv.url + contract.FAULTS_PATH
    async with (
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        client.stream(
            "GET", srv.url + contract.EVENTS_PATH + "?types=config.changed", headers=srv.admin_headers()
        ) as stream,
    ):
        assert (await sync(client, srv, token, 5, "live0")).status_code == 200
        r = await client.put(url, headers=srv.admin_headers(), json={"error_rate": 1})
        assert r.status_code == 200 and r.json()["error_rate"] == 1.0
        assert (await sync(client, srv, token, 5, "live1")).status_code == 503
        r = await client.put(url, headers=srv.admin_headers(), json={"error_rate": 0, "latency_ms": 250})
        assert r.json() == {"latency_ms": 250, "jitter_ms": 0, "error_rate": 0.0, "reset_rate": 0.0}
        began = time.monotonic()
        assert (await sync(client, srv, token, 5, "live2")).status_code == 200
        assert time.monotonic() - began >= 0.25
        changes = []
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                changes.append(json.loads(line[6:]))
            if len(changes) == 2:
                break
    assert srv.count(token) == 10
    assert [(c["what"], c["error_rate"], c["changed"]) for c in changes] == [
        ("faults", 1.0, ["error_rate"]),
        ("faults", 0.0, ["error_rate", "latency_ms"]),
    ]
    assert changes[1]["latency_ms"] == 250
    assert "config changed: faults" in srv.log()
