"""Raw sockets against a live server: bytes exactly as written, no client library to normalise them."""

from __future__ import annotations

import socket

from syncbed import contract
from tests.conftest import LiveServer


def sync_head(token: str, length: int) -> bytes:
    """The head of a POST to the sync endpoint whose body is `length` bytes of JSON."""
    return (
        f"POST {contract.SYNC_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def connect(srv: LiveServer, timeout: float = 10.0) -> socket.socket:
    """A connection to `srv` whose every read and write gives up after `timeout` seconds."""
    return socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    """Everything until EOF; a reset after some bytes keeps those bytes."""
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the server lets us: it may close (or reset) once it has seen enough."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def exchange(srv: LiveServer, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a new connection and read the answer until the server closes it."""
    with connect(srv, timeout) as sock:
        sock.sendall(data)
        return read_all(sock)
