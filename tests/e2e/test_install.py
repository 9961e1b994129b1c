"""The README's install command in a fresh virtual environment, as a new user runs it.

After exactly that command, ``mypy --strict`` type-checks a user's file importing the package
(the editable install must be one static checkers follow), the ``framework`` script runs the
load tool, ``--plot`` without matplotlib (not a dependency) says how to install it, and the
README's "from an empty directory" sequence works in an empty directory outside the checkout.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e.serve_cli import SERVING, STARTUP_TIMEOUT, serve_cli

ROOT = Path(__file__).resolve().parents[2]

USER_FILE = """\
from framework import App, Request, Response

app = App()


@app.get("/users/{user_id:int}")
async def user(request: Request, user_id: int) -> dict[str, int]:
    return {"id": user_id}


@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), status=201)
"""

WRONG = """\
from framework import App

app = App()
port: str = app  # mypy must see App's type to refuse this
"""


def readme_install_command() -> list[str]:
    """The install half of the README's first command (``pip install -e . && ...``)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no sh block"
    first = block.group(1).splitlines()[0]
    install = first.split("&&")[0].strip()
    assert install.startswith("pip install -e "), first
    return shlex.split(install)


def readme_empty_directory_sequence() -> list[str]:
    """The cheat sheet's "from an empty directory" commands, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("# HTTPS as it really works, from an empty directory\n")
    block = text[start:].split("\n\n", 1)[0].splitlines()[1:]
    assert block, "the sequence is empty"
    return block


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_install_then_mypy_strict_and_the_load_tool(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = _clean_env(venv)
    _run(readme_install_command(), env, ROOT)  # exactly the README's command, in the checkout
    _run(["pip", "install", "-q", "mypy"], env, ROOT)
    user = tmp_path / "project"
    user.mkdir()
    (user / "app.py").write_text(USER_FILE)
    (user / "wrong.py").write_text(WRONG)
    out = _run(["mypy", "--strict", "--no-incremental", "app.py"], env, user)
    assert out.startswith("Success: no issues found in 1 source file"), out
    wrong = subprocess.run(
        ["mypy", "--strict", "--no-incremental", "wrong.py"],
        env=env,
        cwd=user,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert wrong.returncode == 1, wrong.stdout
    assert 'Incompatible types in assignment (expression has type "App"' in wrong.stdout
    # The load tool is installed with the package; matplotlib is not (framework[plot]).
    plot = subprocess.run(
        ["framework", "load", "https://localhost:1/", "--plot", "chart.png", "-d", "1s"],
        env=env,
        cwd=user,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert plot.returncode == 2
    assert plot.stderr.strip() == (
        "framework load: error: --plot needs matplotlib: pip install 'framework[plot]'"
    )
    assert not (user / "chart.png").exists()
    _run_empty_directory_sequence(venv, env, tmp_path / "empty")


def _run_empty_directory_sequence(venv: Path, env: dict[str, str], empty: Path) -> None:
    curl = require_tool("curl")
    empty.mkdir()
    env = {**env, "FRAMEWORK_HOME": str(empty.parent / "home")}
    commands = readme_empty_directory_sequence()
    serve = [c for c in commands if c.startswith("python -m framework serve ")]
    fetch = [c for c in commands if c.startswith("curl ")]
    assert len(serve) == 1
    assert len(fetch) == 1
    assert commands[-2:] == [serve[0], fetch[0]], "serve, then curl, end the sequence"
    for command in commands[:-2]:
        done = subprocess.run(
            ["bash", "-c", command], env=env, cwd=empty, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stderr}"
    args = shlex.split(serve[0].split("#")[0])[4:]
    # port 0: the README's 8443 may be taken on a shared machine
    with serve_cli(
        [*args, "--port", "0"], env=env, cwd=empty, python=str(venv / "bin" / "python")
    ) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        argv = shlex.split(fetch[0].split("#")[0].replace(":8443/", f":{port}/"))
        got = subprocess.run(
            [curl, "-sS", "--max-time", "10", *argv[1:]], cwd=empty, capture_output=True,
            text=True, timeout=30, check=False,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert got.stdout == "Hello, world!"
        # the installed load tool against the app just served, trusting the README's CA
        load = subprocess.run(
            ["framework", "load", f"https://localhost:{port}/", "--ca", "pki/ca.pem", "-c", "2",
             "-n", "200", "-w", "0s"],
            env=env, cwd=empty, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert load.returncode == 0, load.stderr
        assert "200 requests answered" in load.stdout
        assert "statuses 200: 200" in load.stdout
        assert running.stop() == 0
