"""Hostile requests about trust, against a real server: who the caller is, what is counted, what is stored."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence

import httpx
import pytest

from syncbed import contract
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import auth, batch, throttle
from tests.server.raw import connect

SYNC = contract.SYNC_PATH
TIMEOUT = httpx.Timeout(30.0)
Headers = Sequence[tuple[str, str]]


async def at_second_start() -> None:
    """Wait until early in a wall-clock second, so a burst falls in one fixed window of a 1 s rule."""
    for _ in range(40):
        if time.time() % 1.0 < 0.2:
            return
        await asyncio.sleep(0.05)


async def burst(srv: LiveServer, requests: list[Headers], prefix: str) -> list[httpx.Response]:
    """One sync per header set, all at once, each with its own records."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        await at_second_start()
        return await asyncio.gather(
            *(
                client.post(srv.url + SYNC, content=batch(1, f"{prefix}{i}"), headers=list(h))
                for i, h in enumerate(requests)
            )
        )


def limiter_keys(srv: LiveServer) -> set[str]:
    view = httpx.get(srv.url + contract.LIMITER_PATH + "?top=100", headers=srv.admin_headers(), timeout=10).json()
    return {hot["key"] for rule in view["rules"] for hot in rule["hot"]}


def no_traceback(srv: LiveServer) -> None:
    log = srv.log()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


# --- who is calling: the peer address, forwarding headers only from trusted proxies --------------


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(server_factory: ServerFactory) -> None:
    srv = server_factory()  # trusted_proxies = [] (the default)
    tokens = [srv.token(f"xff{i}") for i in range(11)]
    requests = [[*auth(t).items(), ("X-Forwarded-For", f"203.0.113.{i}")] for i, t in enumerate(tokens)]
    answers = await burst(srv, requests, "xff")
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 10 + [429], codes
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["rule"] == "sync/ip"
    ips = {k.split("+")[0] for k in limiter_keys(srv) if k.startswith("ip:")}
    assert ips == {"ip:127.0.0.1"}


async def test_forwarded_for_from_a_trusted_proxy_is_believed(server_factory: ServerFactory) -> None:
    srv = server_factory('[limits]\ntrusted_proxies = ["127.0.0.1/32"]\n')
    tokens = [srv.token(f"px{i}") for i in range(11)]
    requests = [[*auth(t).items(), ("X-Forwarded-For", f"203.0.113.{i}")] for i, t in enumerate(tokens)]
    answers = await burst(srv, requests, "px")
    assert [r.status_code for r in answers] == [200] * 11
    ips = {k for k in limiter_keys(srv) if k.startswith("ip:")}
    assert {f"ip:203.0.113.{i}" for i in range(11)} <= ips


# --- one Authorization header --------------------------------------------------------------------


