"""A real server killed and started again under a running monitor: stale while down, then live, and told."""

from __future__ import annotations

import httpx

from monitor.app import MonitorApp
from monitor.model import LINK_EVENT
from syncbed import contract as c
from tests.conftest import ServerFactory
from tests.monitor.test_live import wait

SIZE = (120, 40)


async def test_a_killed_server_goes_stale_and_its_restart_reset_is_called_out(server_factory: ServerFactory) -> None:
    srv = server_factory()
    app = MonitorApp(server=srv.url, admin_token=srv.admin_token)
    async with app.run_test(size=SIZE) as pilot, httpx.AsyncClient(timeout=30) as client:
        await wait(pilot, lambda: app.conn_state == "connected" and "sync/user" in app.model.limiter.rules)
        r = await client.put(srv.url + c.FAULTS_PATH, headers=srv.admin_headers(), json={"error_rate": 0.2})
        assert r.status_code == 200
        r = await client.put(srv.url + c.LIMITS_PATH, headers=srv.admin_headers(), json={"rule": "sync/user",
                             "limit": 9})  # fmt: skip
        assert r.status_code == 200
        await wait(pilot, lambda: app.model.faults.get("error_rate") == 0.2
                   and app.model.limiter.rules["sync/user"].limit == 9)  # fmt: skip
        assert "lag " in str(app.status_bar.render()) and not app.main_screen.has_class("-stale")

        srv.kill()  # no goodbye: the stream just breaks
        await wait(pilot, lambda: app.main_screen.has_class("-stale"))
        await pilot.pause(0.3)
        status = str(app.status_bar.render())
        assert " since " in status and "lag" not in status, status
        assert all(str(view.border_subtitle).startswith("stale since ") for view in app.panels)
        assert app.model.faults["error_rate"] == 0.2  # still the dead server's, and marked so

        srv.start()  # the same port and data, the settings back to the configured ones
        await wait(pilot, lambda: app.conn_state == "connected" and not app.main_screen.has_class("-stale"))
        await wait(pilot, lambda: app.model.link.reset_note is not None)
        await pilot.pause(0.3)
        status = str(app.status_bar.render())
        notes = [e.text for e in app.model.log if e.type == LINK_EVENT]
    assert notes[0].startswith("stream lost") and notes[1].startswith("stream back after")
    assert "error_rate 0.2→0 (back to defaults)" in notes[2] and "sync/user 9/1s→5/1s" in notes[2]
    assert "server restarted?" in status and "lag " in status
    assert not any(str(view.border_subtitle).startswith("stale") for view in app.panels)
