"""Servers on one PostgreSQL database (real uvicorn, real PostgreSQL): a retry on another server, tokens,
runs read from either, an outage answered 503 and recovered from, and start-up refusals in one line."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from harness.postgres import temporary_postgres
from harness.processes import free_port, wait_until
from server import pg
from server.auth import CACHE_SECONDS
from server.tokens import create_token_at
from syncbed import contract
from tests.cli_run import run_cli, server_refuses
from tests.conftest import LiveServer, PostgresServer, ServerFactory
from tests.server.helpers import TIMEOUT, auth, batch
from tests.server.test_ingest_property import bodies

pytestmark = pytest.mark.postgres


def on_postgres(server_factory: ServerFactory, url: str, *args: str) -> LiveServer:
    return server_factory(args=["--database", url, "--no-limits", *args])


def traced(token: str, run: str, b: int, attempt: int) -> dict[str, str]:
    return {
        **auth(token),
        contract.HEADER_RUN: run,
        contract.HEADER_BATCH: str(b),
        contract.HEADER_ATTEMPT: str(attempt),
    }


def token_cli(url: str, data_dir: Path, *args: str) -> str:
    out = run_cli("server", "token", *args, "--database", url, "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def run_view(srv: LiveServer, token: str, run: str) -> dict[str, object]:
    r = httpx.get(f"{srv.url}{contract.RUNS_PATH}/{run}", headers=auth(token), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    view: dict[str, object] = r.json()
    return view


def test_a_batch_retried_on_another_server_is_stored_once(
    pg_url: str, server_factory: ServerFactory, tmp_path: Path
) -> None:
    a, b = on_postgres(server_factory, pg_url), on_postgres(server_factory, pg_url)
    assert a.data_dir != b.data_dir
    token = token_cli(pg_url, tmp_path, "create", "alice")  # the operator's way: one token, every server
    run = "cluster-run-1"
    with httpx.Client(timeout=TIMEOUT) as client:
        started = client.post(
            a.url + contract.RUNS_PATH,
            headers=auth(token),
            json={"run": run, "total_records": 60, "total_batches": 2, "batch_size": 50},
        )
        assert started.status_code == 201, started.text
        body = batch(50, "x")
        first = client.post(a.url + contract.SYNC_PATH, content=body, headers=traced(token, run, 0, 1))
        assert first.json() == {"accepted": 50, "stored": 50, "duplicates": 0}
        retry = client.post(b.url + contract.SYNC_PATH, content=body, headers=traced(token, run, 0, 2))
        assert retry.json() == {"accepted": 50, "stored": 0, "duplicates": 50}
        other = client.post(b.url + contract.SYNC_PATH, content=batch(10, "y"), headers=traced(token, run, 1, 1))
        assert other.json()["stored"] == 10
        finished = client.post(
            f"{b.url}{contract.RUNS_PATH}/{run}/finish",
            headers=auth(token),
            json={"status": "complete", "ok_batches": 2, "failed_batches": 0, "seconds": 1.0},
        )
        assert finished.status_code == 200, finished.text
    assert a.count(token) == b.count(token) == 60

    want = {"attempts": 3, "batches_stored": 2, "records_stored": 60, "duplicates": 50}

    def complete(srv: LiveServer) -> bool:
        view = run_view(srv, token, run)
        totals = view["totals"]
        assert isinstance(totals, dict)
        return view["status"] == "complete" and {k: totals[k] for k in want} == want

    for srv in (a, b):  # each server writes its own events a moment later: wait for both halves
        wait_until(lambda srv=srv: complete(srv), 15, f"the run's whole history on {srv.url}")  # type: ignore[misc]
    assert run_view(a, token, run)["batches"] == run_view(b, token, run)["batches"]


def test_tokens_made_or_revoked_anywhere_hold_on_every_server(
    pg_url: str, server_factory: ServerFactory, tmp_path: Path
) -> None:
    a, b = on_postgres(server_factory, pg_url), on_postgres(server_factory, pg_url)
    token = create_token_at(pg_url, "bob")
    for srv in (a, b):
        assert srv.count(token) == 0
    listed = token_cli(pg_url, tmp_path, "list")
    assert f"{token.split('_')[1]}\tbob\tactive" in listed
    assert token_cli(pg_url, tmp_path, "revoke", "bob") == "revoked 1 token(s)"
    time.sleep(CACHE_SECONDS)
    for srv in (a, b):
        r = httpx.get(srv.url + contract.COUNT_PATH, headers=auth(token), timeout=TIMEOUT)
        assert r.status_code == 401 and r.json()["error"] == contract.E_UNAUTHORIZED


def test_postgres_stopped_mid_run_is_503_and_the_server_recovers_by_itself(server_factory: ServerFactory) -> None:
    with temporary_postgres() as cluster:  # a cluster of its own: this test stops it
        url = cluster.create_database("outage")
        srv = on_postgres(server_factory, url)
        token = create_token_at(url, "carol")
        headers = traced(token, "outage-run", 0, 1)
        with httpx.Client(timeout=TIMEOUT) as client:
            ok = client.post(srv.url + contract.SYNC_PATH, content=batch(20, "o", 0), headers=headers)
            assert ok.status_code == 200, ok.text
            cluster.stop("fast")  # every session of the server's pool is ended, new ones are refused
            down = time.monotonic()
            for path, kind in (
                (contract.SYNC_PATH, "post"),
                (contract.COUNT_PATH, "get"),
                (contract.HEALTH_PATH, "get"),
            ):
                if kind == "post":
                    r = client.post(
                        srv.url + path, content=batch(20, "o", 20), headers=traced(token, "outage-run", 1, 1)
                    )
                else:
                    r = client.get(srv.url + path, headers=auth(token))
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.json()["error"] == contract.E_UNAVAILABLE, r.text
            answered_in = time.monotonic() - down
            cluster.start()
            back = time.monotonic()

            def stored() -> bool:
                r = client.post(srv.url + contract.SYNC_PATH, content=batch(20, "o", 20), headers=headers)
                return r.status_code == 200

            wait_until(stored, 30, "the server to store again once PostgreSQL is back")
            recovered_in = time.monotonic() - back
            assert srv.count(token) == 40

            def history_whole() -> bool:  # the events queued while it was down are written after it
                totals = run_view(srv, token, "outage-run")["totals"]
                assert isinstance(totals, dict)
                return totals["records_stored"] == 40 and totals["rejected"] >= 1

            wait_until(history_whole, 15, "the run's history to catch up")
        srv.stop()
    log = srv.log()
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]
    assert "storage unavailable" in log
    print(f"outage: three 503s in {answered_in:.2f} s; storing again {recovered_in:.2f} s after PostgreSQL was back")


def test_a_schema_version_mismatch_stops_the_server_and_the_token_commands(pg_url: str, tmp_path: Path) -> None:
    pg.connect(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE syncbed_meta SET value = '99' WHERE key = 'schema_version'")
    line = server_refuses(tmp_path / "data", "--database", pg_url)
    assert (
        f"has schema version 99, newer than this server's {pg.SCHEMA_VERSION}: run the syncbed release that wrote it"
        in line
    ), line
    out = run_cli("server", "token", "list", "--database", pg_url, "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 2 and out.stderr.startswith("error: the database ") and "version 99" in out.stderr


def test_an_unreachable_database_stops_the_server_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql://syncbed:hunter2@127.0.0.1:{free_port()}/nowhere"
    line = server_refuses(tmp_path / "data", "--database", url)
    assert line.startswith("error: cannot connect to the database postgresql://syncbed:***@127.0.0.1:"), line
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("mysql://db", "server.database (from --database): expected 'sqlite' or a postgresql:// URL, got 'mysql://db'"),
        ("postgresql://[::1/db", "server.database (from --database): not a PostgreSQL URL libpq can read"),
    ],
)
def test_a_database_that_is_not_a_postgresql_url_is_a_configuration_error(
    tmp_path: Path, value: str, says: str
) -> None:
    line = server_refuses(tmp_path / "data", "--database", value)
    assert line.startswith(f"error: configuration: {says}"), line


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_title_with_a_nul_is_refused_by_either_backend(
    request: pytest.FixtureRequest, server_factory: ServerFactory, database: str
) -> None:
    url = request.getfixturevalue("pg_url") if database == "postgres" else None
    srv = on_postgres(server_factory, url) if url else server_factory(args=["--no-limits"])
    token = create_token_at(url, "dora") if url else srv.token("dora")
    body = b'{"pageVisits": [{"id": "n-1", "url": "https://example.com/", "visitedAt": 1, "title": "a\\u0000b"}]}'
    r = httpx.post(srv.url + contract.SYNC_PATH, content=body, headers=auth(token), timeout=TIMEOUT)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"index": 0, "field": "title", "message": contract.TITLE_MESSAGE}]
    assert srv.count(token) == 0


@pytest.fixture(scope="module")
def pg_prop_server(postgres: PostgresServer, shared_server_factory: ServerFactory) -> Iterator[tuple[LiveServer, str]]:
    name = f"prop_{os.getpid()}"
    url = postgres.create_database(name)
    srv = on_postgres(shared_server_factory, url)
    yield srv, create_token_at(url, "prop")
    srv.stop()
    postgres.drop_database(name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_any_body_is_answered_honestly_on_postgres(pg_prop_server: tuple[LiveServer, str], body: bytes) -> None:
    """tests/server/test_ingest_property.py's property, against PostgreSQL: 200 or a documented 4xx, never 5xx."""
    srv, token = pg_prop_server
    before = srv.count(token)
    r = httpx.post(srv.url + contract.SYNC_PATH, content=body, headers=auth(token), timeout=TIMEOUT)
    assert r.status_code in (200, 400, 413, 422), r.text
    after = srv.count(token)
    if r.status_code == 200:
        assert after - before == r.json()["stored"]
        again = httpx.post(srv.url + contract.SYNC_PATH, content=body, headers=auth(token), timeout=TIMEOUT).json()
        assert again["stored"] == 0 and again["duplicates"] == r.json()["accepted"]
    else:
        assert after == before
