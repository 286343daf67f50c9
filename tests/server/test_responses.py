"""The one error shape: ApiError raised by a route, written by the app's HTTPException handler."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.app import http_error
from server.responses import ApiError
from syncbed import contract
from syncbed.contract import error_body
from tests.conftest import LiveServer, ServerFactory
from tests.monitor.servers import serve, url_of
from tests.server.helpers import TIMEOUT, auth, throttle


def shape(code: str, message: str, **details: object) -> bytes:
    return msgspec.json.encode(error_body(code, message, **details))


def test_an_api_error_answers_in_the_error_shape_with_its_details_and_headers() -> None:
    r = ApiError(409, "clash", "Two of them.", headers={"X-Why": "because"}, field="a", n=2).response()
    assert r.status_code == 409 and r.media_type == "application/json"
    assert r.body == b'{"error":"clash","message":"Two of them.","field":"a","n":2}'
    assert r.headers["x-why"] == "because"


def test_a_401_always_names_its_scheme() -> None:
    bare = ApiError(401, contract.E_UNAUTHORIZED, "Who?").response()
    assert bare.headers["www-authenticate"] == "Bearer"
    assert "www-authenticate" not in ApiError(403, contract.E_FORBIDDEN, "No.").response().headers


async def raise_api_error(request: Request) -> Response:
    raise ApiError(422, contract.E_INVALID_REQUEST, "limit: too big", headers={"X-Hint": "smaller"}, field="limit")


async def raise_plain(request: Request) -> Response:
    raise HTTPException(418, "I am a teapot.")


async def ok(request: Request) -> Response:
    return Response("ok")


async def test_the_handler_writes_every_http_exception_in_the_shape_on_a_real_server() -> None:
    app = Starlette(
        routes=[
            Route("/api", raise_api_error, methods=["GET"]),
            Route("/plain", raise_plain, methods=["GET"]),
            Route("/two", ok, methods=["GET"]),
            Route("/two", ok, methods=["PUT"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    async with serve(app) as server, httpx.AsyncClient(base_url=url_of(server), timeout=TIMEOUT) as client:
        api = await client.get("/api")
        plain = await client.get("/plain")
        missing = await client.get("/nowhere")
        wrong = await client.post("/two")
    assert (api.status_code, api.content) == (422, shape(contract.E_INVALID_REQUEST, "limit: too big", field="limit"))
    assert api.headers["x-hint"] == "smaller" and api.headers["content-type"] == "application/json"
    assert (plain.status_code, plain.content) == (418, shape("http_error", "I am a teapot."))
    assert missing.status_code == 404
    assert missing.content == shape(contract.E_NOT_FOUND, "No such endpoint: /nowhere.")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, PUT"  # both routes of the path
    assert wrong.content == shape(contract.E_METHOD_NOT_ALLOWED, "POST is not allowed on /two; use GET, HEAD, PUT.")


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(config=throttle("req/ip", 300, "5m"))


async def test_raised_refusals_keep_their_headers_and_the_throttles(server: LiveServer) -> None:
    user = server.token("shape")
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
        none = await client.get(contract.FAULTS_PATH)
        users = await client.get(contract.LIMITER_PATH, headers=auth(user))
        unknown = await client.put(
            contract.LIMITS_PATH, headers=server.admin_headers(), json={"rule": "no/such", "limit": 1}
        )
        count = await client.get(contract.COUNT_PATH)
    assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
    assert none.content == shape(
        contract.E_UNAUTHORIZED, "A bearer token is required; send Authorization: Bearer <token>."
    )
    assert none.headers["ratelimit"].startswith('"req/ip";r=')  # the throttle's fields reach a raised answer
    assert users.status_code == 403 and "www-authenticate" not in users.headers
    assert users.content == shape(contract.E_FORBIDDEN, "The limiter view needs the admin token, not a user's.")
    assert unknown.status_code == 404
    assert unknown.content == shape(contract.E_NOT_FOUND, "There is no throttle rule named 'no/such'.", field="rule")
    assert count.status_code == 401 and count.headers["www-authenticate"] == "Bearer"
    assert "Traceback" not in server.log()
