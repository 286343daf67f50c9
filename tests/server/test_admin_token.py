"""The admin token: where it comes from, and the one check the throttle and the admin routes share."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from server.admin_token import ensure_admin_token, is_admin
from syncbed import contract
from syncbed.paths import ADMIN_TOKEN_FILE
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import TIMEOUT, throttle

TOKEN = "sbadmin_0123456789abcdef"


@pytest.mark.parametrize(
    "header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER   {TOKEN}  "], ids=["as sent", "lower", "spaced"]
)
def test_the_admin_token_is_recognised_under_any_spelling_of_the_scheme(header: str) -> None:
    assert is_admin(header, TOKEN)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x",
     f"Bearer {TOKEN.upper()}", "Bearer sbadmin_ünïcödé", f"Bearer {TOKEN} {TOKEN}"],
)  # fmt: skip
def test_anything_else_is_not_the_admin(header: str | None) -> None:
    assert not is_admin(header, TOKEN)


def test_the_configured_token_wins_and_is_not_written(tmp_path: Path) -> None:
    assert ensure_admin_token(tmp_path, "given") == "given"
    assert not (tmp_path / ADMIN_TOKEN_FILE).exists()


def test_a_new_token_is_written_0600_and_read_back(tmp_path: Path) -> None:
    made = ensure_admin_token(tmp_path)
    path = tmp_path / ADMIN_TOKEN_FILE
    assert made.startswith("sbadmin_") and len(made) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_admin_token(tmp_path) == made


def test_a_readable_token_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / ADMIN_TOKEN_FILE
    path.write_text("sbadmin_kept\n")
    path.chmod(0o644)
    assert ensure_admin_token(tmp_path) == "sbadmin_kept"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture
def two_per_window(server_factory: ServerFactory) -> LiveServer:
    return server_factory(config=throttle("req/ip", 2, "5m"))


async def test_the_throttle_and_the_routes_agree_on_who_is_the_admin(two_per_window: LiveServer) -> None:
    srv = two_per_window
    lower = {"Authorization": f"bearer {srv.admin_token}"}
    wrong = {"Authorization": f"Bearer {srv.admin_token}x"}
    async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as client:
        # The admin: let past req/ip uncounted by the throttle, and let in by the route, every time.
        for _ in range(4):
            r = await client.get(contract.FAULTS_PATH, headers=lower)
            assert r.status_code == 200 and "ratelimit" not in r.headers, r.text
        # A near miss is a stranger to both: counted by req/ip and refused by the route, then throttled.
        codes = [(await client.get(contract.FAULTS_PATH, headers=wrong)).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        assert (await client.get(contract.LIMITER_PATH, headers=lower)).status_code == 200


async def test_with_limits_off_the_routes_still_check_the_admin_token(unlimited_server: LiveServer) -> None:
    srv = unlimited_server
    async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as client:
        assert (await client.get(contract.FAULTS_PATH, headers=srv.admin_headers())).status_code == 200
        wrong = {"Authorization": f"Bearer {srv.admin_token}x"}
        assert (await client.get(contract.FAULTS_PATH, headers=wrong)).status_code == 401
        assert (await client.get(contract.LIMITER_PATH, headers=wrong)).status_code == 401
