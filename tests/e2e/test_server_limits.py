"""Every limit and timeout of the server, provoked over real TLS on loopback.

One test (or more) per row of the README's "Limits and timeouts" table: each sets a short
value in the ``ServerConfig``, misbehaves as a client would, and asserts the status code sent
and the close. Waits are on events (a read returning, a log line, the server's tasks ending);
the only pauses are a trickling client's own pace.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from framework import App, ClientDisconnect, Request, Response, StreamingResponse
from framework.server import Server
from tests.conftest import TLSFiles, serve_in_thread
from tests.e2e.test_server import (
    TIMEOUT,
    Responses,
    assert_clean_close,
    header,
    raw_tls,
    request_bytes,
)

MIB = 1024 * 1024
LOOP = ["asyncio"]  # the loop the servers of the running test use (see the fixture below)


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def each_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here runs on asyncio's loop and on uvloop's."""
    LOOP[0] = request.param
    yield
    LOOP[0] = "asyncio"


# --- the app under test -----------------------------------------------------------------------


class Seen:
    """What the handlers saw, for the tests to wait on from their thread."""

    def __init__(self) -> None:
        self.disconnects: list[str] = []
        self.handler_ended = threading.Event()
        self.noticed_disconnect = threading.Event()
        self.started = threading.Event()
        self.release = threading.Event()
        self.streamed_1000 = threading.Event()


def make_app(seen: Seen) -> App:
    app = App()

    @app.post("/read")
    async def read(request: Request) -> dict[str, int]:
        try:
            return {"size": len(await request.body())}
        except ClientDisconnect as exc:
            seen.disconnects.append(exc.reason)
            raise
        finally:
            seen.handler_ended.set()

    @app.post("/stream")
    async def stream(request: Request) -> dict[str, int]:
        size = 0
        try:
            async for piece in request.stream():
                size += len(piece)
                if size >= 1000:
                    seen.streamed_1000.set()
        except ClientDisconnect as exc:
            seen.disconnects.append(exc.reason)
            raise
        finally:
            seen.handler_ended.set()
        return {"size": size}

    @app.post("/big-upload", max_body_size=3 * MIB)
    async def big_upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/hold")
    async def hold(request: Request) -> str:
        seen.started.set()
        if not await asyncio.to_thread(seen.release.wait, TIMEOUT):
            raise RuntimeError("the test never released the handler")
        return "held"

    @app.get("/long")
    async def long(request: Request) -> str:
        # A long computation that checks whether anyone still waits for it.
        seen.started.set()
        for _ in range(int(TIMEOUT / 0.01)):
            if await request.is_disconnected():
                seen.noticed_disconnect.set()
                return "nobody is listening"
            await asyncio.sleep(0.01)
        return "finished"

    @app.get("/download")
    async def download(request: Request) -> Response:
        return Response(b"d" * (64 * MIB))

    @app.get("/stream-download")
    async def stream_download(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            for _ in range(1024):
                yield b"s" * (64 * 1024)

        return StreamingResponse(pieces())

    @app.get("/{path:path}")
    async def anything(request: Request, path: str) -> str:
        return "ok"

    return app


@contextmanager
def serve(seen: Seen, tls_files: TLSFiles, **config: Any) -> Iterator[Server]:
    with serve_in_thread(make_app(seen), tls_files, loop=LOOP[0], **config) as server:
        yield server


def settle(server: Server) -> int:
    """Wait for every request task of ``server`` to end; the number of tasks left running.

    The server's own tasks (its main coroutine and its accept loop) remain.
    """

    async def wait() -> int:
        tasks = [c.task for c in list(server.connections) if c.task is not None]
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)
        for _ in range(100):
            await asyncio.sleep(0)  # let the close callbacks run
        return len(asyncio.all_tasks()) - 1

    return asyncio.run_coroutine_threadsafe(wait(), server.loop).result(TIMEOUT + 5)