def twice(first: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {first}"), ("Authorization", "x"), ("Content-Type", "application/json")]


async def test_a_repeated_authorization_is_a_400_on_every_endpoint(server_factory: ServerFactory) -> None:
    srv = server_factory()
    user, admin = srv.token("twice"), srv.admin_token
    cases = [
        ("POST", SYNC, user, batch(1, "tw")),
        ("GET", contract.COUNT_PATH, user, None),
        ("GET", contract.RUNS_PATH, user, None),
        ("GET", contract.EVENTS_PATH, admin, None),
        ("GET", contract.LIMITER_PATH, admin, None),
        ("PUT", contract.LIMITS_PATH, admin, b'{"rule": "sync/user", "limit": 50}'),
    ]
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for method, path, token, body in cases:
            async with client.stream(method, srv.url + path, headers=twice(token), content=body) as r:
                await r.aread()
            assert r.status_code == 400, (method, path, r.status_code)
            assert r.json()["error"] == contract.E_INVALID_REQUEST
            assert "one Authorization header" in r.json()["message"]
        view = (await client.get(srv.url + contract.LIMITER_PATH, headers=srv.admin_headers())).json()
    assert next(r for r in view["rules"] if r["name"] == "sync/user")["limit"] == 5  # the PUT changed nothing
    assert srv.count(user) == 0
    no_traceback(srv)


async def sync_from(srv: LiveServer, address: str, headers: Headers, prefix: str) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
        return await client.post(srv.url + SYNC, content=batch(1, prefix), headers=list(headers))


async def test_a_second_authorization_does_not_switch_off_sync_user(server_factory: ServerFactory) -> None:
    srv = server_factory()
    token = srv.token("dup")
    await at_second_start()
    answers = await asyncio.gather(*(sync_from(srv, f"127.0.0.{i + 2}", twice(token), f"dup{i}") for i in range(20)))
    codes = [r.status_code for r in answers]
    assert sum(c == 200 for c in codes) <= 5, codes
    assert set(codes) <= {200, 400, 429}
    assert srv.count(token) == sum(c == 200 for c in codes)


# --- operator traffic: health checks and the admin are never throttled ----------------------------


def req_ip(limit: int) -> str:
    return throttle("req/ip", limit, "5m")


def hot(srv: LiveServer, rule: str) -> list[dict[str, object]]:
    view = httpx.get(srv.url + contract.LIMITER_PATH, headers=srv.admin_headers(), timeout=10).json()
    found: list[dict[str, object]] = next(r for r in view["rules"] if r["name"] == rule)["hot"]
    return found


def test_health_checks_are_never_counted(server_factory: ServerFactory) -> None:
    srv = server_factory()  # req/ip: 300 per 5 min
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as client:
        codes = [client.get(contract.HEALTH_PATH).status_code for _ in range(400)]
        health = client.get(contract.HEALTH_PATH)
    assert codes == [200] * 400
    assert "ratelimit" not in health.headers
    assert hot(srv, "req/ip") == []  # neither the health checks nor the admin's look were counted


async def test_a_user_exhausting_req_ip_does_not_lock_out_the_admin(server_factory: ServerFactory) -> None:
    srv = server_factory(req_ip(5))
    token = srv.token("greedy")
    async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as client:
        codes = [(await client.get(contract.COUNT_PATH, headers=auth(token))).status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        async with client.stream("GET", contract.EVENTS_PATH, headers=srv.admin_headers()) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
        put = await client.put(
            contract.LIMITS_PATH, headers=srv.admin_headers(), json={"rule": "sync/user", "limit": 6}
        )
        assert put.status_code == 200, put.text
        guess = await client.get(contract.LIMITER_PATH, headers={"Authorization": "Bearer not-the-admin"})
        assert guess.status_code == 429  # a wrong admin token is an ordinary request: counted and refused
        assert (await client.get(contract.COUNT_PATH, headers=auth(token))).status_code == 429
    no_traceback(srv)


def test_req_ip_exhausted_leaves_health_checks_and_the_admin_edit_that_undoes_it(server_factory: ServerFactory) -> None:
    # The tightest req/ip the bounds admit (a limit of 0 is refused: docs/security.md), used up at once.
    srv = server_factory(req_ip(1))  # the fixture's start-up wait is itself a /healthz
    token = srv.token("locked")
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as client:
        assert client.get(contract.COUNT_PATH, headers=auth(token)).status_code == 200
        assert client.get(contract.COUNT_PATH, headers=auth(token)).status_code == 429
        assert client.get(contract.HEALTH_PATH).status_code == 200
        put = client.put(contract.LIMITS_PATH, headers=srv.admin_headers(), json={"rule": "req/ip", "limit": 300})
        assert put.status_code == 200, put.text
        assert client.get(contract.COUNT_PATH, headers=auth(token)).status_code == 200


def test_health_checks_do_not_wait_on_a_hung_limiter_store(server_factory: ServerFactory) -> None:
    with socket.socket() as hung:  # accepts connections (the kernel's backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        store = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        srv = server_factory(args=["--store", store], env={})
        with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as client:
            took = []
            for _ in range(3):
                time.sleep(0.7)  # past the store's 0.5 s "down, do not ask" spell: a request would ask again
                started = time.perf_counter()
                assert client.get(contract.HEALTH_PATH).status_code == 200
                took.append(time.perf_counter() - started)
        srv.stop()
    assert max(took) < 0.5, took


# --- integers from the wire: ASCII digits only -------------------------------------------------------

# (name, method, path, token: "user" | "admin" | None, extra raw headers, status, code)
DIGITS: list[tuple[str, str, str, str | None, list[tuple[bytes, bytes]], int, str]] = [
    ("superscript batch", "POST", SYNC, "user", [(b"x-sync-batch", b"\xb2")], 400, "invalid_request"),
    ("superscript batch, no token", "POST", SYNC, None, [(b"x-sync-batch", b"\xb2")], 401, "unauthorized"),
    ("superscript attempt", "POST", SYNC, "user", [(b"x-sync-attempt", b"\xb3")], 400, "invalid_request"),
    ("digits then superscript", "POST", SYNC, "user", [(b"x-sync-batch", b"1\xb9")], 400, "invalid_request"),
    ("two batch headers", "POST", SYNC, "user", [(b"x-sync-batch", b"1"), (b"x-sync-batch", b"2")], 400,
     "invalid_request"),
    ("runs ?limit=²", "GET", contract.RUNS_PATH + "?limit=%C2%B2", "user", [], 422, "invalid_request"),
    ("runs ?limit= Arabic-Indic one", "GET", contract.RUNS_PATH + "?limit=%D9%A1", "user", [], 422, "invalid_request"),
    ("limiter ?top=²", "GET", contract.LIMITER_PATH + "?top=%C2%B2", "admin", [], 400, "invalid_request"),
    ("Last-Event-ID ³", "GET", contract.EVENTS_PATH, "admin", [(b"last-event-id", b"\xb3")], 422, "invalid_request"),
    ("?last_event_id=³", "GET", contract.EVENTS_PATH + "?last_event_id=%C2%B3", "admin", [], 422, "invalid_request"),
]  # fmt: skip


@pytest.fixture(scope="module")
def digits_server(shared_unlimited_server: LiveServer) -> LiveServer:
    return shared_unlimited_server


@pytest.mark.parametrize(
    ("name", "method", "path", "who", "extra", "status", "code"), DIGITS, ids=[c[0] for c in DIGITS]
)
def test_non_ascii_digits_get_a_4xx_not_a_500(
    digits_server: LiveServer, name: str, method: str, path: str, who: str | None,
    extra: list[tuple[bytes, bytes]], status: int, code: str,
) -> None:  # fmt: skip
    srv = digits_server
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json"), *extra]
    if who is not None:
        token = srv.admin_token if who == "admin" else srv.token("digits")
        headers.append((b"authorization", f"Bearer {token}".encode()))
    body = batch(1, "dg") if method == "POST" else None
    r = httpx.request(method, srv.url + path, headers=headers, content=body, timeout=TIMEOUT)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert r.json()["message"]
    no_traceback(srv)


def test_a_non_ascii_content_length_is_refused_before_the_app(digits_server: LiveServer) -> None:
    token = digits_server.token("length")
    raw = (
        f"POST {SYNC} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
    ).encode() + b"Content-Length: \xb2\r\n\r\n{}"
    with connect(digits_server) as s:
        s.sendall(raw)
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert digits_server.count(token) == 0
    no_traceback(digits_server)


async def test_a_throttled_sync_with_a_superscript_batch_is_a_429(server_factory: ServerFactory) -> None:
    srv = server_factory(throttle("sync/ip", 1, "60s", sync=True))
    token = srv.token("slow")
    headers = [*auth(token).items(), ("X-Sync-Batch", "²"), ("X-Sync-Attempt", "³")]
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        first = await client.post(srv.url + SYNC, content=batch(1, "ok"), headers=auth(token))
        assert first.status_code == 200, first.text  # uses sync/ip's one request of the minute
        r = await client.post(
            srv.url + SYNC, content=batch(1, "th"), headers=[(k, v.encode("latin-1")) for k, v in headers]
        )
    assert r.status_code == 429 and r.json()["rule"] == "sync/ip", r.text
    no_traceback(srv)


# --- run history: a run belongs to its user; nothing unauthenticated is stored ------------------------

ONE_PER_MINUTE = throttle("sync/user", 1, "60s", key="user", sync=True)


def run_headers(token: str | None, run: str, b: int = 0) -> dict[str, str]:
    headers = {"Content-Type": "application/json", contract.HEADER_RUN: run, contract.HEADER_BATCH: str(b)}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def runs_of(srv: LiveServer) -> list[dict[str, object]]:
    r = httpx.get(srv.url + contract.RUNS_PATH + "?limit=500", headers=srv.admin_headers(), timeout=10)
    runs: list[dict[str, object]] = r.json()["runs"]
    return runs


def run_detail(srv: LiveServer, run: str) -> httpx.Response:
    return httpx.get(f"{srv.url}{contract.RUNS_PATH}/{run}", headers=srv.admin_headers(), timeout=10)


def test_another_users_sync_into_a_run_is_refused_and_not_recorded(server_factory: ServerFactory) -> None:
    srv = server_factory(ONE_PER_MINUTE)
    alice, bob = srv.token("alice"), srv.token("bob")
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as client:
        assert client.post(SYNC, content=batch(2, "al"), headers=run_headers(alice, "alice-run")).status_code == 200
        r = client.post(SYNC, content=batch(9, "bo"), headers=run_headers(bob, "alice-run", 1))
        assert r.status_code == 403 and r.json()["error"] == contract.E_FORBIDDEN
        assert "belongs to another user" in r.json()["message"]
        throttled = client.post(SYNC, content=batch(9, "bo2"), headers=run_headers(bob, "alice-run", 2))
        assert throttled.status_code == 429  # published live, but not counted in alice's run
        r = client.post(contract.RUNS_PATH, headers=auth(bob), json={"total_records": 1, "total_batches": 1,
                                                                      "batch_size": 1, "run": "alice-run"})  # fmt: skip
        assert r.status_code == 403 and r.json()["field"] == "run"
    detail = run_detail(srv, "alice-run").json()
    assert detail["user"] == "alice"
    assert detail["totals"]["records_stored"] == 2
    assert (detail["totals"]["throttled"], detail["totals"]["rejected"], detail["totals"]["attempts"]) == (0, 0, 1)
    assert srv.count(bob) == 0
    no_traceback(srv)


def test_a_run_id_claimed_first_gets_the_late_announcer_a_clear_403(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits"])
    alice, bob = srv.token("alice"), srv.token("bob")
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as client:
        assert client.post(SYNC, content=batch(1, "sq"), headers=run_headers(bob, "shared-id")).status_code == 200
        body = {"total_records": 10, "total_batches": 1, "batch_size": 10, "run": "shared-id"}
        r = client.post(contract.RUNS_PATH, headers=auth(alice), json=body)
        assert r.status_code == 403, r.text
        assert "belongs to another user" in r.json()["message"] and "run id of your own" in r.json()["message"]
        assert client.post(contract.RUNS_PATH, headers=auth(bob), json=body).status_code == 201  # the owner may
        mine = client.get(f"{contract.RUNS_PATH}/shared-id", headers=auth(alice))
        assert mine.status_code == 403


SYNC_IP_3 = throttle("sync/ip", 3, "1h", sync=True)


def database_bytes(srv: LiveServer) -> int:
    return sum(p.stat().st_size for p in srv.data_dir.glob("server.sqlite3*"))


async def test_refused_requests_without_a_user_store_nothing(server_factory: ServerFactory) -> None:
    srv = server_factory(SYNC_IP_3 + req_ip(100_000))
    before = database_bytes(srv)
    async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as client:
        for start in range(0, 2000, 100):
            answers = await asyncio.gather(
                *(
                    client.post(SYNC, content=b"{}", headers=run_headers(None if i % 2 else "sb_x_y", "orphan", i))
                    for i in range(start, start + 100)
                )
            )
            assert {r.status_code for r in answers} <= {401, 429}
        # wait for the history writer's 0.2 s batches
        await asyncio.sleep(1.0)
    assert run_detail(srv, "orphan").status_code == 404
    assert all(r["run"] != "orphan" for r in runs_of(srv))
    grown = database_bytes(srv) - before
    assert grown < 64 * 1024, grown


# X-Sync-Run values that must never become a run
BAD_RUN_IDS = ["<script>", "../../x", "a b", "x" * 65, "caf\xe9", "a;b", ""]


@pytest.mark.parametrize("run", BAD_RUN_IDS, ids=[repr(r[:12]) for r in BAD_RUN_IDS])
def test_a_malformed_run_header_is_a_400_and_makes_no_run(digits_server: LiveServer, run: str) -> None:
    token = digits_server.token("runner")
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json"),
               (b"x-sync-run", run.encode("latin-1"))]  # fmt: skip
    r = httpx.post(digits_server.url + SYNC, content=batch(1, "rn"), headers=headers, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"] == contract.E_INVALID_REQUEST, r.text
    assert "X-Sync-Run" in r.json()["message"]
    assert digits_server.count(token) == 0
    assert all(listed["run"] != run for listed in runs_of(digits_server))


def test_one_run_id_rule_for_bodies_paths_and_filters(digits_server: LiveServer) -> None:
    srv, token = digits_server, digits_server.token("rules")
    with httpx.Client(base_url=srv.url, timeout=TIMEOUT) as client:
        body = {"total_records": 1, "total_batches": 1, "batch_size": 1, "run": "ends-in-newline\n"}
        r = client.post(contract.RUNS_PATH, headers=auth(token), json=body)
        assert r.status_code == 422 and r.json()["field"] == "run", r.text
        for path in ("/ends-in-newline%0A", "/ends-in-newline%0A/events"):
            r = client.get(contract.RUNS_PATH + path, headers=srv.admin_headers())
            assert r.status_code == 422 and r.json()["field"] == "run", (path, r.text)
        r = client.get(contract.EVENTS_PATH + "?run=ends-in-newline%0A", headers=srv.admin_headers())
        assert r.status_code == 422 and r.json()["field"] == "run"
    no_traceback(srv)
