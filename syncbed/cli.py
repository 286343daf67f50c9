"""Command-line pieces the three CLIs share: options that work before or after a subcommand, and --version."""

from __future__ import annotations

import argparse
from importlib import metadata


def shared_options() -> argparse.ArgumentParser:
    """A parent parser for options accepted anywhere on the command line.

    Give it to the top-level parser and to every subcommand's. Its options default to SUPPRESS, so a
    subcommand that did not see an option leaves no attribute behind to overwrite the value the top
    level parsed; read them with `getattr(args, name, default)` or fill them with `fill_defaults`.
    """
    parent = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    parent.add_argument("--version", action="version", version=version_text(), help="print the version and exit")
    return parent


def version_text() -> str:
    """'syncbed X.Y.Z' from the installed package's metadata (pyproject.toml is the only copy)."""
    try:
        return f"syncbed {metadata.version('syncbed')}"
    except metadata.PackageNotFoundError:
        return "syncbed (version unknown: the package is not installed; pip install -e .)"


def fill_defaults(args: argparse.Namespace, **defaults: object) -> argparse.Namespace:
    """Set each shared option nobody gave to its default."""
    for name, value in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args
