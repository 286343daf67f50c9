"""One access log line per request, written however the request ended, with nothing a caller can forge."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from server.access_log import AccessLogMiddleware


def scope(path: str = "/api/v1/data/sync", method: str = "POST", **more: Any) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "client": ("10.0.0.7", 5555), "headers": [], **more}


async def run(app: Any, s: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await AccessLogMiddleware(app)(s, receive, send)
    return sent


def answering(status: int, **state: object) -> Any:
    async def app(s: Scope, receive: Receive, send: Send) -> None:
        s["state"].update(state)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "syncbed.access"]


async def test_a_request_is_one_line_with_its_status_user_and_figures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncbed.access")
    app = answering(200, **{"syncbed.user": "alice", "syncbed.records": 1000, "syncbed.stored": 998})
    sent = await run(app, scope())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]  # passed through
    (line,) = lines(caplog)
    assert line.startswith("POST /api/v1/data/sync 200 user=alice ip=10.0.0.7 records=1000 stored=998 ")
    assert line.endswith("ms")


async def test_a_traced_batch_names_its_run_batch_and_attempt(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncbed.access")
    app = answering(503, **{"syncbed.user": "bob", "syncbed.error": "injected_fault", "syncbed.trace": "c-1-ab/7/2"})
    await run(app, scope())
    (line,) = lines(caplog)
    assert line.startswith("POST /api/v1/data/sync 503 user=bob ip=10.0.0.7 error=injected_fault trace=c-1-ab/7/2 ")


async def test_a_refusal_names_its_error_and_rule(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncbed.access")
    await run(answering(429, **{"syncbed.error": "rate_limited", "syncbed.rule": "sync/user"}), scope())
    (line,) = lines(caplog)
    assert line.startswith("POST /api/v1/data/sync 429 user=- ip=10.0.0.7 error=rate_limited rule=sync/user ")


async def test_a_request_that_got_no_answer_is_logged_as_dropped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncbed.access")

    async def failing(s: Scope, receive: Receive, send: Send) -> None:
        raise ConnectionResetError("reset by the fault injector")

    with pytest.raises(ConnectionResetError):
        await run(failing, scope(client=None))
    (line,) = lines(caplog)
    assert line.startswith("POST /api/v1/data/sync dropped user=- ip=- ")


async def test_what_a_caller_sends_cannot_start_a_second_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncbed.access")
    forged = "/x\n2025-01-01 00:00:00 INFO    syncbed.access: GET /admin 200"
    await run(answering(404, **{"syncbed.user": "eve\r\nroot"}), scope(path=forged, method="GE\tT"))
    (line,) = lines(caplog)
    assert "\n" not in line and "\r" not in line and "\t" not in line
    assert line.startswith(
        "GE\\tT /x\\n2025-01-01 00:00:00 INFO    syncbed.access: GET /admin 200 404 user=eve\\r\\nroot "
    )


async def test_the_arrival_time_is_left_for_the_latency_fault() -> None:
    seen: dict[str, object] = {}

    async def app(s: Scope, receive: Receive, send: Send) -> None:
        seen.update(s["state"])
        await send({"type": "http.response.start", "status": 204, "headers": []})

    await run(app, scope())
    assert isinstance(seen["syncbed.arrived"], float)


async def test_other_scopes_pass_through_unlogged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncbed.access")
    reached: list[str] = []

    async def app(s: Scope, receive: Receive, send: Send) -> None:
        reached.append(s["type"])

    await run(app, {"type": "lifespan"})
    assert reached == ["lifespan"] and lines(caplog) == []
