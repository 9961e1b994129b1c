"""Every Python block of the README and every example passes ``mypy --strict``.

pytest modules (the testing section's) are checked strictly too, but for annotations on test
functions and fixtures, which pytest code leaves out by convention.
"""

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


def mypy(files: list[str], *flags: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *flags, "--cache-dir", str(cache), *files],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )


def _myapp(source: str) -> str:
    # The testing section's "myapp" is examples/testing/myapp.py, checked as that module.
    return re.sub(r"^from myapp import", "from examples.testing.myapp import", source, flags=re.M)


def is_test_module(source: str) -> bool:
    """A pytest module: its test functions take fixtures, which are untyped by convention."""
    return re.search(r"^(async )?def test_", source, re.M) is not None


@pytest.mark.slow
def test_readme_blocks_and_examples_pass_mypy_strict(tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 3
    apps: list[str] = []
    tests: list[str] = []
    for index, block in enumerate(blocks):
        path = tmp_path / f"readme_block_{index}.py"
        # The testing section's "myapp" is examples/testing/myapp.py, checked as that module.
        source = re.sub(
            r"^from myapp import", "from examples.testing.myapp import", block, flags=re.M
        )
        path.write_text(as_module(source))
        (tests if is_test_module(block) else apps).append(str(path))
    for path in sorted((REPO / "examples").rglob("*.py")):
        text = path.read_text()
        if "from myapp import" in text:  # run from its own directory; checked as above
            copy = tmp_path / f"example_{path.stem}.py"
            copy.write_text(_myapp(text))
            path = copy
        (tests if is_test_module(text) else apps).append(str(path))
    strict = mypy(apps, cache=tmp_path / "cache")
    assert strict.returncode == 0, strict.stdout + strict.stderr
    # Test modules: strict, except that fixtures and test functions may go unannotated.
    relaxed = mypy(
        tests, "--allow-untyped-defs", "--allow-untyped-calls", cache=tmp_path / "cache-tests"
    )
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
