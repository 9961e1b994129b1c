"""Malformed and hostile requests over real TLS: answered, closed cleanly, never dispatched.

The catalogue (tests/hostile_cases.py) is sent with raw TLS sockets to a running server. Each
case must get exactly one response with the expected status and its reason phrase, then a TLS
close_notify, and the app must never see it: after each case a good request on a new
connection is answered, and the app's log of calls must hold that request alone (a request
dispatched by mistake would have been logged before it: the server's loop runs tasks in the
order they are made).
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from http import HTTPStatus

import pytest

from framework import App, Request, Response
from framework.server import Server
from tests.conftest import TLSFiles, serve_in_thread
from tests.e2e.test_server import assert_clean_close, raw_tls
from tests.hostile_cases import CASES, get, post

CHUNK = 65536


class Recorder:
    """The app under test, logging every request it is called for."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()
        app = self.app = App()

        @app.get("/x")
        async def get_x(request: Request) -> str:
            return "x"

        @app.post("/x")
        async def post_x(request: Request) -> str:
            return str(len(await request.body()))

        @app.get("/echo-path")
        async def echo_path(request: Request) -> str:
            return request.path

    async def __call__(self, request: Request) -> Response:
        with self.lock:
            self.calls.append(f"{request.method} {request.path}")
        return await self.app(request)

    def take(self) -> list[str]:
        with self.lock:
            calls, self.calls = self.calls, []
        return calls


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module", params=["plain", "h11"])
def server(
    request: pytest.FixtureRequest, tls_files: TLSFiles, recorder: Recorder
) -> Iterator[Server]:
    with serve_in_thread(recorder, tls_files, h11_only=request.param == "h11") as server:
        yield server


def exchange(server: Server, tls_files: TLSFiles, data: bytes) -> bytes:
    """Send ``data``, read until the server closes (cleanly: an unclean close raises)."""
    with raw_tls(server, tls_files) as sock:
        sock.sendall(data)
        received = []
        while chunk := sock.recv(CHUNK):
            received.append(chunk)
        assert_clean_close(sock)
    return b"".join(received)


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())


def assert_refused(answer: bytes, status: int) -> None:
    assert answer.startswith(status_line(status)), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close" in head.lower()
    assert body == b"%d %s\n" % (status, HTTPStatus(status).phrase.encode())
    assert answer.count(b"HTTP/1.1 ") == 1  # one response, nothing smuggled answered


def assert_app_saw_only_a_good_request(
    server: Server, tls_files: TLSFiles, recorder: Recorder
) -> None:
    answer = exchange(server, tls_files, get(b"Connection: close"))
    assert answer.startswith(status_line(200))
    assert answer.endswith(b"\r\n\r\nx")
    assert recorder.take() == ["GET /x"]


@pytest.mark.parametrize("name", CASES.keys())
def test_hostile_request_is_refused(
    name: str, server: Server, tls_files: TLSFiles, recorder: Recorder
) -> None:
    data, status = CASES[name]
    recorder.take()
    assert_refused(exchange(server, tls_files, data), status)
    assert_app_saw_only_a_good_request(server, tls_files, recorder)


def test_405_to_connect_names_no_method(server: Server, tls_files: TLSFiles) -> None:
    answer = exchange(server, tls_files, CASES["CONNECT"][0])
    head = answer.partition(b"\r\n\r\n")[0] + b"\r\n"
    assert b"\r\nallow: \r\n" in head.lower()


def test_malformed_chunked_body_in_the_same_read_is_not_dispatched(
    server: Server, tls_files: TLSFiles, recorder: Recorder
) -> None:
    # The head is valid, the body's framing is not, and both come in one TLS record: the
    # request is answered 400 and the handler never runs.
    recorder.take()
    data = post(b"Transfer-Encoding: chunked", body=b"3\r\nabc\r\nnope\r\n\r\n")
    assert_refused(exchange(server, tls_files, data), 400)
    assert_app_saw_only_a_good_request(server, tls_files, recorder)


