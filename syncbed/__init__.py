"""syncbed: a testbed for concurrent, rate-limited batch sync."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("syncbed")  # pyproject.toml holds the only copy
except metadata.PackageNotFoundError:
    __version__ = "0+unknown"