def server_tasks_at_rest(server: Server) -> int:
    """The tasks an idle server runs: its thread's main coroutine and one accept loop."""
    return 1 + len(server.sockets)


def read_until_closed(sock: ssl.SSLSocket) -> tuple[int, str]:
    """Read everything until the connection ends; the bytes read and how it ended."""
    total = 0
    while True:
        try:
            data = sock.recv(1 * MIB)
        except (ssl.SSLEOFError, ConnectionError) as exc:
            return total, type(exc).__name__
        if not data:
            return total, "close_notify"
        total += len(data)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


class LogEvent(logging.Handler):
    """Sets ``event`` when a record containing ``text`` is logged (from the server's thread)."""

    def __init__(self, text: str, server: Server | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.event = threading.Event()
        self.server = server
        self.write_buffer: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            if self.server is not None:  # the stalled connection, before it is dropped
                for conn in list(self.server.connections):
                    if conn.transport is not None:
                        self.write_buffer.append(conn.transport.get_write_buffer_size())
            self.event.set()


@contextmanager
def on_log(text: str, server: Server | None = None) -> Iterator[LogEvent]:
    handler = LogEvent(text, server)
    logger = logging.getLogger("framework.server")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --- TLS handshake deadline ---------------------------------------------------------------------


def test_limits_tls_handshake_deadline_drops_a_silent_client(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, tls_handshake_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            started = time.monotonic()
            sock.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
            try:
                assert sock.recv(1024) == b""
            except ConnectionResetError:
                pass
            elapsed = time.monotonic() - started
        assert 0.4 < elapsed < 5, elapsed
        assert settle(server) == server_tasks_at_rest(server)
        assert server.open_connections == 0


# --- request head deadline ----------------------------------------------------------------------


@pytest.mark.parametrize("pace", [0.05, 0.2])
def test_limits_head_trickled_byte_by_byte_gets_408(tls_files: TLSFiles, pace: float) -> None:
    seen = Seen()
    head = request_bytes("GET", "/", *(f"X-Slow-{i}: {'a' * 50}" for i in range(100)))
    with serve(seen, tls_files, head_timeout=1.0) as server, raw_tls(server, tls_files) as sock:
        started = time.monotonic()
        for byte in head:
            sock.sendall(bytes([byte]))
            # The client's pace: one byte, then wait for the server's answer or the next byte.
            if select.select([sock], [], [], pace)[0]:
                break
        else:
            raise AssertionError("the whole trickled head was accepted")
        response, body = Responses(sock).next()
        assert response.status_code == 408
        assert header(response, "connection") == "close"
        assert body.startswith(b"408")
        assert_clean_close(sock)
        assert time.monotonic() - started < 4


def test_limits_idle_new_connection_is_closed_without_an_answer(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, keep_alive_timeout=0.5) as server:
        with raw_tls(server, tls_files) as sock:
            assert_clean_close(sock)  # nothing was asked: nothing is answered


# --- body inactivity and whole-request deadlines ------------------------------------------------


def test_limits_body_ten_bytes_then_silence_gets_408(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    with (
        caplog.at_level(logging.DEBUG),  # INFO, unless other tests used this second's lines
        serve(seen, tls_files, body_timeout=0.5) as server,
        raw_tls(server, tls_files) as sock,
    ):
        sock.sendall(request_bytes("POST", "/read", "Content-Length: 100", body=b"0123456789"))
        response, body = Responses(sock).next("POST", "/read")
        assert response.status_code == 408
        assert header(response, "connection") == "close"
        assert_clean_close(sock)
        assert seen.handler_ended.wait(TIMEOUT)
        assert seen.disconnects == ["request body not received in time (408)"]
        assert settle(server) == server_tasks_at_rest(server)
    no_tracebacks(caplog)
    assert any("no request body byte for 0.5 s (408)" in r.getMessage() for r in caplog.records)


def test_limits_body_trickle_meets_the_whole_request_deadline(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, body_timeout=5.0, request_timeout=1.0) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("POST", "/stream", "Content-Length: 1000"))
            started = time.monotonic()
            for _ in range(1000):
                sock.sendall(b"x")  # one byte at a time: never silent for body_timeout
                if select.select([sock], [], [], 0.05)[0]:
                    break
            else:
                raise AssertionError("the trickled body was accepted whole")
            response, _ = Responses(sock).next("POST", "/stream")
            assert response.status_code == 408
            assert_clean_close(sock)
            assert time.monotonic() - started < 4
        assert settle(server) == server_tasks_at_rest(server)


def test_limits_body_timeout_spares_a_handler_that_is_not_reading(tls_files: TLSFiles) -> None:
    # The body is the handler's to read: while it does not wait for the body, the client's
    # silence is no fault of the client's.
    seen = Seen()
    app = App()

    @app.post("/later")
    async def later(request: Request) -> dict[str, int]:
        seen.started.set()
        await asyncio.to_thread(seen.release.wait, TIMEOUT)
        return {"size": len(await request.body())}

    with serve_in_thread(app, tls_files, loop=LOOP[0], body_timeout=0.3) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("POST", "/later", "Content-Length: 4", body=b"ab"))
            assert seen.started.wait(TIMEOUT)
            # Longer than the body timeout, measured by the server's own log: none is written.
            with on_log("(408)") as expired:
                assert not expired.event.wait(1.0)
            seen.release.set()
            sock.sendall(b"cd")
            response, body = Responses(sock).next("POST", "/later")
            assert (response.status_code, body) == (200, b'{"size":4}')


# --- body sizes ---------------------------------------------------------------------------------


def test_limits_expect_100_continue_with_too_large_length_is_413_without_100(
    tls_files: TLSFiles,
) -> None:
    seen = Seen()
    with serve(seen, tls_files, max_body_bytes=1000) as server, raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("POST", "/read", "Content-Length: 1001", "Expect: 100-continue"))
        responses = Responses(sock)
        response, _ = responses.next("POST", "/read")
        assert response.status_code == 413
        assert responses.informational == []
        assert header(response, "connection") == "close"
        assert_clean_close(sock)


