"""Hostile connections against a real `python -m server`: huge headers, slowloris, stalled bodies."""

from __future__ import annotations

import json
import threading
import time

import httpx
import psutil
import pytest

from server.protocol import HttpLimits
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import batch
from tests.server.raw import connect, read_all, send_quietly, sync_head

CAP = HttpLimits().max_header_bytes
TIMEOUTS = {"SYNCBED_SERVER_HEADER_TIMEOUT_S": "1.5", "SYNCBED_SERVER_BODY_TIMEOUT_S": "1.5"}


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


def json_body(answer: bytes) -> dict[str, object]:
    body: dict[str, object] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return body


@pytest.fixture(scope="module")
def srv(shared_server_factory: ServerFactory) -> LiveServer:
    """One server for the module (each test its own user): no throttles; timeouts short enough to wait out."""
    return shared_server_factory(args=["--no-limits"], env=TIMEOUTS)


def rss(srv: LiveServer) -> int:
    return int(psutil.Process(srv.pid).memory_info().rss)


def test_a_header_block_over_the_cap_gets_431_in_the_error_shape(srv: LiveServer) -> None:
    for name, headers in (
        ("one long header", f"X-Big: {'a' * (CAP + 1024)}\r\n"),
        ("many short headers", "".join(f"X-H{i}: v\r\n" for i in range(HttpLimits().max_header_fields + 1))),
    ):
        sock = connect(srv)
        send_quietly(sock, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        answer = read_all(sock)
        sock.close()
        assert status_of(answer) == 431, (name, answer[:200])
        body = json_body(answer)
        assert body["error"] == "headers_too_large" and str(CAP) in str(body["message"]), name
    # A header block under the cap is served as before.
    r = httpx.get(srv.url + "/healthz", headers={"X-Fine": "a" * (CAP // 2)}, timeout=10)
    assert r.status_code == 200


def test_four_one_mib_headers_are_refused_quickly_and_memory_stays_flat(srv: LiveServer) -> None:
    for _ in range(3):  # warm up: the first requests allocate what every later one reuses
        httpx.get(srv.url + "/healthz", timeout=10)
    before = rss(srv)
    answers: list[bytes] = []
    took: list[float] = []

    def attack() -> None:
        began = time.monotonic()
        sock = connect(srv)
        send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        answers.append(read_all(sock))
        took.append(time.monotonic() - began)
        sock.close()

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    after = rss(srv)
    assert len(answers) == 4
    # Refused (431), or cut off while still sending: never served.
    assert all(status_of(a) in (431, None) for a in answers), [a[:40] for a in answers]
    assert max(took) < 5.0, took
    assert after - before < 4 << 20, f"RSS grew by {(after - before) / 2**20:.1f} MiB"
    assert "Traceback" not in srv.log()


def test_slowloris_headers_are_answered_408_and_closed(srv: LiveServer) -> None:
    sock = connect(srv)
    began = time.monotonic()
    answer = b""
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.25)
        # One header byte every quarter second, for at most 8 s: the server must give up at 1.5 s.
        for _ in range(32):
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                # A byte sent after the server closed draws a reset, which can discard its 408 unread.
                break
            answer += chunk
            if not chunk:
                break
        else:
            pytest.fail("a slowloris connection was never closed")
    took = time.monotonic() - began
    assert 1.4 < took < 4.0, took
    if answer:
        assert status_of(answer) == 408, answer[:200]
        assert json_body(answer)["error"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed(srv: LiveServer) -> None:
    sock = connect(srv)
    began = time.monotonic()
    assert read_all(sock) == b""  # closed without an answer: there was no request
    assert 1.4 < time.monotonic() - began < 4.0
    sock.close()


def test_a_stalled_body_is_closed_and_stores_nothing(srv: LiveServer) -> None:
    token = srv.token("staller")
    body = batch(10, "stall")
    head = sync_head(token, len(body))
    sock = connect(srv)
    began = time.monotonic()
    sock.sendall(head + body[:40])
    answer = read_all(sock)
    took = time.monotonic() - began
    sock.close()
    assert status_of(answer) is None, answer[:200]  # closed mid-request: no answer is written into it
    assert 1.4 < took < 4.0, took
    assert srv.count(token) == 0
    assert "Traceback" not in srv.log()


def test_a_slow_but_steady_body_and_a_slow_answer_are_not_cut(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits", "--latency-ms", "2500"], env=TIMEOUTS)
    token = srv.token("alice")
    body = batch(5, "steady")
    head = sync_head(token, len(body))
    sock = connect(srv)
    sock.sendall(head)
    step = len(body) // 4 + 1
    for i in range(0, len(body), step):  # 4 pieces, 1 s apart: 3 s in all, never 1.5 s silent
        time.sleep(1.0)
        sock.sendall(body[i : i + step])
    sock.settimeout(10)
    answer = sock.recv(65536)
    sock.close()
    assert status_of(answer) == 200, answer[:300]  # the 2.5 s hold outlasted both timeouts, as it may
    assert srv.count(token) == 5


def test_headers_and_a_large_body_in_one_write_are_served(srv: LiveServer) -> None:
    """Only header bytes count against the cap, also when a whole request arrives in one read."""
    token = srv.token("onewrite")
    body = batch(1000, "onewrite")  # about 125 KB: four times the header cap
    head = sync_head(token, len(body))
    for _ in range(5):
        sock = connect(srv)
        sock.sendall(head + body)
        answer = sock.recv(65536)
        sock.close()
        assert status_of(answer) == 200, answer[:300]
    assert srv.count(token) == 1000


@pytest.mark.slow
def test_workers_use_the_same_protocol(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits", "--workers", "2"])
    sock = connect(srv)
    send_quietly(sock, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * (CAP + 1024)}\r\n\r\n".encode())
    answer = read_all(sock)
    sock.close()
    assert status_of(answer) == 431, answer[:200]
