"""The sync endpoint against a real server: the error table, idempotency, atomicity, concurrency."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
import pytest

from syncbed import contract
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import auth, batch, visit

SYNC = contract.SYNC_PATH


@pytest.fixture(scope="module")
def unlimited_server(shared_unlimited_server: LiveServer) -> LiveServer:
    """One server for the module's ingest tests (limits off): each test syncs as a user of its own."""
    return shared_unlimited_server


def post(srv: LiveServer, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(srv.url + SYNC, content=body, headers=headers, timeout=30)


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and len(body["message"]) > 15
    return dict(body)


def test_accepts_a_batch_and_reports_counts(unlimited_server: LiveServer) -> None:
    tok = unlimited_server.token("accepts")
    r = post(unlimited_server, batch(10), auth(tok))
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 10, "stored": 10, "duplicates": 0}
    assert unlimited_server.count(tok) == 10


def test_400_invalid_json(unlimited_server: LiveServer) -> None:
    tok = unlimited_server.token("badjson")
    body = assert_error(post(unlimited_server, b'{"pageVisits": [', auth(tok)), 400, "invalid_json")
    assert "JSON" in str(body["message"])
    assert_error(post(unlimited_server, b"[1, 2]", auth(tok)), 400, "invalid_json")
    assert unlimited_server.count(tok) == 0


def test_401_missing_unknown_and_revoked_tokens(unlimited_server: LiveServer) -> None:
    srv = unlimited_server
    good = srv.token("unauth")
    hdr = {"Content-Type": "application/json"}
    assert_error(post(srv, batch(1), hdr), 401, "unauthorized")
    assert_error(post(srv, batch(1), auth("sb_nope_nope")), 401, "unauthorized")
    assert_error(post(srv, batch(1), {**hdr, "Authorization": "Basic abc"}), 401, "unauthorized")
    r = post(srv, batch(1), auth(srv.admin_token))
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert srv.count(good) == 0