@pytest.mark.parametrize(
    ("framing", "first_bytes"),
    [
        ("Content-Length: 1000000000000000", b"abc"),
        ("Transfer-Encoding: chunked", b"FFFFFFFFFFFF\r\nabc"),
    ],
    ids=["content-length", "chunk-size"],
)
def test_limits_huge_declared_body_is_413_at_once(
    tls_files: TLSFiles, framing: str, first_bytes: bytes
) -> None:
    seen = Seen()
    with serve(seen, tls_files) as server, raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("POST", "/stream", framing, body=first_bytes))
        response, body = Responses(sock).next("POST", "/stream")
        assert response.status_code == 413
        assert header(response, "connection") == "close"
        assert body.startswith(b"413")
        assert_clean_close(sock)


def test_limits_chunked_body_is_counted_against_the_stream_limit(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, max_stream_body_bytes=1000) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("POST", "/stream", "Transfer-Encoding: chunked"))
            sock.sendall(b"1f4\r\n" + b"a" * 500 + b"\r\n")
            sock.sendall(b"1f4\r\n" + b"b" * 500 + b"\r\n")
            sock.sendall(b"1\r\nc\r\n")  # byte 1,001
            response, _ = Responses(sock).next("POST", "/stream")
            assert response.status_code == 413
            assert_clean_close(sock)
        assert settle(server) == server_tasks_at_rest(server)
        # When the whole body came in the head's read, the handler never started; otherwise
        # its read ended in ClientDisconnect.
        assert seen.disconnects in ([], ["request body too large (413)"])
        assert seen.handler_ended.is_set() == bool(seen.disconnects)


