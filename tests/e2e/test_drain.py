"""SIGTERM drains ``framework serve``: no accepted request is lost, and nothing makes it hang.

Under a real load generator on kept-alive connections, every request written on a connection
the server accepted gets a complete answer (counted by ``benchmarks.drain``, with uvicorn
measured the same way for comparison); a request whose head has begun to arrive is answered
with ``Connection: close``; connections waiting in the backlog are served; stalled clients and
endless streams are cut at ``--graceful-timeout`` and the process still exits 0.
"""

from __future__ import annotations

import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from benchmarks.drain import measure_once
from tests.conftest import TLSFiles, require_tool
from tests.e2e.drain_app import BIG
from tests.e2e.serve_cli import REPO, Served, environment
from tests.e2e.test_asgi_uvicorn import require_module
from tests.e2e.test_mtls import serving

APP = "tests.e2e.drain_app:app"
TIMEOUT = 10.0
GRACEFUL = 2.0
#: What exiting "within the graceful timeout" may take beyond it: the interpreter's exit.
EXIT_MARGIN = 3.0
RUNS = 3
STOPPING = re.compile(r"stopping: finishing in-flight requests")
SLOW_STARTED = re.compile(r"slow request started")
STILL_RUNNING = re.compile(r"request still running after")


@contextmanager
def drain_server(tls_files: TLSFiles, home: Path, *args: str) -> Iterator[Served]:
    with serving(
        APP,
        "--certfile", str(tls_files.server_cert),
        "--keyfile", str(tls_files.server_key),
        "--graceful-timeout", f"{GRACEFUL:g}",
        *args,
        home=home,
    ) as served:  # fmt: skip
        yield served


@contextmanager
def tls_connection(port: int, tls_files: TLSFiles, **options: int) -> Iterator[ssl.SSLSocket]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    for name, value in options.items():
        raw.setsockopt(socket.SOL_SOCKET, getattr(socket, name), value)
    with tls_files.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
        yield tls


def read_response(sock: ssl.SSLSocket) -> bytes:
    """Everything until the server closes (the tests ask for Connection: close answers)."""
    data = bytearray()
    for _ in range(1_000_000):
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk
    raise AssertionError("the response never ended")


def read_until_cut(sock: ssl.SSLSocket) -> bytes:
    """What arrives until the connection ends, cleanly or not."""
    data = b""
    try:
        for _ in range(1_000_000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ssl.SSLError, ConnectionError):
        pass
    return data


def stop_and_time(served: Served, signum: int = signal.SIGTERM) -> tuple[int, float]:
    started = time.monotonic()
    served.process.send_signal(signum)
    code = served.process.wait(timeout=GRACEFUL + TIMEOUT)
    return code, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["load", "wrk"])
