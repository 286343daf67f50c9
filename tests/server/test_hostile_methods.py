"""A wrong method is a 405 with an Allow header listing every method the path takes (RFC 9110 15.5.6)."""

from __future__ import annotations

import httpx
import pytest

from syncbed import contract
from tests.conftest import LiveServer


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", contract.SYNC_PATH, {"POST"}),
        ("DELETE", contract.SYNC_PATH, {"POST"}),
        ("PUT", contract.SYNC_PATH, {"POST"}),
        ("DELETE", contract.FAULTS_PATH, {"GET", "HEAD", "PUT"}),  # two routes share this path
        ("POST", contract.FAULTS_PATH, {"GET", "HEAD", "PUT"}),
        ("GET", contract.LIMITS_PATH, {"PUT"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("DELETE", contract.COUNT_PATH, {"GET", "HEAD"}),
        ("PATCH", contract.LIMITER_PATH, {"GET", "HEAD"}),
        ("OPTIONS", contract.SYNC_PATH, {"POST"}),
        ("DELETE", contract.RUNS_PATH, {"GET", "HEAD", "POST"}),  # a list and a start: two routes
        ("DELETE", contract.RUNS_PATH + "/some-run", {"GET", "HEAD"}),
        ("GET", contract.RUNS_PATH + "/some-run/finish", {"POST"}),
        ("POST", contract.EVENTS_PATH, {"GET", "HEAD"}),
    ],
)
def test_a_405_says_what_is_allowed(shared_live_server: LiveServer, method: str, path: str, allow: set[str]) -> None:
    # One server for every case: a 405 changes nothing, and admin requests are never throttled.
    srv = shared_live_server
    r = httpx.request(method, srv.url + path, headers=srv.admin_headers(), timeout=10)
    assert r.status_code == 405, r.text
    assert r.json()["error"] == contract.E_METHOD_NOT_ALLOWED and r.json()["message"]
    assert "allow" in r.headers, r.headers
    assert {m.strip() for m in r.headers["allow"].split(",")} == allow
