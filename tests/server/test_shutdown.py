"""Stopping a real server with Ctrl-C (SIGINT) is a clean shutdown, not a traceback."""

from __future__ import annotations

from tests.conftest import ServerFactory


def test_ctrl_c_shuts_down_without_a_traceback(server_factory: ServerFactory) -> None:
    srv = server_factory()
    proc = srv.proc
    assert proc is not None
    srv.stop()  # SIGINT, as Ctrl-C in a terminal
    assert proc.returncode == 130, srv.log()[-2000:]
    assert "Traceback" not in srv.log() and "KeyboardInterrupt" not in srv.log()
