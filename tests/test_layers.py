"""The layers point one way: syncbed/ at the bottom, then server/, client/, monitor/ side by side, harness/ on top."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("syncbed", "server", "client", "monitor", "harness")

# What each package must not import (anywhere in it, at module level or inside a function).
FORBIDDEN = {
    "syncbed": {"server", "client", "monitor", "harness"},
    "server": {"client", "monitor", "harness"},
    "client": {"server", "monitor", "harness"},
    "monitor": {"server", "client", "harness"},
    "harness": set(),
}
# The monitor's entry point starts the demo (`python -m monitor --demo`), lazily, inside that branch.
ALLOWED = {("monitor/__main__.py", "harness.demo_clients")}


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import statement in the file."""
    package = ".".join(path.relative_to(root).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module


def violations(package: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / package).rglob("*.py")):
        where = path.relative_to(root).as_posix()
        for line, module in imports(path, root):
            top = module.split(".")[0]
            if top in FORBIDDEN[package] and (where, module) not in ALLOWED:
                found.append(f"{where}:{line} imports {module}")
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_a_layer_imports_nothing_from_beside_or_above_it(package: str) -> None:
    assert (ROOT / package / "__init__.py").is_file()
    assert violations(package) == []


def test_the_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "syncbed" / "sub"
    pkg.mkdir(parents=True)
    source = "import server.app\nfrom client import x\ndef f():\n    from monitor.app import y\nfrom .. import z\n"
    (pkg / "mod.py").write_text(source)
    assert sorted(m for _, m in imports(pkg / "mod.py", tmp_path)) == ["client", "monitor.app", "server.app", "syncbed"]
    assert violations("syncbed", tmp_path) == [
        "syncbed/sub/mod.py:1 imports server.app",
        "syncbed/sub/mod.py:2 imports client",
        "syncbed/sub/mod.py:4 imports monitor.app",
    ]


def test_the_lazy_demo_import_is_where_the_allowance_says() -> None:
    (where, module), *_ = ALLOWED
    assert module in [m for _, m in imports(ROOT / where)]


def test_every_module_has_its_line_in_the_architecture_doc() -> None:
    """docs/architecture.md: one row a module, in its package's section."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    sections = dict(re.findall(r"^## [^\n]*\(`(\w+)/`\)\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    missing = [
        f"{package}/{path.name}"
        for package in (*LAYERS, "bench")
        for path in sorted((ROOT / package).glob("*.py"))
        if path.name != "__init__.py" and f"`{path.name}`" not in sections.get(package, "")
    ]
    assert not missing, f"add a row for each to docs/architecture.md: {missing}"
