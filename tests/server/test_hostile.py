"""A corpus of malformed and hostile requests against a real server: each gets its documented 4xx, nothing changes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from syncbed import contract
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import batch, visit

SYNC = contract.SYNC_PATH
JSON = {"Content-Type": "application/json"}


def body_of(records: list[object]) -> bytes:
    return msgspec.json.encode({"pageVisits": records})


def one(**over: object) -> bytes:
    return body_of([visit(0, **over)])


def chunked_flood() -> Iterator[bytes]:
    for _ in range(10_000):
        yield b"[" * 1024


# (name, method, extra headers (None = drop auth), body, expected status, expected code)
CASES: list[tuple[str, str, dict[str, str] | None, bytes | None, int, str]] = [
    ("empty body", "POST", JSON, b"", 400, "invalid_json"),
    ("whitespace body", "POST", JSON, b"   \n", 400, "invalid_json"),
    ("truncated json", "POST", JSON, b'{"pageVisits": [{"id": "a"', 400, "invalid_json"),
    ("invalid utf-8", "POST", JSON, b'{"pageVisits": [{"id": "\xff\xfe", "url": "https://a", "visitedAt": 1}]}', 400,
     "invalid_json"),
    ("utf-8 bom", "POST", JSON, b"\xef\xbb\xbf" + batch(1), 400, "invalid_json"),
    ("utf-16 body", "POST", JSON, batch(1).decode().encode("utf-16"), 400, "invalid_json"),
    ("raw nul byte", "POST", JSON, b'{"pageVisits": [\x00]}', 400, "invalid_json"),
    ("deeply nested arrays", "POST", JSON, b"[" * 200_000 + b"]" * 200_000, 400, "invalid_json"),
    ("deeply nested inside a field", "POST", JSON,
     b'{"pageVisits": [{"id": ' + b"[" * 200_000 + b"]" * 200_000 + b"}]}", 400, "invalid_json"),
    ("NaN literal", "POST", JSON, b'{"pageVisits": [{"id": "a", "url": "https://a", "visitedAt": NaN}]}', 400,
     "invalid_json"),
    ("trailing garbage", "POST", JSON, batch(1) + b" trailing", 400, "invalid_json"),
    ("json string", "POST", JSON, b'"hello"', 400, "invalid_json"),
    ("json null", "POST", JSON, b"null", 400, "invalid_json"),
    ("json array", "POST", JSON, b"[]", 400, "invalid_json"),
    ("ten megabytes", "POST", JSON, b'{"pageVisits": ["' + b"a" * (10 * 1024 * 1024) + b'"]}', 413, "batch_too_large"),
    ("too many records", "POST", JSON, batch(1001), 413, "batch_too_large"),
    ("visitedAt beyond 64 bits", "POST", JSON, one(visitedAt=2**70), 422, "invalid_records"),
    ("tabId beyond 64 bits", "POST", JSON, one(tabId=-(2**64)), 422, "invalid_records"),
    ("durationMs huge float", "POST", JSON,
     b'{"pageVisits": [{"id": "a", "url": "https://a", "visitedAt": 1, "durationMs": 1e400}]}', 400,
     "invalid_json"),
    ("escaped nul in id", "POST", JSON, one(id="a\u0000b"), 422, "invalid_records"),
    ("id wrong type", "POST", JSON, one(id=5), 422, "invalid_records"),
    ("url wrong type", "POST", JSON, one(url=["https://a"]), 422, "invalid_records"),
    ("visitedAt wrong type", "POST", JSON, one(visitedAt="2024-01-01"), 422, "invalid_records"),
    ("visitedAt float", "POST", JSON, one(visitedAt=1.5), 422, "invalid_records"),
    ("visitedAt negative", "POST", JSON, one(visitedAt=-1), 422, "invalid_records"),
    ("title wrong type", "POST", JSON, one(title={"a": 1}), 422, "invalid_records"),
    ("durationMs wrong type", "POST", JSON, one(durationMs="long"), 422, "invalid_records"),
    ("tabId boolean", "POST", JSON, one(tabId=True), 422, "invalid_records"),
    ("record is a string", "POST", JSON, body_of(["not a record"]), 422, "invalid_records"),
    ("pageVisits is an object", "POST", JSON, b'{"pageVisits": {"id": "a"}}', 422, "invalid_records"),
    ("pageVisits missing", "POST", JSON, b"{}", 422, "invalid_records"),
    ("pageVisits null", "POST", JSON, b'{"pageVisits": null}', 422, "invalid_records"),
    ("duplicate ids in one batch", "POST", JSON, body_of([visit(1), visit(1)]), 422, "invalid_records"),
    ("javascript url", "POST", JSON, one(url="javascript:alert(1)"), 422, "invalid_records"),
    ("url with a trailing newline", "POST", JSON, one(url="https://a/\n"), 422, "invalid_records"),
    ("url with a space", "POST", JSON, one(url="https://a/ b"), 422, "invalid_records"),
    ("bad url after a good one", "POST", JSON, body_of([visit(1), visit(2, url="https://")]), 422,
     "invalid_records"),
    ("url too long", "POST", JSON, one(url="https://a/" + "x" * 2048), 422, "invalid_records"),
    ("id too long", "POST", JSON, one(id="x" * 129), 422, "invalid_records"),
    ("empty id", "POST", JSON, one(id=""), 422, "invalid_records"),
    ("title too long", "POST", JSON, one(title="t" * 1025), 422, "invalid_records"),
    ("missing content type", "POST", {}, batch(1), 415, "unsupported_media_type"),
    ("text/plain", "POST", {"Content-Type": "text/plain"}, batch(1), 415, "unsupported_media_type"),
    ("form encoded", "POST", {"Content-Type": "application/x-www-form-urlencoded"}, batch(1), 415,
     "unsupported_media_type"),
    ("multipart", "POST", {"Content-Type": "multipart/form-data; boundary=x"}, batch(1), 415,
     "unsupported_media_type"),
    ("no token", "POST", None, batch(1), 401, "unauthorized"),
    ("garbage trace header", "POST", {**JSON, "X-Sync-Batch": "1e9"}, batch(1), 400, "invalid_request"),
    ("GET on sync", "GET", JSON, None, 405, "method_not_allowed"),
    ("PUT on sync", "PUT", JSON, batch(1), 405, "method_not_allowed"),
]  # fmt: skip


@pytest.fixture(scope="module")
def hostile_server(shared_unlimited_server: LiveServer) -> LiveServer:
    return shared_unlimited_server


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("name", "method", "headers", "body", "status", "code"), CASES, ids=[c[0] for c in CASES])
def test_hostile_request_gets_its_4xx_and_changes_nothing(
    hostile_server: LiveServer,
    name: str,
    method: str,
    headers: dict[str, str] | None,
    body: bytes | None,
    status: int,
    code: str,
) -> None:
    tok = hostile_server.token("mallory")
    hdr = {} if headers is None else {**headers, "Authorization": f"Bearer {tok}"}
    r = httpx.request(method, hostile_server.url + SYNC, content=body, headers=hdr, timeout=60)
    assert r.status_code == status, r.text[:500]
    payload = r.json()
    assert payload["error"] == code
    assert isinstance(payload["message"], str) and payload["message"]
    assert hostile_server.count(tok) == 0
    assert httpx.get(hostile_server.url + "/healthz").status_code == 200


def test_chunked_body_without_length_over_the_cap(hostile_server: LiveServer) -> None:
    tok = hostile_server.token("mallory")
    r = httpx.post(
        hostile_server.url + SYNC, content=chunked_flood(), headers={**JSON, "Authorization": f"Bearer {tok}"}
    )
    assert r.status_code == 413
    assert r.json()["error"] == "batch_too_large"
    assert hostile_server.count(tok) == 0


def test_chunked_body_without_length_is_fine_when_small(hostile_server: LiveServer) -> None:
    tok = hostile_server.token("chunky")

    def parts() -> Iterator[bytes]:
        data = batch(50, prefix="chunk")
        for i in range(0, len(data), 100):
            yield data[i : i + 100]

    r = httpx.post(hostile_server.url + SYNC, content=parts(), headers={**JSON, "Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    assert hostile_server.count(tok) == 50


def test_revoked_token_is_refused(hostile_server: LiveServer) -> None:
    import sqlite3
    import time

    from syncbed.paths import SERVER_DB_FILE

    tok = hostile_server.token("revoked")
    conn = sqlite3.connect(hostile_server.data_dir / SERVER_DB_FILE)
    with conn:
        conn.execute("UPDATE tokens SET revoked = ?", (time.time(),))
    conn.close()
    # Never looked up before, so no cache holds it (the cache's lifetime: tests/server/test_auth.py).
    r = httpx.post(hostile_server.url + SYNC, content=batch(1), headers={**JSON, "Authorization": f"Bearer {tok}"})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"


def test_raw_socket_garbage_does_not_hurt(hostile_server: LiveServer) -> None:
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"POST /api/v1/data/sync HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: -5\r\n\r\n", b"GARBAGE\r\n\r\n"):  # fmt: skip
        with socket.create_connection(("127.0.0.1", hostile_server.port), timeout=5) as s:
            s.sendall(junk)
            try:
                s.recv(1024)
            except OSError:
                pass
    assert httpx.get(hostile_server.url + "/healthz").status_code == 200


def test_no_traceback_in_the_server_log(hostile_server: LiveServer) -> None:
    # Runs last in this module (pytest keeps file order): the corpus above must not have logged one.
    assert "Traceback" not in hostile_server.log()


def test_hostile_settings_values_are_refused_at_start(server_factory: ServerFactory) -> None:
    import subprocess
    import sys

    for config, needle in (
        ("[server]\nport = 'high'\n", "server.port"),
        ("[limits]\nbogus = 1\n", "limits.bogus"),
        ("[[limits.throttle]]\nname='x'\nlimit=5\nperiod='soon'\n", "limits.throttle[0].period"),
        ("[faults]\nerror_rate = 2\n", "faults.error_rate"),
        ("not toml [", "not valid TOML"),
        ("[limits]\nblocklist = ['10.0.0.0/99']\n", "limits.blocklist[0]"),
        ("[limits]\nstore = 'mysql://x'\n", "limits.store"),
    ):
        srv = server_factory(config=config, start=False)
        cfg = srv.data_dir / "config.toml"
        r = subprocess.run([sys.executable, "-m", "server", "--config", str(cfg)], capture_output=True, text=True,
                           timeout=30)  # fmt: skip
        assert r.returncode == 2
        assert needle in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