def test_sigterm_under_load_loses_no_accepted_request_unlike_uvicorn(
    tool: str,
    tls_files: TLSFiles,
    record_property: pytest.RecordProperty,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_module("uvicorn")
    if tool == "wrk":
        require_tool("wrk")
    cert, key, ca = tls_files.server_cert, tls_files.server_key, tls_files.ca_cert
    options: dict[str, Any] = {"duration": 3.0, "graceful": GRACEFUL, "tool": tool}
    ours = [measure_once("ours", cert, key, ca, **options) for _ in range(RUNS)]
    theirs = [measure_once("uvicorn", cert, key, ca, **options) for _ in range(RUNS)]
    record_property("lost_ours", [r.lost for r in ours])
    record_property("lost_uvicorn", [r.lost for r in theirs])
    with capsys.disabled():
        print(
            f"\nlost per SIGTERM under {tool}: ours {[r.lost for r in ours]} of "
            f"{sum(r.answered for r in ours)} answered; uvicorn {[r.lost for r in theirs]} of "
            f"{sum(r.answered for r in theirs)}"
        )
    for run in ours:
        assert run.answered > 1000, run  # the load was flowing when the signal came
        assert run.lost == 0, run
        assert run.exit_code == 0, run.stderr[-5:]
        assert run.exit_seconds < GRACEFUL, run.exit_seconds
    assert all(run.answered > 1000 for run in theirs)  # the comparison measured something


def test_sigterm_answers_a_request_whose_head_had_begun_to_arrive(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    with drain_server(tls_files, tmp_path) as served:
        with tls_connection(served.port, tls_files) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: loc")
            # The server has read those bytes once its TLS layer answers on this connection;
            # a request on a second connection proves the loop has gone round since.
            with tls_connection(served.port, tls_files) as other:
                other.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert other.recv(65536).startswith(b"HTTP/1.1 200")
            mark = served.mark()
            served.process.send_signal(signal.SIGTERM)
            served.wait_for(STOPPING, after=mark)
            sock.sendall(b"alhost\r\n\r\n")
            answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"\r\nconnection: close\r\n" in answer.lower()
        assert answer.endswith(b"Hello, world!")
        assert served.process.wait(timeout=GRACEFUL + TIMEOUT) == 0


def test_sigterm_answers_pipelined_requests_already_received(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    with drain_server(tls_files, tmp_path) as served:
        with tls_connection(served.port, tls_files) as sock:
            mark = served.mark()
            sock.sendall(
                b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
            )
            served.wait_for(SLOW_STARTED, after=mark)
            served.process.send_signal(signal.SIGTERM)
            served.wait_for(STOPPING, after=mark)
            answers = read_response(sock)
        first, second = answers.split(b"HTTP/1.1 ")[1:]
        assert first.startswith(b"200")
        assert first.endswith(b"slept")
        assert b"\r\nconnection: close\r\n" not in first.lower()  # the second was waiting
        assert second.startswith(b"200")
        assert second.endswith(b"Hello, world!")
        assert b"\r\nconnection: close\r\n" in second.lower()
        assert served.process.wait(timeout=GRACEFUL + TIMEOUT) == 0


def test_sigterm_serves_the_connections_waiting_in_the_backlog(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    # At --max-connections 1 a second connection waits in the kernel's backlog, connected but
    # not accepted; closing the listening socket then would reset it.
    with drain_server(tls_files, tmp_path, "--max-connections", "1") as served:
        with tls_connection(served.port, tls_files) as first:
            first.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert first.recv(65536).startswith(b"HTTP/1.1 200")
            waiting = socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT)
            context = tls_files.client_context()
            with context.wrap_socket(
                waiting, server_hostname="localhost", do_handshake_on_connect=False
            ) as tls:
                tls.setblocking(False)
                with pytest.raises(ssl.SSLWantReadError):
                    tls.do_handshake()  # the ClientHello is sent; nobody answers yet
                mark = served.mark()
                served.process.send_signal(signal.SIGTERM)
                served.wait_for(STOPPING, after=mark)
                tls.settimeout(TIMEOUT)
                tls.do_handshake()
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                answer = read_response(tls)
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"\r\nconnection: close\r\n" in answer.lower()
        assert served.process.wait(timeout=GRACEFUL + TIMEOUT) == 0


def test_drain_does_not_hang_on_stalled_clients(tls_files: TLSFiles, tmp_path: Path) -> None:
    with drain_server(tls_files, tmp_path, "--head-timeout", "60") as served:
        port = served.port
        with (
            tls_connection(port, tls_files) as idle,
            tls_connection(port, tls_files) as half_head,
            tls_connection(port, tls_files, SO_RCVBUF=4096) as not_reading,
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as no_handshake,
        ):
            half_head.sendall(b"GET / HTTP/1.1\r\nHo")  # and never the rest
            not_reading.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert not_reading.recv(1).startswith(b"H")  # the 64 MiB answer has begun
            code, seconds = stop_and_time(served)
            del idle, no_handshake
        assert code == 0, served.rest()[-5:]
        assert seconds < GRACEFUL + EXIT_MARGIN, seconds
        assert any(STILL_RUNNING.search(line) for line in served.rest())


def test_drain_cuts_an_endless_stream_at_the_graceful_timeout(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    with drain_server(tls_files, tmp_path) as served:
        with tls_connection(served.port, tls_files) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert b"tick 0" in sock.recv(65536) + sock.recv(65536)
            mark = served.mark()
            started = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            served.wait_for(STOPPING, after=mark)
            code, _ = stop_and_time(served)  # a second SIGTERM does not cut the drain short
            seconds = time.monotonic() - started
            received = read_until_cut(sock)
            assert b"tick " in received
            assert not received.endswith(b"0\r\n\r\n")  # cut: no last chunk
    assert code == 0
    assert GRACEFUL * 0.9 < seconds < GRACEFUL + EXIT_MARGIN, seconds
    assert any("SIGTERM again: still stopping" in line for line in served.rest())


def test_a_second_sigint_stops_at_once(tls_files: TLSFiles, tmp_path: Path) -> None:
    with drain_server(tls_files, tmp_path, "--graceful-timeout", "60") as served:
        with tls_connection(served.port, tls_files) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert sock.recv(65536)
            mark = served.mark()
            served.process.send_signal(signal.SIGINT)
            served.wait_for(STOPPING, after=mark)
            code, seconds = stop_and_time(served, signal.SIGINT)
    assert code != 0
    assert seconds < EXIT_MARGIN, seconds


def test_a_bad_graceful_timeout_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "framework", "serve", APP, "--graceful-timeout", "soon"],
        cwd=REPO,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "--graceful-timeout must be seconds (0 or more), e.g. 10 or 0.5, not 'soon'" in line


def test_a_large_response_in_flight_is_delivered_whole(tls_files: TLSFiles, tmp_path: Path) -> None:
    with drain_server(tls_files, tmp_path, "--graceful-timeout", "20") as served:
        with tls_connection(served.port, tls_files, SO_RCVBUF=65536) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
            received = sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200")  # the answer is under way
            mark = served.mark()
            served.process.send_signal(signal.SIGTERM)
            served.wait_for(STOPPING, after=mark)
            received += read_response(sock)  # then the server closes: this request was its last
        assert served.process.wait(timeout=20 + TIMEOUT) == 0
    body = received.partition(b"\r\n\r\n")[2]
    assert len(body) == len(BIG)
