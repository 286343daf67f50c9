"""Faults: validation, the draw, latency (unit level; the live server tests are further down)."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

from server.faults import Faults
from syncbed import contract
from syncbed.events import EV_STATS
from syncbed.faults import FaultError
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import Reader, auth, batch, config_changes, data
from tests.server.raw import connect, sync_head


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


async def test_hold_waits_what_is_left_of_latency_plus_jitter() -> None:
    faults = Faults(latency_ms=300, jitter_ms=100, rng=random.Random(1))
    shares = [faults.jitter_share() for _ in range(20)]
    assert max(shares) - min(shares) > 0.5 and all(0 <= s < 1 for s in shares)

    async def timed(since: float, share: float) -> float:
        began = time.perf_counter()
        assert await faults.hold(since, share)
        return time.perf_counter() - began

    waits = await asyncio.gather(*(timed(time.perf_counter(), s) for s in shares))
    assert all(0.3 + 0.1 * s - 0.005 <= w <= 0.3 + 0.1 * s + 0.15 for s, w in zip(shares, waits, strict=True))
    # Work that already took 0.25 s of a 0.3 s latency leaves 0.05 s to wait; work past it leaves none.
    assert 0.04 <= await timed(time.perf_counter() - 0.25, 0.0) <= 0.2
    assert await timed(time.perf_counter() - 0.5, 0.0) < 0.01
    began = time.perf_counter()
    assert await Faults().hold(time.perf_counter())
    assert time.perf_counter() - began < 0.01


async def test_a_lowered_latency_frees_holds_already_waiting() -> None:
    faults = Faults(latency_ms=60_000)
    holds = [asyncio.ensure_future(faults.hold(time.perf_counter())) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert not any(h.done() for h in holds)
    faults.update(latency_ms=30_000)  # still waiting: the new target is read, not the old one kept
    await asyncio.sleep(0.05)
    assert not any(h.done() for h in holds)
    began = time.perf_counter()
    faults.update(latency_ms=0)
    assert await asyncio.wait_for(asyncio.gather(*holds), 1.0) == [True] * 5
    assert time.perf_counter() - began < 0.1


async def test_a_hold_ends_when_its_client_hangs_up() -> None:
    faults = Faults(latency_ms=60_000)
    hung_up = asyncio.Event()
    watching = 0

    async def gone() -> None:
        nonlocal watching
        watching += 1
        await hung_up.wait()

    hold = asyncio.ensure_future(faults.hold(time.perf_counter(), 0.0, gone))
    await asyncio.sleep(0.05)
    assert not hold.done() and watching == 1
    hung_up.set()
    assert await asyncio.wait_for(hold, 1.0) is False
    # Without latency there is no wait, and no watcher is started.
    assert await Faults().hold(time.perf_counter(), 0.0, gone) is True and watching == 1


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


def test_a_reset_sends_no_byte_of_an_answer(server_factory: ServerFactory) -> None:
    """reset_rate = 1: the client reads nothing at all, not even a status line, and sees ECONNRESET."""
    srv = server_factory(args=["--no-limits", "--reset-rate", "1"])
    token = srv.token("alice")
    body = batch(20, "rawreset")
    head = sync_head(token, len(body))
    for _ in range(3):
        with connect(srv) as sock:
            sock.sendall(head + body)
            with pytest.raises(ConnectionResetError):
                got = sock.recv(65536)
                assert got == b"", got[:200]  # an EOF would still be no answer, but Linux sends the RST
                sock.recv(65536)
    assert srv.count(token) == 0
    log = srv.log()
    assert "Traceback" not in log and "ASGI callable" not in log
    assert log.count("injected fault: dropping the connection (reset)") == 3


async def test_live_fault_changes_apply_to_the_next_request_and_are_events(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits"])
    token = srv.token("alice")
    url = srv.url + contract.FAULTS_PATH
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, config_changes(client, srv) as reader:
        assert (await sync(client, srv, token, 5, "live0")).status_code == 200
        r = await client.put(url, headers=srv.admin_headers(), json={"error_rate": 1})
        assert r.status_code == 200 and r.json()["error_rate"] == 1.0
        assert (await sync(client, srv, token, 5, "live1")).status_code == 503
        r = await client.put(url, headers=srv.admin_headers(), json={"error_rate": 0, "latency_ms": 250})
        assert r.json() == {"latency_ms": 250, "jitter_ms": 0, "error_rate": 0.0, "reset_rate": 0.0}
        began = time.monotonic()
        assert (await sync(client, srv, token, 5, "live2")).status_code == 200
        assert time.monotonic() - began >= 0.25
        await reader.wait_for(lambda seen: len(seen) == 2)
        changes = [data(e) for e in reader.events]
    assert srv.count(token) == 10
    assert [(c["what"], c["error_rate"], c["changed"]) for c in changes] == [
        ("faults", 1.0, ["error_rate"]),
        ("faults", 0.0, ["error_rate", "latency_ms"]),
    ]
    assert changes[1]["latency_ms"] == 250
    assert "config changed: faults" in srv.log()


# --- holds and their clients, against a real server ------------------------------------------------


async def in_flight_until(srv: LiveServer, want: int, timeout: float) -> float:
    """Read the 1 Hz stats events until in_flight == want; return the seconds it took."""
    began = time.monotonic()
    url = srv.url + contract.EVENTS_PATH + "?types=" + EV_STATS
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, Reader(client, url, srv.admin_headers()) as reader:
        await reader.wait_for(lambda evs: any(e.data and data(e)["in_flight"] == want for e in evs), timeout)
        return time.monotonic() - began


async def test_a_client_that_hangs_up_ends_its_hold(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits", "--latency-ms", "30000"])
    token = srv.token("alice")
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=1.0)) as client:
        gave_up = await asyncio.gather(
            *(sync(client, srv, token, 5, f"hangup{i}") for i in range(5)), return_exceptions=True
        )
    assert all(isinstance(r, httpx.ReadTimeout) for r in gave_up), gave_up  # hung up after 1 s
    # in_flight is sampled once a second: back to 0 within that, not after the 30 s hold.
    assert await in_flight_until(srv, 0, 3.0) < 2.5
    assert "client_gone" in srv.log()


async def test_lowering_latency_releases_requests_already_held(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits", "--latency-ms", "30000"])
    token = srv.token("alice")
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        held = [asyncio.ensure_future(sync(client, srv, token, 5, f"held{i}")) for i in range(5)]
        await in_flight_until(srv, 5, 5.0)
        r = await client.put(srv.url + contract.FAULTS_PATH, headers=srv.admin_headers(), json={"latency_ms": 0})
        assert r.status_code == 200
        began = time.monotonic()
        answers = await asyncio.wait_for(asyncio.gather(*held), 2.0)
        assert time.monotonic() - began < 1.0
    assert [a.status_code for a in answers] == [200] * 5
    assert srv.count(token) == 25
