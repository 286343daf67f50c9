"""JSON responses in the contract's one error shape, for Starlette routes and raw ASGI alike."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Send

from syncbed.contract import CONTENT_LENGTH_KEY, CONTENT_TYPE_KEY, error_body

_encode = msgspec.json.Encoder().encode
# A 401 always names its scheme (RFC 9110 11.6.1).
_CHALLENGE: dict[str, str] = {"WWW-Authenticate": "Bearer"}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return _encode(content)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **details: object
) -> JSONResponse:
    if status == 401:
        headers = {**_CHALLENGE, **(headers or {})}
    return JSONResponse(error_body(code, message, **details), status_code=status, headers=headers)


class ApiError(HTTPException):
    """A refusal raised by a route; the app's HTTPException handler answers it with `response()`."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **details: object
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code
        self.details = details

    def response(self) -> JSONResponse:
        return error_response(self.status_code, self.code, self.detail, self.headers, **self.details)


async def send_json(send: Send, status: int, body: object, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer a raw ASGI request with a JSON body."""
    await send_bytes(send, status, b"application/json", _encode(body), headers)


async def send_bytes(
    send: Send, status: int, content_type: bytes, payload: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer a raw ASGI request with `payload` as it is, framed by its type and length."""
    raw = [(CONTENT_TYPE_KEY, content_type), (CONTENT_LENGTH_KEY, str(len(payload)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    **details: object,
) -> None:
    """Answer a raw ASGI request in the error shape."""
    challenge = [(k.lower().encode(), v.encode()) for k, v in _CHALLENGE.items()] if status == 401 else []
    await send_json(send, status, error_body(code, message, **details), [*challenge, *(headers or [])])
