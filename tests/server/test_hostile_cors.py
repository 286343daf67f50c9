"""CORS for browser clients: preflights answered before the limiter, 429s readable by a page, off by default."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from syncbed import contract
from tests.cli_run import server_refuses
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import auth, batch, throttle

ORIGIN = "https://app.example"
CONFIG = (
    f'[server]\ncors_origins = ["{ORIGIN}", "chrome-extension://abcdefghijklmnop"]\n\n'
    + throttle("req/ip", 5, "60s")
    + throttle("sync/user", 1, "60s", key="user", sync=True)
)
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-sync-run, x-sync-batch, x-sync-attempt",
}


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(config=CONFIG)


def test_a_preflight_is_answered_and_never_counted(server: LiveServer) -> None:
    token = server.token("alice")
    with httpx.Client(base_url=server.url, timeout=10) as client:

        def req_ip_left() -> int:
            count = client.get(contract.COUNT_PATH, headers={**auth(token), "Origin": ORIGIN})
            assert count.status_code == 200, count.text
            assert count.headers["access-control-allow-origin"] == ORIGIN
            (item,) = [i for i in count.headers["ratelimit"].split(",") if i.strip().startswith('"req/ip"')]
            return int(item.split(";r=")[1].split(";")[0])

        before = req_ip_left()
        for _ in range(12):  # more than req/ip's 5: none of them counts
            r = client.options(contract.SYNC_PATH, headers=PREFLIGHT)
            assert r.status_code == 200, r.text
            assert r.headers["access-control-allow-origin"] == ORIGIN
            allowed = r.headers["access-control-allow-headers"].lower()
            for name in ("authorization", "content-type", "x-sync-run", "x-sync-batch", "x-sync-attempt"):
                assert name in allowed
            assert "POST" in r.headers["access-control-allow-methods"]
            assert "ratelimit" not in r.headers
        sse = client.options(
            contract.EVENTS_PATH,
            headers={
                **PREFLIGHT,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "last-event-id",
            },
        )
        assert sse.status_code == 200 and "last-event-id" in sse.headers["access-control-allow-headers"].lower()
        assert req_ip_left() == before - 1  # only the GET itself was counted


def test_a_429_carries_the_cors_headers_and_exposes_retry_after(server: LiveServer) -> None:
    token = server.token("alice")
    headers = {**auth(token), "Origin": ORIGIN}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ok = client.post(contract.SYNC_PATH, content=batch(1, "c0"), headers=headers)
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
        refused = client.post(contract.SYNC_PATH, content=batch(1, "c1"), headers=headers)
    assert refused.status_code == 429, refused.text
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    exposed = {h.strip().lower() for h in refused.headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "ratelimit", "ratelimit-policy"} <= exposed
    assert "retry-after" in refused.headers


def test_an_origin_not_listed_gets_no_cors_headers(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.options(contract.SYNC_PATH, headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        g = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in g.headers


def test_by_default_there_is_no_cors(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        r = client.options(contract.SYNC_PATH, headers=PREFLIGHT)
        assert r.status_code == 405
        g = client.get("/healthz", headers={"Origin": ORIGIN})
    for resp in (r, g):
        assert not any(k.lower().startswith("access-control-") for k in resp.headers)
        assert "origin" not in resp.headers.get("vary", "").lower()


@pytest.mark.parametrize(
    "origin", ["https://app.example/", "app.example", "https://app.example/path", "HTTPS://A.EXAMPLE"]
)
def test_a_bad_origin_stops_the_server_at_start(tmp_path: Path, origin: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\ncors_origins = ["{origin}"]\n')
    line = server_refuses(tmp_path / "data", "--config", str(config))
    assert "server.cors_origins[0]" in line and "scheme://host" in line, line


def test_origins_from_the_environment(server_factory: ServerFactory) -> None:
    srv = server_factory(env={"SYNCBED_SERVER_CORS_ORIGINS": f"{ORIGIN}, https://other.example"})
    r = httpx.options(
        srv.url + contract.SYNC_PATH, headers={**PREFLIGHT, "Origin": "https://other.example"}, timeout=10
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://other.example"