def test_limits_unlimited_stream_body(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, max_stream_body_bytes=None) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("POST", "/stream", "Content-Length: 2000000000000"))
            sock.sendall(b"z" * 1000)
            assert seen.streamed_1000.wait(TIMEOUT)  # the handler reads on: no 413
            sock.setblocking(False)
            with pytest.raises(ssl.SSLWantReadError):
                sock.recv(1024)  # and nothing was answered
            assert server.connections


def test_limits_buffered_body_over_the_limit_is_413_and_closes(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, max_body_bytes=1000) as server, raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("POST", "/read", "Transfer-Encoding: chunked"))
        sock.sendall(b"3e8\r\n" + b"a" * 1000 + b"\r\n" + b"1\r\nb\r\n")
        response, body = Responses(sock).next("POST", "/read")
        assert response.status_code == 413
        assert body == b"request body larger than 1000 bytes"
        assert header(response, "connection") == "close"
        assert_clean_close(sock)


def test_limits_route_max_body_size_overrides_the_server_limit(tls_files: TLSFiles) -> None:
    seen = Seen()
    payload = b"p" * (2 * MIB)
    with serve(seen, tls_files) as server, raw_tls(server, tls_files) as sock:
        length = f"Content-Length: {len(payload)}"
        sock.sendall(request_bytes("POST", "/big-upload", length, body=payload))
        response, body = Responses(sock).next("POST", "/big-upload")
        assert (response.status_code, body) == (200, b'{"size":2097152}')
    with serve(seen, tls_files) as server, raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("POST", "/read", length))  # the default: 1 MiB
        response, _ = Responses(sock).next("POST", "/read")
        assert response.status_code == 413
        assert_clean_close(sock)


# --- connections and requests ---------------------------------------------------------------------


def _handshake(server: Server, tls_files: TLSFiles, done: threading.Event) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    tls = tls_files.client_context().wrap_socket(sock, server_hostname="localhost")
    done.set()
    return tls


def test_limits_max_connections_waits_in_the_backlog_and_resumes(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, max_connections=2) as server:
        with raw_tls(server, tls_files) as first, raw_tls(server, tls_files) as second:
            for sock in (first, second):
                sock.sendall(request_bytes("GET", "/"))
                assert Responses(sock).next()[0].status_code == 200
            assert server.open_connections == 2
            third_done = threading.Event()
            holder: dict[str, ssl.SSLSocket] = {}
            thread = threading.Thread(
                target=lambda: holder.update(sock=_handshake(server, tls_files, third_done))
            )
            thread.start()
            # The kernel took the TCP connection into the backlog; the server did not accept
            # it, so its handshake cannot finish while two connections are open.
            assert not third_done.wait(1.0)
            assert server.open_connections == 2
            first.close()
            assert third_done.wait(TIMEOUT)
            thread.join(TIMEOUT)
            third = holder["sock"]
            with third:
                third.sendall(request_bytes("GET", "/"))
                assert Responses(third).next()[0].status_code == 200  # served, not dropped


def test_limits_max_in_flight_is_503_with_retry_after(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, max_in_flight=1, retry_after=7) as server:
        with raw_tls(server, tls_files) as busy, raw_tls(server, tls_files) as refused:
            busy.sendall(request_bytes("GET", "/hold"))
            assert seen.started.wait(TIMEOUT)
            refused.sendall(request_bytes("GET", "/"))
            response, _ = Responses(refused).next()
            assert response.status_code == 503
            assert header(response, "retry-after") == "7"
            assert_clean_close(refused)
            seen.release.set()
            assert Responses(busy).next("GET", "/hold")[0].status_code == 200
        with raw_tls(server, tls_files) as again:  # below the limit again
            again.sendall(request_bytes("GET", "/"))
            assert Responses(again).next()[0].status_code == 200


