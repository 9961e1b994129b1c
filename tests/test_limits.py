"""The limits module: every constant is used, documented, and shown in the README."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from framework import limits
from framework.cli import limits_table

ROOT = Path(__file__).resolve().parent.parent


def _constants() -> list[str]:
    tree = ast.parse(Path(limits.__file__).read_text())
    return [
        node.targets[0].id
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    ]


def test_limits_readme_table_matches_module() -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- limits:start -->\n(.*)\n<!-- limits:end -->", readme, re.S)
    assert found, "README.md lost its <!-- limits:start --> ... <!-- limits:end --> markers"
    assert found.group(1) == limits_table(), (
        "README's limits table is stale: paste the output of `python -m framework limits`"
    )


def test_limits_every_constant_has_a_precedent_comment() -> None:
    for row in limits_table().splitlines()[2:]:
        name, _, _, comment = row.strip("|").split("|")[:4]
        assert comment.strip(), f"{name.strip()} has no #: comment in limits.py"


def test_limits_every_server_setting_has_a_constant_and_a_serve_flag() -> None:
    import dataclasses

    from framework.cli import build_parser
    from framework.cli_limits import FLAGS
    from framework.server import ServerConfig

    # Not limits: switches and the operations settings (their flags are in cli_ops.py).
    settings = {"access_log", "h11_only", "access_log_format", "forwarded_allow_ips"}
    fields = {f.name for f in dataclasses.fields(ServerConfig)} - settings
    assert {field for field, _, _ in FLAGS.values()} == fields
    for constant, (field, flag, _) in FLAGS.items():
        assert getattr(ServerConfig(), field) == getattr(limits, constant), constant
        args = build_parser().parse_args(["serve", "m:app"])
        assert not hasattr(args, field), f"{flag} has a default of its own"
    assert "`max_body_bytes` / `--max-body-size`" in limits_table()


def test_limits_every_constant_is_used_by_the_package() -> None:
    sources = "\n".join(
        path.read_text() for path in (ROOT / "framework").rglob("*.py") if path.name != "limits.py"
    )
    unused = [name for name in _constants() if not re.search(rf"\b{name}\b", sources)]
    assert not unused, f"limits defined but never used: {unused}"
