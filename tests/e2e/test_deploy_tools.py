"""The examples/deploy recipes under the real process manager and proxy they are written for.

supervisord (the Debian package) runs the example's program section: it starts, serves,
``supervisorctl stop`` drains a request in flight and the program exits 0, ``start`` and
``restart`` work, and a crashing worker is replaced while the service keeps answering. nginx
runs the example's front-proxy configuration over two instances: one of them stopped
gracefully under load loses no request.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.servers import free_port, wait_listening
from tests.conftest import TLSFiles, require_tool
from tests.e2e.deploy_helpers import STEP_TIMEOUT, Load, exchange, get, write_app
from tests.e2e.serve_cli import REPO, SERVING, environment, serve_cli
from tests.e2e.test_deploy_workers import tls_args

pytestmark = pytest.mark.tool

EXAMPLES = REPO / "examples" / "deploy"


def deadline_loop(what: str, timeout: float = STEP_TIMEOUT) -> Iterator[int]:
    """Yields until the caller breaks out; fails with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    for attempt in range(100_000):
        if time.monotonic() > deadline:
            break
        yield attempt
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


# --- supervisord ------------------------------------------------------------------------------


def supervisord_conf(tmp_path: Path, tls_files: TLSFiles, port: int) -> Path:
    """The example's program section, app, port and paths changed, under a private supervisord
    (the example's own sections use fixed paths in /tmp that parallel runs would share)."""
    example = (EXAMPLES / "supervisord.conf").read_text()
    program = example[example.index("\n[program:framework]") + 1 :]
    for old, new in [
        ("command=python -m framework", f"command={sys.executable} -m framework"),
        ("examples.hello:app", "deployapp:app"),
        ("127.0.0.1:8443", f"127.0.0.1:{port}"),
        ("--workers 2", f"--workers 2 {' '.join(tls_args(tls_files))}"),
        ("directory=%(here)s/../..", f"directory={tmp_path}"),
        ("/tmp/framework-app.log", str(tmp_path / "framework.log")),
    ]:
        assert old in program, old
        program = program.replace(old, new)
    home = f'FRAMEWORK_HOME="{tmp_path / "home"}",PYTHONPATH="{REPO}:{tmp_path}"'
    program += f"environment={home}\n"
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        f"""[unix_http_server]
file={tmp_path}/supervisor.sock

[supervisord]
nodaemon=true
logfile={tmp_path}/supervisord.log
pidfile={tmp_path}/supervisord.pid
childlogdir={tmp_path}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{tmp_path}/supervisor.sock

{program}"""
    )
    return conf


