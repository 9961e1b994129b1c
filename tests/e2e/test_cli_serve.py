"""``python -m framework serve`` as a user runs it: the development CA, curl, signals, mistakes."""

from __future__ import annotations

import re
import shlex
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TLSFiles, require_tool
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, environment, serve_cli

HOOKS_APP = '''
"""An app whose lifecycle hooks leave marks in a file beside it."""
from pathlib import Path

from framework import App, Request

app = App()
LOG = Path(__file__).with_name("hooks.log")


def mark(word: str) -> None:
    with LOG.open("a") as file:
        file.write(word + "\\n")


@app.on_startup
async def up() -> None:
    mark("startup")


@app.on_shutdown
async def down() -> None:
    mark("shutdown")


@app.get("/")
async def hello(request: Request) -> str:
    return "hello from the hooks app"
'''


def test_cli_serve_dev_ca_and_the_printed_curl_line(tmp_path: Path) -> None:
    curl = require_tool("curl")
    home = tmp_path / "home"
    env = environment(home)
    with serve_cli(["examples.hello:app", "--port", "0"], env=env, cwd=tmp_path) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        assert port > 0
        try_it = running.wait_for(re.compile(r"framework: try it: (curl .*)$"), timeout=5)
        command = shlex.split(try_it.group(1))
        assert command[:2] == ["curl", "--cacert"]
        ca_cert = Path(command[2])
        assert ca_cert == home / "dev-ca" / "ca.pem"
        assert command[3] == f"https://localhost:{port}/"
        key_mode = stat.S_IMODE((home / "dev-ca" / "ca.key").stat().st_mode)
        assert key_mode == 0o600, oct(key_mode)
        result = subprocess.run(
            [curl, "--silent", "--show-error", "--max-time", "10", *command[1:]],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Hello, world!"
        assert running.stop() == 0
        assert not any("Traceback" in line for line in running.rest())


def test_cli_serve_sigterm_runs_shutdown_hooks_and_exits_0(
    tmp_path: Path, tls_files: TLSFiles
) -> None:
    (tmp_path / "hooks_app.py").write_text(HOOKS_APP)
    args = [
        "hooks_app:app",
        "--port",
        "0",
        "--certfile",
        str(tls_files.server_cert),
        "--keyfile",
        str(tls_files.server_key),
        "--loop",
        "asyncio",
    ]
    with serve_cli(args, env=environment(tmp_path / "home"), cwd=tmp_path) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        assert (tmp_path / "hooks.log").read_text() == "startup\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # it listens
        assert running.stop() == 0
        lines = running.rest()
    assert (tmp_path / "hooks.log").read_text() == "startup\nshutdown\n"
    assert not any("Traceback" in line for line in lines)
    assert not (tmp_path / "home").exists()  # given a certificate, no development CA is made


def test_cli_certs_dev_ca_prints_an_existing_path(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "framework", "certs", "dev-ca"],
        env=environment(tmp_path / "home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.is_file()
    assert path == tmp_path / "home" / "dev-ca" / "ca.pem"
    assert path.read_text().startswith("-----BEGIN CERTIFICATE-----")


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def bad_inputs(tls_files: TLSFiles, tmp_path: Path, busy_port: int) -> dict[str, list[str]]:
    cert = ["--certfile", str(tls_files.server_cert), "--keyfile", str(tls_files.server_key)]
    return {
        "unknown option": ["serve", "examples.hello:app", "--no-such-option"],
        "no such module": ["serve", "nosuchmodule:app"],
        "no such attribute": ["serve", "examples.hello:nope"],
        "no colon": ["serve", "examples.hello"],
        "mismatched key": [
            "serve",
            "examples.hello:app",
            "--certfile",
            str(tls_files.server_cert),
            "--keyfile",
            str(tls_files.client_key),
        ],
        "missing certfile": [
            "serve",
            "examples.hello:app",
            "--certfile",
            str(tmp_path / "missing.pem"),
            "--keyfile",
            str(tls_files.server_key),
        ],
        "certfile is a directory": [
            "serve",
            "examples.hello:app",
            "--certfile",
            str(tmp_path),
            "--keyfile",
            str(tls_files.server_key),
        ],
        "port in use": ["serve", "examples.hello:app", "--port", str(busy_port), *cert],
        "port not a number": ["serve", "examples.hello:app", "--port", "abc"],
        "keyfile without certfile": [
            "serve",
            "examples.hello:app",
            "--keyfile",
            str(tls_files.server_key),
        ],
        "negative timeout": ["serve", "examples.hello:app", "--body-timeout", "-1"],
        "size not a size": ["serve", "examples.hello:app", "--max-body-size", "lots"],
        "count not a number": ["serve", "examples.hello:app", "--max-connections", "1.5"],
        "unlimited where a limit is needed": [
            "serve",
            "examples.hello:app",
            "--max-connections",
            "unlimited",
        ],
    }


CASES = [
    ("unknown option", "--no-such-option"),
    ("no such module", "nosuchmodule"),
    ("no such attribute", "'nope'"),
    ("no colon", "MODULE:ATTR"),
    ("mismatched key", "does not match"),
    ("missing certfile", "missing.pem"),
    ("certfile is a directory", "framework: error:"),
    ("port in use", "already in use"),
    ("port not a number", "port must be a number, not 'abc'"),
    ("keyfile without certfile", "--keyfile was given without --certfile"),
    ("negative timeout", "--body-timeout: expected a positive number of seconds, not '-1'"),
    ("size not a size", "--max-body-size: expected a positive size in bytes"),
    ("count not a number", "--max-connections: expected a whole number, not '1.5'"),
    ("unlimited where a limit is needed", "expected a whole number, not 'unlimited'"),
]


@pytest.mark.parametrize(("case", "words"), CASES, ids=[c for c, _ in CASES])
def test_cli_serve_bad_input_is_one_line_and_exit_2(
    case: str, words: str, tls_files: TLSFiles, tmp_path: Path, busy_port: int
) -> None:
    args = bad_inputs(tls_files, tmp_path, busy_port)[case]
    result = subprocess.run(
        [sys.executable, "-m", "framework", *args],
        env=environment(tmp_path / "home"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert re.match(r"framework( serve)?: error: ", lines[0]), lines[0]
    assert words in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
