"""The collector settings that keep full collections out of a sync."""

from __future__ import annotations

import gc
import subprocess
import sys

from syncbed.contract import PageVisit
from tests.conftest import ROOT


def test_settle_freezes_the_heap_of_the_process_that_calls_it() -> None:
    code = "import gc, server.app; from syncbed.gc_settle import settle; before = gc.get_freeze_count(); settle(); "
    code += "print(before, gc.get_freeze_count())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    before, after = map(int, out.stdout.split())
    assert (
        before == 0 and after > 20_000
    )  # the server's modules and their objects, no longer walked by full collections


def test_a_page_visit_is_not_tracked_by_the_collector() -> None:
    visit = PageVisit(id="a", url="https://example.org/", visited_at=1, title="t", duration_ms=2, tab_id=3)
    assert not gc.is_tracked(visit)