def test_413_too_many_records_and_too_many_bytes(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits", "--max-batch-records", "5", "--max-body-bytes", "4096"])
    tok = srv.token("alice")
    body = assert_error(post(srv, batch(6), auth(tok)), 413, "batch_too_large")
    assert body["max_records"] == 5 and body["max_bytes"] == 4096
    huge = msgspec.json.encode({"pageVisits": [visit(0, title="x" * 1000) for _ in range(1)] * 5})
    assert len(huge) > 4096
    assert_error(post(srv, huge, auth(tok)), 413, "batch_too_large")
    assert srv.count(tok) == 0


def test_413_streamed_body_without_length_is_cut_off(server_factory: ServerFactory) -> None:
    srv = server_factory(args=["--no-limits", "--max-body-bytes", "4096"])
    tok = srv.token("alice")

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"pageVisits": ['
        for _ in range(10_000):  # 10 MB if the server read it all
            yield b" " * 1000

    r = httpx.post(srv.url + SYNC, content=chunks(), headers=auth(tok), timeout=30)
    assert_error(r, 413, "batch_too_large")
    assert srv.count(tok) == 0


def test_415_wrong_or_missing_content_type(unlimited_server: LiveServer) -> None:
    srv = unlimited_server
    tok = srv.token("ctype")
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Authorization": f"Bearer {tok}"}
        if ctype:
            headers["Content-Type"] = ctype
        body = assert_error(post(srv, batch(1), headers), 415, "unsupported_media_type")
        assert "application/json" in str(body["message"])
    r = post(srv, batch(2), {**auth(tok), "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200
    assert srv.count(tok) == 2


def test_422_lists_every_record_error(unlimited_server: LiveServer) -> None:
    srv = unlimited_server
    tok = srv.token("records")
    records = [visit(0), visit(1, url="ftp://x"), visit(2, visitedAt="yesterday", durationMs=-1), visit(3)]
    del records[3]["id"]
    r = post(srv, msgspec.json.encode({"pageVisits": records}), auth(tok))
    body = assert_error(r, 422, "invalid_records")
    got = {(e["index"], e["field"]) for e in body["errors"]}  # type: ignore[union-attr]
    assert got == {(1, "url"), (2, "visitedAt"), (2, "durationMs"), (3, "id")}
    assert body["error_count"] == 4
    assert srv.count(tok) == 0


def test_422_reports_at_most_50_errors(unlimited_server: LiveServer) -> None:
    tok = unlimited_server.token("fifty")
    records = [visit(i, url="nope") for i in range(200)]
    body = assert_error(post(unlimited_server, msgspec.json.encode({"pageVisits": records}), auth(tok)), 422,
                        "invalid_records")  # fmt: skip
    assert len(body["errors"]) == 50  # type: ignore[arg-type]
    assert body["error_count"] == 200


def test_one_invalid_record_stores_none_of_the_batch(unlimited_server: LiveServer) -> None:
    tok = unlimited_server.token("atomic")
    records = [visit(i) for i in range(999)] + [visit(999, visitedAt=-5)]
    assert_error(post(unlimited_server, msgspec.json.encode({"pageVisits": records}), auth(tok)), 422,
                 "invalid_records")  # fmt: skip
    assert unlimited_server.count(tok) == 0


def test_same_batch_three_times_is_stored_once(unlimited_server: LiveServer) -> None:
    tok = unlimited_server.token("thrice")
    body = batch(1000)
    answers = [post(unlimited_server, body, auth(tok)).json() for _ in range(3)]
    assert answers[0] == {"accepted": 1000, "stored": 1000, "duplicates": 0}
    assert answers[1] == answers[2] == {"accepted": 1000, "stored": 0, "duplicates": 1000}
    assert unlimited_server.count(tok) == 1000


def test_users_see_only_their_own_records(unlimited_server: LiveServer) -> None:
    a, b = unlimited_server.token("own-a"), unlimited_server.token("own-b")
    assert post(unlimited_server, batch(5), auth(a)).json()["stored"] == 5
    # The same ids are a different user's records, not duplicates.
    assert post(unlimited_server, batch(3), auth(b)).json()["stored"] == 3
    assert unlimited_server.count(a) == 5
    assert unlimited_server.count(b) == 3


async def test_fifty_batches_ten_at_a_time_store_exactly_fifty_thousand(unlimited_server: LiveServer) -> None:
    tok = unlimited_server.token("concurrent")
    bodies = [batch(1000, start=i * 1000) for i in range(50)]
    sem = asyncio.Semaphore(10)
    async with httpx.AsyncClient(base_url=unlimited_server.url, timeout=60) as client:

        async def send(body: bytes) -> httpx.Response:
            async with sem:
                return await client.post(SYNC, content=body, headers=auth(tok))

        answers = await asyncio.gather(*(send(b) for b in bodies))
    assert [r.status_code for r in answers] == [200] * 50
    assert sum(r.json()["stored"] for r in answers) == 50_000
    assert unlimited_server.count(tok) == 50_000


def test_trace_headers_must_be_well_formed(unlimited_server: LiveServer) -> None:
    tok = unlimited_server.token("trace")
    for name, value in ((contract.HEADER_BATCH, "-1"), (contract.HEADER_ATTEMPT, "0"), (contract.HEADER_BATCH, "x")):
        body = assert_error(post(unlimited_server, batch(1), {**auth(tok), name: value}), 400, "invalid_request")
        assert name in str(body["message"])
    ok = {**auth(tok), contract.HEADER_RUN: "r1", contract.HEADER_BATCH: "0", contract.HEADER_ATTEMPT: "1"}
    assert post(unlimited_server, batch(1), ok).status_code == 200
    assert unlimited_server.count(tok) == 1


def test_count_needs_a_token_and_healthz_answers(unlimited_server: LiveServer) -> None:
    assert httpx.get(unlimited_server.url + "/healthz").json() == {"status": "ok"}
    assert_error(httpx.get(unlimited_server.url + contract.COUNT_PATH), 401, "unauthorized")
    assert_error(httpx.get(unlimited_server.url + "/api/v1/nothing"), 404, "not_found")
    assert_error(httpx.get(unlimited_server.url + SYNC), 405, "method_not_allowed")


@pytest.mark.parametrize("user", ["alice"])
def test_token_cli_create_list_revoke(unlimited_server: LiveServer, user: str) -> None:
    import subprocess
    import sys

    srv = unlimited_server
    cli = [sys.executable, "-m", "server", "--data-dir", str(srv.data_dir), "token"]
    tok = subprocess.run([*cli, "create", user], capture_output=True, text=True, check=True).stdout.strip()
    unused = subprocess.run([*cli, "create", user], capture_output=True, text=True, check=True).stdout.strip()
    assert post(srv, batch(1), auth(tok)).status_code == 200
    listing = subprocess.run([*cli, "list"], capture_output=True, text=True, check=True).stdout
    assert user in listing and tok not in listing and unused not in listing
    out = subprocess.run([*cli, "revoke", user], capture_output=True, text=True, check=True).stdout
    assert "revoked 2" in out
    # `unused` was never looked up, so no cache holds it; how long the cache may keep `tok` is
    # tests/server/test_auth.py's business, on a fake clock.
    assert_error(post(srv, batch(1, start=5), auth(unused)), 401, "unauthorized")
    assert srv.count(srv.token(user)) == 1