@contextmanager
def supervisord(conf: Path) -> Iterator[subprocess.Popen[bytes]]:
    tool = require_tool("supervisord")
    process = subprocess.Popen(
        [tool, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)  # supervisord stops its programs, then itself
        try:
            process.wait(timeout=STEP_TIMEOUT * 2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STEP_TIMEOUT)


def ctl(conf: Path, *args: str) -> str:
    out = subprocess.run(
        [require_tool("supervisorctl"), "-c", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT * 2,
        check=False,
    )
    return out.stdout


def running_pid(conf: Path) -> int:
    """The program's PID once supervisord reports it RUNNING and it answers."""
    for _ in deadline_loop("supervisord's program RUNNING"):
        found = re.search(r"RUNNING\s+pid (\d+)", ctl(conf, "status", "framework"))
        if found:
            return int(found.group(1))
        time.sleep(0.1)  # polling supervisorctl
    raise AssertionError("unreachable")


def answers(port: int, tls_files: TLSFiles) -> dict[str, object]:
    for _ in deadline_loop(f"an answer on port {port}"):
        try:
            return get(port, tls_files.ca_cert)
        except OSError:
            time.sleep(0.05)  # polling a server that is starting
    raise AssertionError("unreachable")


@pytest.mark.slow
def test_supervisord_runs_the_example_program(tls_files: TLSFiles, tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    port = free_port()
    conf = supervisord_conf(tmp_path, tls_files, port)
    log = tmp_path / "framework.log"
    with supervisord(conf):
        pid = running_pid(conf)
        answers(port, tls_files)

        # A crashing worker: framework's supervisor replaces it; supervisord sees nothing.
        assert exchange(port, tls_files.ca_cert, "/crash") == b""
        for _ in deadline_loop("the crashed worker's replacement"):
            if "exited unexpectedly (status 70)" in log.read_text():
                break
            time.sleep(0.05)  # polling the program's log
        served = {get(port, tls_files.ca_cert)["version"] for _ in range(40)}
        assert served == {"v1"}
        assert running_pid(conf) == pid

        # stop drains: a request in flight when supervisorctl stop is given still completes.
        started = tmp_path / "started"
        result: list[bytes] = []
        slow = threading.Thread(
            target=lambda: result.append(
                exchange(port, tls_files.ca_cert, f"/slow?seconds=1&started={started}")
            )
        )
        slow.start()
        for _ in deadline_loop("the slow request to start"):
            if started.exists():
                break
            time.sleep(0.01)  # polling the file the handler makes
        assert "framework: stopped" in ctl(conf, "stop", "framework")
        slow.join(timeout=STEP_TIMEOUT)
        assert result, "the in-flight request got nothing"
        assert result[0].startswith(b"HTTP/1.1 200"), result[0][:200]
        assert result[0].endswith(b"finished")
        assert b"connection: close" in result[0].lower()
        assert re.search(
            r"stopped: framework \(exit status 0\)", (tmp_path / "supervisord.log").read_text()
        )

        assert "framework: started" in ctl(conf, "start", "framework")
        first = running_pid(conf)
        answers(port, tls_files)
        assert "framework: started" in ctl(conf, "restart", "framework")
        second = running_pid(conf)
        assert second != first
        answers(port, tls_files)


# --- nginx ------------------------------------------------------------------------------------


def nginx_conf(tmp_path: Path, tls_files: TLSFiles, front: int, backends: list[int]) -> Path:
    """The example front-proxy configuration, ports and paths changed."""
    text = (EXAMPLES / "nginx.conf").read_text()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    temp = "".join(
        f"    {kind}_temp_path {prefix}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    for old, new in [
        ("worker_processes auto;", "worker_processes 1;"),
        ("/run/nginx-framework.pid", str(prefix / "nginx.pid")),
        ("/var/log/nginx/framework-error.log", str(prefix / "error.log")),
        ("/var/log/nginx/framework-access.log", str(prefix / "access.log")),
        ("server 127.0.0.1:8443", f"server 127.0.0.1:{backends[0]}"),
        ("server 127.0.0.1:8444", f"server 127.0.0.1:{backends[1]}"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{front} ssl;"),
        ("/etc/nginx/tls/site.pem", str(tls_files.server_cert)),
        ("/etc/nginx/tls/site.key", str(tls_files.server_key)),
        ("/etc/nginx/tls/framework-ca.pem", str(tls_files.ca_cert)),
        ("http {\n", "http {\n" + temp),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


@pytest.mark.slow
def test_nginx_over_two_instances_loses_nothing_when_one_stops(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    nginx = require_tool("nginx")
    write_app(tmp_path, "v1")
    backends = [free_port(), free_port()]
    front = free_port()
    conf = nginx_conf(tmp_path, tls_files, front, backends)
    env = environment(tmp_path / "home", tmp_path)
    args = ["deployapp:app", "--no-access-log", "--certfile", str(tls_files.server_cert)]
    args += ["--keyfile", str(tls_files.server_key)]
    with (
        serve_cli([*args, "--bind", f"127.0.0.1:{backends[0]}"], env=env, cwd=tmp_path) as one,
        serve_cli([*args, "--bind", f"127.0.0.1:{backends[1]}"], env=env, cwd=tmp_path) as two,
    ):
        one.wait_for(SERVING, timeout=STEP_TIMEOUT)
        two.wait_for(SERVING, timeout=STEP_TIMEOUT)
        proxy = subprocess.Popen(
            [nginx, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_listening(proxy, [front]), "nginx did not start"
            load = Load(f"https://localhost:{front}/", tls_files.ca_cert).start()
            try:
                load.wait_for(300)
                assert load.pids.keys() == {one.process.pid, two.process.pid}, load.pids
                assert one.stop() == 0  # SIGTERM: drain
                load.wait_for(300)
            finally:
                load.stop()
        finally:
            proxy.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                proxy.wait(timeout=STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait(timeout=STEP_TIMEOUT)
    assert not load.failures, load.failures[:5]
