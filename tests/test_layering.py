"""Imports point down only: every framework module's imports checked against the layer table.

The table below is the layering of design.md made explicit. A new module fails this test until
it is added to the table with the modules it may import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "framework"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE

# Imports under ``if TYPE_CHECKING:`` are recorded as if made in a function of this name.
TYPE_CHECKING_BLOCK = "<TYPE_CHECKING>"

# module -> framework modules it may import. ``None`` means anything (entry points).
ALLOWED: dict[str, set[str] | None] = {
    # vocabulary
    "errors": set(),
    "limits": set(),
    "messages": {"errors", "limits"},
    # security
    "tls": {"pki", "messages", "errors", "limits"},
    # protocol
    "http11": {"errors", "limits"},
    "accesslog": set(),
    # roles
    "server": {"http11", "accesslog", "tls", "messages", "errors", "limits"},
    "connection": {"http11", "tls", "messages", "errors", "limits"},  # one client connection
    "pool": {"connection", "errors", "limits"},  # the client's connections, shared
    "response": {"pool", "connection", "messages", "errors"},
    "client": {"response", "pool", "connection", "http11", "tls", "messages", "errors", "limits"},
    # app
    "routing": {"messages", "errors", "limits"},
    "app": {"routing", "messages", "errors", "limits"},
    # entry points
    "cli": None,
    "cli_certs": None,
    "testing": None,
    "__main__": None,
    "__init__": None,
}

# (module, function name) -> framework modules that one function may import, beyond the table.
FUNCTION_EXCEPTIONS: dict[tuple[str, str], set[str]] = {
    # App.run: a convenience entry point for scripts (``app.run(port=8443)``).
    ("app", "run"): {"deploy"},
    # A connection reports to the pool that owns it, and names the pool's type for the checker.
    ("connection", TYPE_CHECKING_BLOCK): {"pool"},
}

# Modules outside the package each layer must never import.
FORBIDDEN_EXTERNAL: dict[str, set[str]] = {
    "errors": {"asyncio", "ssl", "socket", "h11"},
    "limits": {"asyncio", "ssl", "socket", "h11"},
    "messages": {"ssl", "socket", "h11"},
    "hostnames": {"asyncio", "ssl", "h11", "socket"},
    "keys": {"asyncio", "ssl", "h11", "socket"},
    "verify": {"asyncio", "ssl", "h11", "socket"},
    "ca": {"asyncio", "ssl", "h11", "socket"},
    "pki": {"asyncio", "ssl", "h11", "socket"},
    "devca": {"asyncio", "ssl", "h11"},
    "tls": {"h11", "asyncio"},
    "http11": {"ssl", "socket"},
    "routing": {"ssl", "socket", "h11", "asyncio"},
    "app": {"ssl", "socket", "h11", "asyncio"},
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "server"
    target: str  # the first component: a framework module ("tls") or a top-level package
    is_framework: bool
    function: str | None  # the innermost enclosing function, or None at module level
    line: int


def _modules() -> list[Path]:
    return sorted(SOURCE.glob("*.py"))


def _collect(path: Path) -> list[Import]:
    module = path.stem
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                inner = TYPE_CHECKING_BLOCK
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.extend(_absolute(module, alias.name, function, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                found.extend(_from(module, child, function))
            visit(child, inner)

    visit(tree, None)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str, name: str, function: str | None, line: int) -> list[Import]:
    parts = name.split(".")
    if parts[0] == PACKAGE:
        if len(parts) == 1:
            return [Import(module, "__init__", True, function, line)]
        return [Import(module, parts[1], True, function, line)]
    return [Import(module, parts[0], False, function, line)]


def _from(module: str, node: ast.ImportFrom, function: str | None) -> list[Import]:
    if node.level == 0:
        assert node.module is not None
        if node.module == PACKAGE:
            # ``from framework import pki`` names modules (or public names of __init__).
            return [_name_in_package(module, a.name, function, node.lineno) for a in node.names]
        return _absolute(module, node.module, function, node.lineno)
    # Relative: every module is directly in the package, so level 1 is the package itself.
    assert node.level == 1, f"{module}: unexpected relative import level {node.level}"
    if node.module:
        target = node.module.split(".")[0]
        return [Import(module, target, True, function, node.lineno)]
    return [_name_in_package(module, a.name, function, node.lineno) for a in node.names]


def _name_in_package(module: str, name: str, function: str | None, line: int) -> Import:
    is_module = (SOURCE / f"{name}.py").exists() or (SOURCE / name / "__init__.py").exists()
    target = name if is_module else "__init__"
    return Import(module, target, True, function, line)


def test_layering_every_module_is_in_the_table() -> None:
    missing = [p.stem for p in _modules() if p.stem not in ALLOWED]
    assert not missing, (
        f"{', '.join(missing)} not in tests/test_layering.py ALLOWED: add each new module to the "
        "table with the framework modules it may import (its layer in design.md)"
    )


def test_layering_table_names_only_existing_modules() -> None:
    present = {p.stem for p in _modules()}
    # Modules written later (client, testing) may be listed before they exist.
    planned = {"client", "testing"}
    stale = set(ALLOWED) - present - planned
    assert not stale, f"ALLOWED lists modules that do not exist: {sorted(stale)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.stem)
def test_layering_framework_imports_point_down(path: Path) -> None:
    module = path.stem
    allowed = ALLOWED.get(module, set())
    if allowed is None:
        return
    wrong = []
    for imp in _collect(path):
        if not imp.is_framework or imp.target == module:
            continue
        if imp.target in allowed:
            continue
        if imp.function and imp.target in FUNCTION_EXCEPTIONS.get((module, imp.function), set()):
            continue
        where = f"in {imp.function}()" if imp.function else "at module level"
        wrong.append(f"line {imp.line}: imports framework.{imp.target} {where}")
    assert not wrong, f"framework.{module} may import only {sorted(allowed)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    "path", [p for p in _modules() if p.stem in FORBIDDEN_EXTERNAL], ids=lambda p: p.stem
)
def test_layering_lower_layers_avoid_io_modules(path: Path) -> None:
    module = path.stem
    forbidden = FORBIDDEN_EXTERNAL[module]
    wrong = [
        f"line {imp.line}: imports {imp.target}"
        for imp in _collect(path)
        if not imp.is_framework and imp.target in forbidden
    ]
    assert not wrong, f"framework.{module} must not import {sorted(forbidden)}:\n" + "\n".join(
        wrong
    )


def test_layering_roles_never_import_app_or_routing() -> None:
    for module in ("server", "client", "response", "pool", "connection"):
        allowed = ALLOWED[module]
        assert allowed is not None
        assert not allowed & {"app", "routing"}, module


def test_layering_collector_sees_every_import_form(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import framework.tls\n"
        "from framework import pki\n"
        "from framework.server import Server\n"
        "from . import app\n"
        "from .routing import Route\n"
        "import ssl, os.path\n"
        "def late():\n"
        "    from .workers import serve\n"
        "class C:\n"
        "    async def run(self):\n"
        "        import h11\n"
        "if TYPE_CHECKING:\n"
        "    from framework.devca import dev_certificate\n"
    )
    found = {(i.target, i.is_framework, i.function) for i in _collect(source)}
    assert found == {
        ("tls", True, None),
        ("pki", True, None),
        ("server", True, None),
        ("app", True, None),
        ("routing", True, None),
        ("ssl", False, None),
        ("os", False, None),
        ("workers", True, "late"),
        ("h11", False, "run"),
        ("devca", True, TYPE_CHECKING_BLOCK),
    }
