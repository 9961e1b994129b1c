"""Every Python block of the README and every example passes ``mypy --strict``."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def readme_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def as_module(block: str) -> str:
    # A block written as a REPL would run it (top-level await) is checked as a coroutine's body.
    if re.search(r"^(async with|async for|await |.*= await )", block, re.M):
        imports = [line for line in block.splitlines() if line.startswith(("from ", "import "))]
        body = [line for line in block.splitlines() if line not in imports]
        return (
            "\n".join(imports)
            + "\n\n\nasync def block() -> None:\n"
            + textwrap.indent("\n".join(body), "    ")
        )
    return block


@pytest.mark.slow
def test_readme_blocks_and_examples_pass_mypy_strict(tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 3
    files = []
    for index, block in enumerate(blocks):
        path = tmp_path / f"readme_block_{index}.py"
        path.write_text(as_module(block))
        files.append(str(path))
    files += [str(p) for p in sorted((REPO / "examples").glob("*.py"))]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            *files,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
