"""Keep CPython's full garbage collections out of a running sync."""

from __future__ import annotations

import gc


def settle() -> None:
    """Freeze everything alive now (modules, classes, the app) out of the collector's view.

    A full collection walks every tracked object: after imports that is ~30 ms here, one pause of the
    event loop every few seconds of a sync, each a tenth of a 300 ms round. Frozen objects are never
    walked again; what a sync allocates afterwards is still collected as usual. Call once per process,
    from its entry point, after imports and set-up.
    """
    gc.collect()
    gc.freeze()
