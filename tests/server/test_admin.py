"""Admin endpoints: who may call them, validation, live limit edits, and no token ever leaking."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncbed import contract
from tests.conftest import LiveServer, ServerFactory
from tests.server.helpers import TIMEOUT, auth, batch, config_changes, data, throttle

ONE_PER_MINUTE = throttle("sync/user", 100, "60s", key="user", sync=True)


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(config=ONE_PER_MINUTE)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", contract.FAULTS_PATH, None),
        ("PUT", contract.FAULTS_PATH, {"latency_ms": 1}),
        ("PUT", contract.LIMITS_PATH, {"rule": "sync/user", "limit": 1}),
    ],
)
async def test_admin_endpoints_need_the_admin_token(
    server: LiveServer, method: str, path: str, body: dict[str, Any] | None
) -> None:
    user = server.token("alice")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for headers, status, code in (
            ({}, 401, contract.E_UNAUTHORIZED),
            ({"Authorization": "Bearer sb_unknown_token"}, 401, contract.E_UNAUTHORIZED),
            ({"Authorization": "Basic abc"}, 401, contract.E_UNAUTHORIZED),
            ({"Authorization": f"Bearer {user}"}, 403, contract.E_FORBIDDEN),
        ):
            r = await client.request(method, server.url + path, headers=headers, json=body)
            assert (r.status_code, r.json()["error"]) == (status, code), r.text
        r = await client.request(method, server.url + path, headers=server.admin_headers(), json=body)
        assert r.status_code == 200, r.text
    assert server.count(user) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"latency_ms": -5}, "latency_ms"),
        ({"jitter_ms": "10"}, "jitter_ms"),
        ({"error_rate": 2}, "error_rate"),
        ({"reset_rate": True}, "reset_rate"),
        ({"latency_ms": 10, "oops": 1}, "oops"),
    ],
)
async def test_bad_fault_values_are_422_naming_the_field_and_change_nothing(
    server: LiveServer, body: dict[str, Any], field: str
) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        url = server.url + contract.FAULTS_PATH
        r = await client.put(url, headers=server.admin_headers(), json=body)
        assert r.status_code == 422
        answer = r.json()
        assert answer["error"] == contract.E_INVALID_REQUEST and answer["field"] == field
        assert answer["message"].startswith(field)
        now = (await client.get(url, headers=server.admin_headers())).json()
    assert now == {"latency_ms": 0, "jitter_ms": 0, "error_rate": 0.0, "reset_rate": 0.0}


async def test_fault_bodies_that_are_not_json_objects_are_400(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for content in (b"", b"{", b"[1]", b'"x"', b"x" * 70_000):
            r = await client.put(server.url + contract.FAULTS_PATH, headers=server.admin_headers(), content=content)
            assert r.status_code == 400 and r.json()["error"] in (contract.E_INVALID_JSON, contract.E_INVALID_REQUEST)


async def test_limits_change_live_and_are_events(server: LiveServer) -> None:
    token = server.token("alice")
    url = server.url + contract.LIMITS_PATH
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, config_changes(client, server) as reader:
        post = {"content": batch(3, "lim"), "headers": auth(token)}
        assert (await client.post(server.url + contract.SYNC_PATH, **post)).status_code == 200
        r = await client.put(url, headers=server.admin_headers(), json={"rule": "sync/user", "limit": 1})
        assert r.status_code == 200, r.text
        assert (r.json()["rule"], r.json()["limit"]) == ("sync/user", 1)
        refused = await client.post(server.url + contract.SYNC_PATH, **post)
        assert refused.status_code == 429 and refused.json()["rule"] == "sync/user"
        r = await client.put(url, headers=server.admin_headers(), json={"rule": "sync/user", "enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False
        assert (await client.post(server.url + contract.SYNC_PATH, **post)).status_code == 200
        await reader.wait_for(lambda seen: len(seen) == 2)
        events = [data(e) for e in reader.events]
    assert [(e["what"], e["rule"], e["limit"], e["enabled"]) for e in events] == [
        ("limits", "sync/user", 1, True),
        ("limits", "sync/user", 1, False),
    ]
    assert server.log().count("config changed: limits") == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"limit": 1}, 422, "rule"),
        ({"rule": "sync/user"}, 422, "limit"),
        ({"rule": "sync/user", "limit": -1}, 422, "limit"),
        ({"rule": "sync/user", "limit": 1.5}, 422, "limit"),
        ({"rule": "sync/user", "period": "soon"}, 422, "period"),
        ({"rule": "sync/user", "enabled": "yes"}, 422, "enabled"),
        ({"rule": "sync/user", "limit": 1, "burst": 3}, 422, "burst"),
        ({"rule": "sync/user", "limit": 1, "kind": "fence"}, 422, "kind"),
        ({"rule": "no/such", "limit": 1}, 404, "rule"),
    ],
)
async def test_bad_limit_changes_are_clear_errors(
    server: LiveServer, body: dict[str, Any], status: int, field: str
) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        r = await client.put(server.url + contract.LIMITS_PATH, headers=server.admin_headers(), json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.json()["message"]


async def test_a_period_change_is_applied(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        r = await client.put(
            server.url + contract.LIMITS_PATH,
            headers=server.admin_headers(),
            json={"rule": "sync/user", "limit": 7, "period": "2s"},
        )
        assert r.status_code == 200 and (r.json()["limit"], r.json()["period"]) == (7, 2.0)
        view = (await client.get(server.url + contract.LIMITER_PATH, headers=server.admin_headers())).json()
    (rule,) = [r for r in view["rules"] if r["name"] == "sync/user"]
    assert (rule["limit"], rule["period"]) == (7, 2.0)


async def test_tokens_never_appear_in_events_or_logs(server: LiveServer) -> None:
    token = server.token("alice")
    admin = server.admin_token
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        async with client.stream("GET", server.url + contract.EVENTS_PATH, headers=server.admin_headers()) as stream:
            r = await client.post(server.url + contract.RUNS_PATH, headers=auth(token), json={
                "run": "secretive", "total_records": 3, "total_batches": 1, "batch_size": 3,
            })  # fmt: skip
            assert r.status_code == 201
            headers = {**auth(token), contract.HEADER_RUN: "secretive", contract.HEADER_BATCH: "0"}
            await client.post(server.url + contract.SYNC_PATH, content=batch(3, "s"), headers=headers)
            await client.post(server.url + contract.SYNC_PATH, content=b"{", headers=headers)
            await client.put(server.url + contract.FAULTS_PATH, headers=server.admin_headers(), json={"jitter_ms": 1})
            await client.put(server.url + contract.FAULTS_PATH, headers=auth(token), json={"jitter_ms": 2})
            seen = ""
            async for text in stream.aiter_text():
                seen += text
                if "config.changed" in seen and seen.endswith("\n\n"):
                    break
        export = await client.get(f"{server.url}{contract.RUNS_PATH}/secretive/events", headers=auth(token))
    assert "batch.stored" in seen and "batch.rejected" in seen and export.text
    for secret in (token, admin, token.split("_")[-1], admin.split("_", 1)[-1]):
        assert secret not in seen and secret not in export.text and secret not in server.log()
