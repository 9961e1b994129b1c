"""Imports point down only: every framework module's imports checked against the layer table.

The table below is the layering of docs/architecture.md made explicit. Modules are walked
recursively; a module belongs to the unit named by its first component below ``framework``
(``framework.http11.driver`` is in unit ``http11``), and a unit may import itself and the units
its row lists. A new module or package fails this test until its unit is in the table.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path

import h11
import pytest

PACKAGE = "framework"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE

# Imports under ``if TYPE_CHECKING:`` are recorded as if made in a function of this name.
TYPE_CHECKING_BLOCK = "<TYPE_CHECKING>"

# unit -> units it may import. ``None`` means anything (entry points).
ALLOWED: dict[str, set[str] | None] = {
    # vocabulary
    "errors": set(),
    "limits": set(),
    "headers": set(),
    "files": {"limits"},
    "cookies": set(),
    "conveniences": {"cookies", "forms", "headers", "errors", "limits"},
    "multipart": {"limits"},
    "forms": {"multipart", "errors", "limits"},
    "messages": {"conveniences", "headers", "files", "errors", "limits"},
    "accesslog": {"limits"},
    # security: cryptography only, then the ssl policy on top of it
    "pki": {"errors", "limits"},
    "tls": {"pki", "messages", "errors", "limits"},
    # protocol: no I/O; the only importer of h11
    "http11": {"messages", "headers", "errors", "limits"},
    # adapter: asyncio back pressure and body queues, shared by both roles
    "transport": {"errors", "limits"},
    # roles
    "server": {"http11", "transport", "accesslog", "tls", "messages", "errors", "limits"},
    "client": {"http11", "transport", "tls", "websocket", "messages", "errors", "limits"},
    # the load generator: a client of its own (raw protocols, one request encoded once) for
    # measuring servers; a role beside the client, never imported by the other roles
    "load": {"http11", "tls", "messages", "errors", "limits"},
    # app
    "decorators": set(),
    "routing": {"decorators", "messages", "errors", "limits"},
    "app": {
        "routing",
        "asgi",
        "staticfiles",
        "params",
        "errorpages",
        "mounts",
        "decorators",
        "websocket",
        "messages",
        "errors",
        "limits",
    },
    # app conveniences over the vocabulary: handler arguments, error bodies, sessions
    "params": {"messages", "errors"},
    "errorpages": {"messages", "errors"},
    "mounts": {"messages"},
    "sessions": {"messages", "cookies", "errors"},
    # static files, and middleware as values an app is given (never importing the app)
    "staticfiles": {"files", "messages", "headers", "errors", "limits"},
    "middleware": {"files", "messages", "headers", "errors", "limits"},
    # ASGI both ways, over the Handler: an ASGI app served here, an App under an ASGI server
    # (and the websocket scope, driving the WebSocket of websocket/)
    "asgi": {"websocket", "transport", "messages", "headers", "errors", "limits"},
    # WebSocket frames (wsproto) on a connection the server hands over after 101.
    "websocket": {
        "http11",
        "tls",
        "transport",
        "accesslog",
        "messages",
        "headers",
        "errors",
        "limits",
    },
    # services: certificates from an ACME CA, over both roles and the PKI
    "acme": {"server", "client", "pki", "messages", "errors", "limits"},
    # entry points
    "deploy": None,
    "cli": None,
    "cli_deploy": None,
    "cli_certs": None,
    "cli_limits": None,
    "cli_acme": None,
    "testing": None,
    "pytest_plugin": None,
    "cli_ops": None,
    "__main__": None,
    "__init__": None,
}

# The roles: they take any handler and never know of routes or apps.
ROLES = ("server", "client", "load")

# (unit, function name) -> units that one function may import, beyond the table.
FUNCTION_EXCEPTIONS: dict[tuple[str, str], set[str]] = {
    # App.run: a convenience entry point for scripts (``app.run(port=8443)``).
    ("app", "run"): {"deploy"},
}

# Modules outside the package each unit must never import.
FORBIDDEN_EXTERNAL: dict[str, set[str]] = {
    "errors": {"asyncio", "ssl", "socket", "h11"},
    "limits": {"asyncio", "ssl", "socket", "h11"},
    "headers": {"asyncio", "ssl", "socket", "h11"},
    "messages": {"ssl", "socket", "h11"},
    "files": {"ssl", "socket", "h11"},
    "staticfiles": {"ssl", "socket", "h11"},
    "middleware": {"ssl", "socket", "h11"},
    "accesslog": {"ssl", "socket", "h11"},
    "pki": {"asyncio", "ssl", "h11", "socket"},
    "tls": {"h11", "asyncio"},
    "http11": {"asyncio", "ssl", "socket"},
    "transport": {"ssl", "socket", "h11"},
    "routing": {"ssl", "socket", "h11", "asyncio"},
    "app": {"ssl", "socket", "h11", "asyncio"},
    "websocket": {"socket", "h11"},
    "asgi": {"ssl", "socket", "h11"},
    "load": {"h11"},
}

# Modules held to a rule of their own instead of their unit's.
FORBIDDEN_EXTERNAL_MODULE: dict[str, set[str]] = {
    # The development CA names itself after the machine (socket.gethostname); no network.
    "framework.pki.devca": {"asyncio", "ssl", "h11"},
}

# The one module that may touch h11's private attributes (``_full_items``, ``_process_event``):
# the driver, where the translation to our events happens.
H11_PRIVATE_ALLOWED = {"framework.http11.driver"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted: "framework.server.protocol"
    target: str  # dotted: a framework module ("framework.tls") or a top-level package ("ssl")
    is_framework: bool
    function: str | None  # the innermost enclosing function, or None at module level
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


MODULES = _modules()


def unit_of(module: str) -> str:
    """``framework.http11.driver`` -> ``http11``; the package itself is ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _collect(
    path: Path, module: str | None = None, modules: set[str] | None = None
) -> list[Import]:
    module = module or _module_name(path)
    known = set(MODULES) if modules is None else modules
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
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
                    found.append(_target(module, alias.name, function, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                found.extend(_from(module, package, child, function, known))
            visit(child, inner)

    visit(tree, None)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _target(module: str, name: str, function: str | None, line: int) -> Import:
    if name == PACKAGE or name.startswith(PACKAGE + "."):
        return Import(module, name, True, function, line)
    return Import(module, name.split(".")[0], False, function, line)


def _from(
    module: str, package: str, node: ast.ImportFrom, function: str | None, known: set[str]
) -> list[Import]:
    if node.level == 0:
        assert node.module is not None
        base = node.module
    else:
        parts = package.split(".")
        assert node.level <= len(parts), f"{module}: relative import beyond the package"
        base = ".".join(
            parts[: len(parts) - node.level + 1] + ([node.module] if node.module else [])
        )
    if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
        return [_target(module, base, function, node.lineno)]
    # ``from framework.pki import keys`` names a module when there is one by that name.
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.append(_target(module, sub if sub in known else base, function, node.lineno))
    return found


def _framework_imports() -> dict[str, list[Import]]:
    return {
        name: [i for i in _collect(path, name) if i.is_framework] for name, path in MODULES.items()
    }


def test_layering_every_unit_is_in_the_table() -> None:
    missing = sorted({unit_of(m) for m in MODULES} - set(ALLOWED))
    assert not missing, (
        f"{', '.join(missing)} not in tests/test_layering.py ALLOWED: add each new module or "
        "package to the table with the units it may import (its layer in docs/architecture.md)"
    )


def test_layering_table_names_only_existing_units() -> None:
    stale = set(ALLOWED) - {unit_of(m) for m in MODULES}
    assert not stale, f"ALLOWED lists units that do not exist: {sorted(stale)}"


def test_layering_table_is_acyclic() -> None:
    # Each unit's rank: one more than the highest unit it may import. A circle has no rank.
    ranks: dict[str, int] = {}

    def rank(unit: str, path: tuple[str, ...]) -> int:
        if unit in path:
            raise AssertionError("the layer table has a circle: " + " -> ".join((*path, unit)))
        if unit not in ranks:
            below = ALLOWED[unit]
            assert below is not None
            ranks[unit] = 1 + max((rank(u, (*path, unit)) for u in below), default=0)
        return ranks[unit]

    for unit, below in ALLOWED.items():
        if below is not None:
            rank(unit, ())
        assert unit not in (below or ()), f"{unit} lists itself"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layering_framework_imports_point_down(module: str) -> None:
    unit = unit_of(module)
    allowed = ALLOWED.get(unit, set())
    if allowed is None:
        return
    wrong = []
    for imp in _collect(MODULES[module], module):
        if not imp.is_framework:
            continue
        target = unit_of(imp.target)
        if target == unit or target in allowed:
            continue
        if imp.function and target in FUNCTION_EXCEPTIONS.get((unit, imp.function), set()):
            continue
        where = f"in {imp.function}()" if imp.function else "at module level"
        wrong.append(f"line {imp.line}: imports {imp.target} {where}")
    assert not wrong, f"{module} (unit {unit}) may import only {sorted(allowed)}:\n" + "\n".join(
        sorted(set(wrong))
    )


def _is_parent(a: str, b: str) -> bool:
    return b.startswith(a + ".")


def test_layering_no_import_circle_between_modules() -> None:
    # Every import counts (functions and TYPE_CHECKING blocks too), except a package importing
    # its own submodules to re-export them.
    graph = {
        name: {
            i.target
            for i in imports
            if i.target in MODULES
            and i.target != name
            and not _is_parent(name, i.target)
            and not _is_parent(i.target, name)
        }
        for name, imports in _framework_imports().items()
    }
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            walk(nxt, [*path, node])
        done.add(node)

    for name in sorted(graph):
        walk(name, [])


@pytest.mark.parametrize("module", [m for m in sorted(MODULES) if unit_of(m) in FORBIDDEN_EXTERNAL])
def test_layering_lower_layers_avoid_io_modules(module: str) -> None:
    forbidden = FORBIDDEN_EXTERNAL_MODULE.get(module, FORBIDDEN_EXTERNAL[unit_of(module)])
    wrong = [
        f"line {imp.line}: imports {imp.target}"
        for imp in _collect(MODULES[module], module)
        if not imp.is_framework and imp.target in forbidden
    ]
    assert not wrong, f"{module} must not import {sorted(forbidden)}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layering_h11_only_in_http11(module: str) -> None:
    if unit_of(module) == "http11":
        return
    wrong = [
        f"line {imp.line}"
        for imp in _collect(MODULES[module], module)
        if not imp.is_framework and imp.target == "h11"
    ]
    assert not wrong, f"{module} imports h11 ({', '.join(wrong)}); only framework.http11 may"


def _h11_private_names() -> set[str]:
    """Private (single underscore) names of h11's modules and classes, less any we define."""
    names: set[str] = set()
    modules = [h11, *(m for _, m in inspect.getmembers(h11, inspect.ismodule))]
    for mod in modules:
        for name, value in vars(mod).items():
            if name.startswith("_") and not name.startswith("__"):
                names.add(name)
            if inspect.isclass(value) and value.__module__.startswith("h11"):
                names |= {n for n in vars(value) if n.startswith("_") and not n.startswith("__")}
    ours: set[str] = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                ours.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                ours.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                ours.add(node.id)
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
            ):
                ours |= {
                    c.value
                    for c in ast.walk(node.value)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                }
    return names - ours


H11_PRIVATE = _h11_private_names()


def test_layering_h11_private_names_are_known() -> None:
    # The check below is only as good as this list: it must hold the names we know of.
    assert {"_full_items", "_process_event"} <= H11_PRIVATE


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layering_h11_private_attributes_only_in_the_driver(module: str) -> None:
    if module in H11_PRIVATE_ALLOWED:
        return
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    wrong = [
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in H11_PRIVATE
    ]
    wrong += [
        f"line {node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in ("_full_items", "_process_event")
    ]
    assert not wrong, f"{module} reaches into h11's private attributes:\n" + "\n".join(wrong)


def test_layering_roles_never_import_app_or_routing() -> None:
    for unit in ROLES:
        allowed = ALLOWED[unit]
        assert allowed is not None
        assert not allowed & {"app", "routing"}, unit


def test_layering_collector_sees_every_import_form(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import framework.tls\n"
        "from framework import pki\n"
        "from framework.server import Server\n"
        "from . import app\n"
        "from .routing import Route\n"
        "from ..errors import FrameworkError\n"
        "import ssl, os.path\n"
        "def late():\n"
        "    from ..deploy import run\n"
        "class C:\n"
        "    async def run(self):\n"
        "        import h11\n"
        "if TYPE_CHECKING:\n"
        "    from framework.pki import devca\n"
    )
    modules = {"framework", "framework.server", "framework.server.app", "framework.pki"}
    found = {
        (i.target, i.is_framework, i.function)
        for i in _collect(source, "framework.server.sample", modules)
    }
    assert found == {
        ("framework.tls", True, None),
        ("framework.pki", True, None),  # a module of that name: the module
        ("framework.server", True, None),
        ("framework.server.app", True, None),
        ("framework.server.routing", True, None),
        ("framework.errors", True, None),
        ("ssl", False, None),
        ("os", False, None),
        ("framework.deploy", True, "late"),
        ("h11", False, "run"),
        ("framework.pki", True, TYPE_CHECKING_BLOCK),
    }
