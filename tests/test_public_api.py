"""The declared public surface: ``framework.__all__``, docstrings, ``py.typed``."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import framework

PACKAGE_NAME = "framework"
SOURCE = Path(framework.__file__).resolve().parent


def _public_modules() -> list[str]:
    """Dotted names below the package (``client.pool``), with ``__init__`` for the package."""
    names = []
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            names.append(".".join(parts) or "__init__")
    return sorted(names)


PUBLIC_MODULES = _public_modules()


def test_public_api_all_is_sorted_and_unique() -> None:
    names = list(framework.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", framework.__all__)
def test_public_api_name_exists_and_has_a_docstring(name: str) -> None:
    obj = getattr(framework, name)
    namespace: dict[str, object] = {}
    exec(f"from framework import {name}", namespace)
    assert namespace[name] is obj
    if inspect.isclass(obj) or inspect.isfunction(obj):
        doc = inspect.getdoc(obj)
        assert doc, f"framework.{name} has no docstring"
        assert doc.strip(), f"framework.{name} has an empty docstring"
        assert obj.__doc__, f"framework.{name} inherits its docstring; give it its own"


def test_public_api_every_public_class_exported() -> None:
    # Public classes and functions defined in the package's top-level namespace are in __all__.
    exported = set(framework.__all__)
    for name, obj in vars(framework).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        assert name in exported, f"framework.{name} is importable but not in __all__"


def test_public_api_py_typed_present() -> None:
    assert (SOURCE / "py.typed").is_file()


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_api_module_has_a_docstring(module: str) -> None:
    name = PACKAGE_NAME if module == "__init__" else f"{PACKAGE_NAME}.{module}"
    loaded = importlib.import_module(name)
    assert loaded.__doc__, f"{name} has no module docstring"
    assert loaded.__doc__.strip(), f"{name} has an empty module docstring"


@pytest.mark.parametrize("module", [m for m in PUBLIC_MODULES if m != "__init__"])
def test_public_api_module_all_names_exist(module: str) -> None:
    loaded = importlib.import_module(f"{PACKAGE_NAME}.{module}")
    for name in getattr(loaded, "__all__", ()):
        assert hasattr(loaded, name), f"{loaded.__name__}.__all__ names missing {name!r}"
