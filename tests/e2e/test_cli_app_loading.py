"""``framework serve MODULE:ATTR`` finding the user's app: their traceback when their module is
broken (their frames only), and ``--factory`` for ``create_app()`` functions."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e.serve_cli import SERVING, STARTUP_TIMEOUT, environment, serve_cli

BROKEN = """\
from framework import App

app = App()


def helper():
    return undefined_name


helper()
"""

FACTORY = """\
from framework import App


def create_app() -> App:
    app = App()

    @app.get("/")
    async def hello(request):
        return "made by a factory"

    return app


def needs_arguments(config):
    return App()
"""


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framework", "serve", *args, "--port", "0"],
        env=environment(tmp_path / "home", tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_broken_module_shows_its_traceback_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN)
    result = _serve(tmp_path, "broken:app")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "framework: error: importing 'broken' failed: NameError: name 'undefined_name' is not "
        "defined"
    )
    assert lines[1] == "Traceback (most recent call last):"
    broken = str(tmp_path / "broken.py")
    assert f'  File "{broken}", line 10, in <module>' in lines
    assert f'  File "{broken}", line 7, in helper' in lines
    assert lines[-1] == "NameError: name 'undefined_name' is not defined"
    # the user's frames only: not importlib's, not the framework's
    assert "importlib" not in result.stderr
    assert "framework/cli.py" not in result.stderr


def test_a_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    (tmp_path / "syn.py").write_text("x = 1\ny = (\n")
    result = _serve(tmp_path, "syn:app")
    assert result.returncode == 2
    assert result.stderr.startswith("framework: error: importing 'syn' failed: SyntaxError: ")
    assert f'  File "{tmp_path / "syn.py"}", line 2' in result.stderr.splitlines()


def test_factory_serves_what_the_function_returns(tmp_path: Path) -> None:
    curl = require_tool("curl")
    (tmp_path / "factory.py").write_text(FACTORY)
    env = environment(tmp_path / "home", tmp_path)
    args = ["factory:create_app", "--factory", "--port", "0"]
    with serve_cli(args, env=env, cwd=tmp_path) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        ca = tmp_path / "home" / "dev-ca" / "ca.pem"
        got = subprocess.run(
            [curl, "-sS", "--max-time", "10", "--cacert", str(ca), f"https://localhost:{port}/"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert got.returncode == 0, got.stderr
        assert got.stdout == "made by a factory"
        assert running.stop() == 0


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("factory:needs_arguments", "--factory calls factory:needs_arguments() with no arguments"),
        ("factory:FACTORY_VALUE", "factory:FACTORY_VALUE() returned a str, not an app"),
    ],
)
def test_factory_mistakes_are_one_line(tmp_path: Path, spec: str, words: str) -> None:
    source = FACTORY + textwrap.dedent("""
        def FACTORY_VALUE():
            return "not an app"
    """)
    (tmp_path / "factory.py").write_text(source)
    result = _serve(tmp_path, spec, "--factory")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert re.match(r"framework: error: ", result.stderr)
    assert words in result.stderr


def test_a_factory_without_the_flag_says_to_pass_it(tmp_path: Path) -> None:
    (tmp_path / "factory.py").write_text(FACTORY)
    result = _serve(tmp_path, "factory:create_app")
    assert result.returncode == 2
    assert result.stderr == (
        "framework: error: factory:create_app takes no arguments, so it is not an app; if it "
        "makes one (create_app()), pass --factory\n"
    )