def test_limits_max_requests_per_connection_closes_after_the_last(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files, max_requests_per_connection=3) as server:
        with raw_tls(server, tls_files) as sock:
            responses = Responses(sock)
            closes = []
            for _ in range(3):
                sock.sendall(request_bytes("GET", "/"))
                response, _ = responses.next()
                assert response.status_code == 200
                closes.append(header(response, "connection"))
            assert closes == [None, None, "close"]
            assert_clean_close(sock)


# --- write stall --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/download", "/stream-download"])
def test_limits_client_that_never_reads_is_dropped_after_the_write_timeout(
    tls_files: TLSFiles, target: str
) -> None:
    seen = Seen()
    with serve(seen, tls_files, write_timeout=1.0) as server:
        with raw_tls(server, tls_files, rcvbuf=64 * 1024) as sock:
            with on_log("for the client to read", server) as stalled:
                sock.sendall(request_bytes("GET", target))
                assert stalled.event.wait(TIMEOUT)
            # At the moment it gave up, the server held at most a piece of the 64 MiB.
            assert stalled.write_buffer, "the stalled connection was not found"
            assert max(stalled.write_buffer) <= 2 * MIB, stalled.write_buffer
            received, ending = read_until_closed(sock)
            assert received < 8 * MIB, received
            assert ending in ("SSLEOFError", "ConnectionResetError"), ending
        assert settle(server) == server_tasks_at_rest(server)
        assert not server.connections
        assert server.open_connections == 0


# --- disconnects, cancellation and log noise ------------------------------------------------------


def test_limits_handler_sees_is_disconnected_and_is_not_cancelled(tls_files: TLSFiles) -> None:
    seen = Seen()
    with serve(seen, tls_files) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("GET", "/long"))
            assert seen.started.wait(TIMEOUT)
        assert seen.noticed_disconnect.wait(TIMEOUT)
        assert settle(server) == server_tasks_at_rest(server)


def test_limits_disconnect_mid_body_and_malformed_bodies_log_no_traceback(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    with caplog.at_level(logging.DEBUG), serve(seen, tls_files) as server:
        for i in range(40):
            with raw_tls(server, tls_files) as sock:
                if i % 2:
                    sock.sendall(request_bytes("POST", "/read", "Content-Length: 100", body=b"x"))
                    seen.handler_ended.clear()
                    # Leave mid-body, once the handler is waiting for the rest.
                else:
                    sock.sendall(
                        request_bytes("POST", "/read", "Transfer-Encoding: chunked")
                        + b"5\r\nabcde\r\nZZ\r\n"  # a malformed chunk size
                    )
                    try:
                        read_until_closed(sock)
                    except OSError:
                        pass
        assert settle(server) == server_tasks_at_rest(server)
    no_tracebacks(caplog)
    framework_lines = [r for r in caplog.records if r.name.startswith("framework")]
    assert len(framework_lines) <= 3 * 40, len(framework_lines)
    assert all(len(r.getMessage()) < 300 for r in framework_lines)


def test_limits_access_log_caps_and_escapes_the_target(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    target = "/" + "t" * 7990 + "%0a%7f"
    with (
        caplog.at_level(logging.INFO, logger="framework.access"),
        serve(seen, tls_files, access_log=True) as server,
        raw_tls(server, tls_files) as sock,
    ):
        sock.sendall(b'GET /a"b\\c HTTP/1.1\r\nHost: localhost\r\n\r\n')
        assert Responses(sock).next()[0].status_code == 200
        sock.sendall(request_bytes("GET", target))
        assert Responses(sock).next()[0].status_code == 404  # a path with a newline in it
    lines = [r.getMessage() for r in caplog.records if r.name == "framework.access"]
    assert lines[0].startswith('127.0.0.1 - "GET /a\\x22b\\x5cc HTTP/1.1" 200 ')
    assert len(lines[1]) < 1200  # a 1 KiB target, and the fields after it
    assert '...[6973 more] HTTP/1.1" 404 ' in lines[1], lines[1][-80:]
