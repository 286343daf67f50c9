"""HTTP_PROXY reaches the client and the monitor alike, NO_PROXY bypasses it: real subprocesses, a recording proxy."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from syncbed.contract import EVENTS_PATH, SYNC_PATH
from tests.client.fakes import filled
from tests.client.proxies import ForwardProxy
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
PROXY_NAMES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def behind(http_proxy: str, https_proxy: str) -> dict[str, str]:
    """The environment with these proxies and no NO_PROXY: httpx then proxies 127.0.0.1 too."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_NAMES}
    return {**env, "HTTP_PROXY": http_proxy, "HTTPS_PROXY": https_proxy}


async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_client_and_the_monitor_send_through_http_proxy_unless_no_proxy_names_the_host(
    live_server: LiveServer, tmp_path: Path
) -> None:
    db = tmp_path / "outbox.db"
    await (await filled(db, 2000)).close()
    token = live_server.token("proxied")
    origin = live_server.url.encode()
    async with ForwardProxy() as proxy, ForwardProxy() as tls_proxy:
        env = behind(proxy.url, tls_proxy.url)
        sync = ["-m", "client", "sync", "--db", str(db), "--server", live_server.url, "--token", token, "--json"]
        code, out, err = await run(env, *sync)
        assert code == 0, err
        result = json.loads(out)
        watch = ["--server", live_server.url, "--admin-token", live_server.admin_token, "--headless"]
        code, _, err = await run(env, "-m", "monitor", *watch, "--exit-after", "4")
        assert code == 0, err
        seen = len(proxy.lines)
        await (await filled(db, 1000, seed=2)).close()
        code, out, err = await run({**env, "NO_PROXY": "127.0.0.1"}, *sync)  # named: the proxy is bypassed
        assert code == 0, err
        assert json.loads(out)["synced_records"] == 1000 and len(proxy.lines) == seen
    assert result["complete"] and result["synced_records"] == 2000
    assert live_server.count(token) == 3000
    sends = [line for line in proxy.lines[:seen] if line == b"POST " + origin + SYNC_PATH.encode() + b" HTTP/1.1"]
    assert len(sends) == result["requests"] == 2
    assert any(line.startswith(b"GET " + origin + EVENTS_PATH.encode()) for line in proxy.lines), proxy.lines
    assert tls_proxy.lines == []  # HTTPS_PROXY is for https:// URLs only
