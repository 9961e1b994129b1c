"""systemd's protocols with the real ``systemd-socket-activate``, and the other ways to listen.

Socket activation (the server takes fd 3 instead of binding), the readiness notifications in
order (READY=1, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1), the watchdog, and
``--fd``, ``--uds``, ``--bind`` on IPv6 and ``--pid-file``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.servers import free_port
from tests.conftest import TLSFiles, require_tool
from tests.e2e.deploy_helpers import STEP_TIMEOUT, NotifyListener, get, write_app
from tests.e2e.serve_cli import REPO, SERVING, environment, serve_cli
from tests.e2e.test_deploy_workers import WORKERS_SERVING, tls_args

LISTENING = r"framework: listening on (.*)"


@contextmanager
def notify_socket(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        yield listener
    finally:
        listener.close()


@contextmanager
def socket_activated(
    tmp_path: Path, tls_files: TLSFiles, port: int, notify: Path, *extra: str
) -> Iterator[subprocess.Popen[str]]:
    """``systemd-socket-activate`` listening on ``port``, running ``framework serve``."""
    tool = require_tool("systemd-socket-activate")
    home = tmp_path / "home"
    command = [tool, "-l", f"127.0.0.1:{port}", "--fdname=https"]
    # systemd-socket-activate passes on only the variables it is told to (as systemd does).
    for name, value in [
        ("PYTHONPATH", f"{REPO}{os.pathsep}{tmp_path}"),
        ("FRAMEWORK_HOME", str(home)),
        ("NOTIFY_SOCKET", str(notify)),
        ("WATCHDOG_USEC", "2000000"),  # a ping at least every second
    ]:
        command += ["-E", f"{name}={value}"]
    command += [sys.executable, "-m", "framework", "serve", "deployapp:app"]
    command += ["--no-access-log", *tls_args(tls_files), *extra]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STEP_TIMEOUT)
        assert process.stderr is not None
        process.stderr.close()


def wait_listening(port: int, process: subprocess.Popen[str]) -> None:
    """Until ``systemd-socket-activate`` listens (it binds before it starts the server)."""
    for _ in range(500):
        assert process.poll() is None, "systemd-socket-activate exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            try:
                process.wait(timeout=0.02)  # a bounded wait for the tool to bind
            except subprocess.TimeoutExpired:
                pass
            continue
        return
    raise AssertionError("systemd-socket-activate never listened")


@pytest.mark.tool
def test_socket_activation_serves_and_notifies_ready_reloading_stopping(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    write_app(tmp_path, "v1")
    port = free_port()
    with (
        notify_socket(tmp_path) as notify,
        socket_activated(tmp_path, tls_files, port, notify.path) as process,
    ):
        # The first connection makes the tool start the server, which takes fd 3 (the port is
        # the tool's: binding it would fail) and answers this very connection.
        answer = get_when_listening(port, tls_files, process)
        assert answer["pid"] == process.pid  # the tool execs the server in its own process
        ready = notify.next("READY")
        assert ready["STATUS"].startswith("1 worker, "), ready
        process.send_signal(signal.SIGHUP)
        reloading = notify.next("RELOADING")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert notify.next("READY")["READY"] == "1"
        assert get(port, tls_files.ca_cert)["version"] == "v1"
        process.send_signal(signal.SIGTERM)
        assert notify.next("STOPPING")["STOPPING"] == "1"
        assert process.wait(timeout=STEP_TIMEOUT) == 0
    order = [key for m in notify.messages for key in ("READY", "RELOADING", "STOPPING") if key in m]
    assert order == ["READY", "RELOADING", "READY", "STOPPING"], notify.messages


def get_when_listening(
    port: int, tls_files: TLSFiles, process: subprocess.Popen[str]
) -> dict[str, object]:
    wait_listening(port, process)
    return get(port, tls_files.ca_cert)


@pytest.mark.tool
def test_socket_activation_with_two_workers_is_ready_once_both_serve(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    write_app(tmp_path, "v1")
    port = free_port()
    with (
        notify_socket(tmp_path) as notify,
        socket_activated(tmp_path, tls_files, port, notify.path, "--workers", "2") as process,
    ):
        wait_listening(port, process)
        # The activated socket is shared by both workers: new connections reach each of them.
        first = get(port, tls_files.ca_cert)
        ready = notify.next("READY")
        assert ready["STATUS"].startswith("2 workers, "), ready
        # The supervisor pings for its workers while both send it heartbeats.
        assert notify.next("WATCHDOG")["WATCHDOG"] == "1"
        pids = {first["pid"]} | {get(port, tls_files.ca_cert)["pid"] for _ in range(60)}
        assert process.pid not in pids  # the supervisor itself serves nothing
        process.send_signal(signal.SIGHUP)
        notify.next("RELOADING")
        assert notify.next("READY")["READY"] == "1"  # after both workers reloaded
        process.send_signal(signal.SIGTERM)
        notify.next("STOPPING")
        assert process.wait(timeout=STEP_TIMEOUT) == 0


def test_watchdog_pings_at_half_the_period(tls_files: TLSFiles, tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    env = environment(tmp_path / "home", tmp_path)
    with notify_socket(tmp_path) as notify:
        env["NOTIFY_SOCKET"] = str(notify.path)
        env["WATCHDOG_USEC"] = "400000"  # 0.4 s: a ping every 0.2 s
        args = ["deployapp:app", "--bind", "127.0.0.1:0", *tls_args(tls_files)]
        with serve_cli(args, env=env, cwd=tmp_path) as served:
            served.wait_for(SERVING, timeout=STEP_TIMEOUT)
            notify.next("READY")
            pings = [notify.next("WATCHDOG") for _ in range(3)]
            assert all(p["WATCHDOG"] == "1" for p in pings)
            assert served.stop() == 0


def test_an_inherited_socket_with_fd(tls_files: TLSFiles, tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.set_inheritable(True)
    fd = listener.fileno()
    process = subprocess.Popen(
        [sys.executable, "-m", "framework", "serve", "deployapp:app", "--fd", str(fd)]
        + tls_args(tls_files),
        cwd=tmp_path,
        env=environment(tmp_path / "home", tmp_path),
        pass_fds=[fd],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        listener.close()  # the server's copy is the one that listens now
        assert process.stderr is not None
        first = process.stderr.readline()
        assert f"https://localhost:{port}/" in first, first
        assert get(port, tls_files.ca_cert)["pid"] == process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STEP_TIMEOUT) == 0
        assert process.stderr is not None
        process.stderr.close()


def test_unix_socket_ipv6_bind_and_pid_file(tls_files: TLSFiles, tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    write_app(tmp_path, "v1")
    path, pid_file = tmp_path / "app.sock", tmp_path / "app.pid"
    args = ["deployapp:app", "--bind", "[::1]:0", "--uds", str(path), "--uds-mode", "600"]
    args += ["--pid-file", str(pid_file), *tls_args(tls_files)]
    env = environment(tmp_path / "home", tmp_path)
    with serve_cli(args, env=env, cwd=tmp_path) as served:
        port = int(served.wait_for(SERVING, timeout=STEP_TIMEOUT).group(1))
        listening = served.wait_for(re.compile(LISTENING)).group(1)
        assert f"[::1]:{port}" in listening, listening
        assert f"unix:{path}" in listening, listening
        assert pid_file.read_text() == f"{served.process.pid}\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert get(port, tls_files.ca_cert, host="::1")["pid"] == served.process.pid
        ctx = ssl.create_default_context(cafile=str(tls_files.ca_cert))
        raw = socket.socket(socket.AF_UNIX)
        raw.settimeout(STEP_TIMEOUT)
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.connect(str(path))
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 200")
        assert served.stop() == 0
    assert not pid_file.exists()
    assert not path.exists()


def test_workers_pid_file_names_the_supervisor(tls_files: TLSFiles, tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    pid_file = tmp_path / "app.pid"
    args = ["deployapp:app", "--bind", "127.0.0.1:0", "--workers", "2"]
    args += ["--pid-file", str(pid_file), *tls_args(tls_files)]
    env = environment(tmp_path / "home", tmp_path)
    with serve_cli(args, env=env, cwd=tmp_path) as served:
        served.wait_for(WORKERS_SERVING, timeout=STEP_TIMEOUT)
        assert pid_file.read_text() == f"{served.process.pid}\n"
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        assert served.process.wait(timeout=STEP_TIMEOUT) == 0
    assert not pid_file.exists()
