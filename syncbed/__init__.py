"""syncbed: a testbed for concurrent, rate-limited batch sync."""

from __future__ import annotations

__version__ = "0.1.0"
