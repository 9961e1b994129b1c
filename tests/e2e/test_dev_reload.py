"""``framework serve --reload``: an edit to the app's code is served by a new process.

The reloader is run as a user runs it, on an app in a directory of its own: the new code
answers after an edit, a broken edit leaves it waiting (and a fix brings the server back),
SIGTERM stops the server process and then the reloader with status 0.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TLSFiles
from tests.e2e.serve_cli import SERVING, STARTUP_TIMEOUT, environment, serve_cli

TIMEOUT = 10.0
STARTED = re.compile(r"reloader: started server process (\d+)")
RESTARTING = re.compile(r"reloader: app_module\.py changed; restarting")
EXITED = re.compile(r"reloader: the server exited with status 2; waiting for a change")
WATCHING = re.compile(r"reloader: watching \*\.py under (\S+) \((watchfiles|a stat poll)\)")

APP = """
from framework import App, Request

app = App()


@app.get("/")
async def hello(request: Request) -> str:
    return {answer!r}
"""


def write_app(directory: Path, answer: str) -> None:
    path = directory / "app_module.py"
    path.write_text(APP.format(answer=answer))


def get(port: int, tls_files: TLSFiles) -> bytes:
    """One GET / with Connection: close; the body."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        tls_files.client_context().wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        for _ in range(1000):
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.partition(b"\r\n\r\n")[2]


def gone(pid: int) -> bool:
    """True once process ``pid`` no longer exists (polled up to the timeout)."""
    deadline = time.monotonic() + TIMEOUT
    for _ in range(10_000):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # noqa: TID251 - the pace of a bounded poll, not a synchronisation
    return False


def test_reload_serves_the_new_code_after_an_edit(tls_files: TLSFiles, tmp_path: Path) -> None:
    app_dir = tmp_path / "project"
    app_dir.mkdir()
    write_app(app_dir, "version one")
    args = [
        "app_module:app", "--reload", "--port", "0", "--no-access-log",
        "--certfile", str(tls_files.server_cert), "--keyfile", str(tls_files.server_key),
    ]  # fmt: skip
    with serve_cli(args, env=environment(tmp_path / "home"), cwd=app_dir) as served:
        watching = served.wait_for(WATCHING, timeout=STARTUP_TIMEOUT)
        assert Path(watching.group(1)) == app_dir.resolve()
        first_pid = int(served.wait_for(STARTED).group(1))
        port = int(served.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        assert get(port, tls_files) == b"version one"

        mark = served.mark()
        write_app(app_dir, "version two, edited")
        served.wait_for(RESTARTING, after=mark)
        second_pid = int(served.wait_for(STARTED, after=mark).group(1))
        port = int(served.wait_for(SERVING, after=mark, timeout=STARTUP_TIMEOUT).group(1))
        assert get(port, tls_files) == b"version two, edited"
        assert second_pid != first_pid
        assert gone(first_pid)  # the old server was stopped, not left running

        mark = served.mark()
        (app_dir / "app_module.py").write_text("def broken(:\n")
        served.wait_for(EXITED, after=mark, timeout=STARTUP_TIMEOUT)
        mark = served.mark()
        write_app(app_dir, "version three, fixed")
        last_pid = int(served.wait_for(STARTED, after=mark).group(1))
        port = int(served.wait_for(SERVING, after=mark, timeout=STARTUP_TIMEOUT).group(1))
        assert get(port, tls_files) == b"version three, fixed"

        assert served.stop() == 0
        assert gone(last_pid)
    assert not any("Traceback" in line for line in served.rest())


def test_reload_with_a_module_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "framework", "serve", "no_such_module:app", "--reload"],
        cwd=tmp_path,
        env=environment(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "no module named 'no_such_module'" in lines[0]


def test_sigint_stops_the_reloader_and_its_server(tls_files: TLSFiles, tmp_path: Path) -> None:
    write_app(tmp_path, "hello")
    args = ["app_module:app", "--reload", "--port", "0"]
    with serve_cli(args, env=environment(tmp_path / "home"), cwd=tmp_path) as served:
        pid = int(served.wait_for(STARTED, timeout=STARTUP_TIMEOUT).group(1))
        served.wait_for(SERVING, timeout=STARTUP_TIMEOUT)
        served.process.send_signal(signal.SIGINT)  # Ctrl-C reaches the reloader only
        assert served.process.wait(timeout=STARTUP_TIMEOUT) == 0
        assert gone(pid)
