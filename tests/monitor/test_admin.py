"""The monitor's admin client against a real server: answers decoded with the server's own types."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from monitor.admin import AdminClient, AdminError
from syncbed import contract as c
from syncbed.faults import FaultSettings
from syncbed.responses import LimitChanged
from tests.conftest import LiveServer
from tests.monitor.servers import serve, url_of


async def test_set_faults_answers_the_settings_as_they_now_are(live_server: LiveServer) -> None:
    admin = AdminClient(live_server.url, live_server.admin_token)
    now = await admin.set_faults(latency_ms=25, error_rate=0.5)
    assert now == FaultSettings(latency_ms=25, jitter_ms=0, error_rate=0.5, reset_rate=0.0)
    async with httpx.AsyncClient(timeout=10) as client:
        raw = (await client.get(live_server.url + c.FAULTS_PATH, headers=live_server.admin_headers())).content
    assert msgspec.json.encode(msgspec.json.decode(raw, type=FaultSettings)) == raw  # no field left unread


async def test_set_limit_answers_the_rule_as_it_now_is(live_server: LiveServer) -> None:
    admin = AdminClient(live_server.url, live_server.admin_token)
    changed = await admin.set_limit("sync/user", 7)
    assert (changed.rule, changed.name, changed.kind, changed.limit, changed.enabled) == (
        "sync/user", "sync/user", "throttle", 7, True,
    )  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as client:
        put = client.put(live_server.url + c.LIMITS_PATH, headers=live_server.admin_headers(), json={
            "rule": "sync/ip", "limit": 9,
        })  # fmt: skip
        raw = (await put).content
    again = msgspec.json.decode(raw, type=LimitChanged)
    assert msgspec.json.encode(again) == raw and again.limit == 9


@pytest.mark.parametrize(("who", "status"), [("stranger", 401), ("user", 403)])
async def test_a_refusal_is_an_admin_error_with_the_servers_sentence(
    live_server: LiveServer, who: str, status: int
) -> None:
    token = "sb_not_a_token" if who == "stranger" else live_server.token("alice")
    with pytest.raises(AdminError, match=f"PUT {c.FAULTS_PATH}: {status} ") as caught:
        await AdminClient(live_server.url, token).set_faults(latency_ms=1)
    assert "token" in str(caught.value)


async def test_an_answer_of_another_shape_is_an_admin_error_not_a_guess() -> None:
    async def wrong(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "latency_ms": "soon"})

    app = Starlette(routes=[Route(c.FAULTS_PATH, wrong, methods=["PUT"]), Route(c.LIMITS_PATH, wrong, methods=["PUT"])])
    async with serve(app) as server:
        admin = AdminClient(url_of(server), "t")
        with pytest.raises(AdminError, match="the answer is not a FaultSettings"):
            await admin.set_faults(latency_ms=1)
        with pytest.raises(AdminError, match="the answer is not a LimitChanged"):
            await admin.set_limit("sync/user", 1)


async def test_an_unknown_fault_field_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="unknown fault fields"):
        await AdminClient("http://127.0.0.1:9", "t").set_faults(latency=1)