def read_response(sock: ssl.SSLSocket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(CHUNK)
        assert chunk, received
        received += chunk
    return received


@pytest.mark.parametrize(
    ("first", "status"),
    [
        (b"GET /" + b"a" * 9000, 414),  # the request line, not yet ended
        (get(*(b"X-%d: a" % i for i in range(101)))[:-2], 431),  # no blank line yet
    ],
    ids=["request line", "header count"],
)
def test_limits_apply_before_the_head_is_complete(
    first: bytes, status: int, server: Server, tls_files: TLSFiles
) -> None:
    with raw_tls(server, tls_files) as sock:
        sock.sendall(first)
        answer = read_response(sock)
        while chunk := sock.recv(CHUNK):
            answer += chunk
        assert_clean_close(sock)
    assert_refused(answer, status)


# --- odd but valid ---------------------------------------------------------------------------


def ok(server: Server, tls_files: TLSFiles, data: bytes) -> bytes:
    answer = exchange(server, tls_files, data)
    assert answer.startswith(status_line(200)), answer[:200]
    return answer


CLOSE = b"Connection: close"


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"https://localhost/echo-path", "/echo-path"),
        (b"https://LOCALHOST:443/echo-path?q=1", "/echo-path"),
        (b"/a/../echo-path", "/echo-path"),
        (b"/./echo-path", "/echo-path"),
        (b"/a/%2e%2e/echo-path", "/echo-path"),
    ],
)
def test_targets_are_routed_on_their_normalised_path(
    target: bytes, path: str, server: Server, tls_files: TLSFiles, recorder: Recorder
) -> None:
    recorder.take()
    answer = ok(server, tls_files, get(CLOSE, target=target))
    assert answer.endswith(b"\r\n\r\n" + path.encode())
    assert recorder.take() == [f"GET {path}"]


def test_options_asterisk_lists_the_methods(server: Server, tls_files: TLSFiles) -> None:
    answer = ok(server, tls_files, get(CLOSE, target=b"*", method=b"OPTIONS"))
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert b"\r\nallow: get, head, post\r\n" in head


def test_trailers_are_accepted_and_the_body_read(server: Server, tls_files: TLSFiles) -> None:
    body = b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n"
    answer = ok(server, tls_files, post(b"Transfer-Encoding: chunked", CLOSE, body=body))
    assert answer.endswith(b"\r\n\r\n5")


def test_http10_request_without_host(server: Server, tls_files: TLSFiles) -> None:
    assert ok(server, tls_files, b"GET /x HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nx")


# --- logging ---------------------------------------------------------------------------------


def test_refused_input_gets_an_access_log_line(
    tls_files: TLSFiles, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="framework")
    with serve_in_thread(recorder, tls_files, access_log=True) as server:
        assert_refused(exchange(server, tls_files, CASES["invalid method"][0]), 400)
        assert_refused(exchange(server, tls_files, CASES["CL.TE smuggling"][0]), 400)
    lines = [r.getMessage() for r in caplog.records if r.name == "framework.access"]
    # The status, the bytes of the answer, no duration (no request), the TLS fields.
    rejected = re.compile(r'^127\.0\.0\.1 - "-" 400 [1-9]\d* - TLSv1\.[23] localhost -$')
    assert len(lines) == 2
    assert all(rejected.match(line) for line in lines), lines
    # A peer's misbehaviour: a line at DEBUG, never a traceback or a warning.
    server_records = [r for r in caplog.records if r.name == "framework.server"]
    assert all(r.levelno <= logging.INFO and r.exc_info is None for r in server_records)
    assert any("Content-Length and Transfer-Encoding" in r.getMessage() for r in server_records)


def test_garbage_instead_of_a_client_hello_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
        try:
            while sock.recv(CHUNK):
                pass
        except ConnectionResetError:
            pass  # an abort is a close too
    # The server goes on serving.
    assert not [c for c in server.connections if c.task is not None]
