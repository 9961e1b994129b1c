"""The server end to end over real TLS on loopback, with stdlib clients and raw TLS sockets.

``http.client`` with the test CA covers ordinary use; raw TLS sockets (parsed with an h11
client connection) cover what ``http.client`` will not send: pipelining, malformed input,
``Expect: 100-continue`` and clients that stop reading or writing.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import logging
import select
import socket
import ssl
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import pytest
from cryptography import x509

from framework import App, HTTPError, Request, Response, StreamingResponse
from framework.errors import CertificateError
from framework.server import Server, ServerProtocol
from framework.tls import CertificateStore
from tests.conftest import TLSFiles, serve_in_thread

TIMEOUT = 10.0
CHUNK = 64 * 1024


# --- the app under test -----------------------------------------------------------------------


@dataclass
class Gate:
    """A handler waits on ``release`` after setting ``started``; the test holds the other end."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def wait(self) -> None:
        self.started.set()
        if not await asyncio.to_thread(self.release.wait, TIMEOUT):
            raise RuntimeError("the test never released the gate")


@dataclass
class Producer:
    """Counts the chunks a streaming body has produced, for the write back-pressure test."""

    chunks: int = 0
    condition: threading.Condition = field(default_factory=threading.Condition)

    def produced(self) -> None:
        with self.condition:
            self.chunks += 1
            self.condition.notify_all()

    def _moved(self, seen: int) -> Callable[[], bool]:
        return lambda: self.chunks != seen

    def wait_until_quiet(self, quiet: float, limit: int) -> int:
        """The chunk count once no chunk was produced for ``quiet`` seconds."""
        with self.condition:
            for _ in range(limit):
                if not self.condition.wait_for(self._moved(self.chunks), timeout=quiet):
                    return self.chunks
        raise AssertionError(f"the producer never stalled ({self.chunks} chunks)")


def chunk(i: int) -> bytes:
    return bytes([i % 251]) * CHUNK


@dataclass
class Harness:
    app: App
    gate: Gate
    producer: Producer


def make_app() -> Harness:
    app = App()
    gate = Gate()
    producer = Producer()

    @app.get("/")
    async def hello(request: Request) -> str:
        return "Hello, world!"

    @app.get("/echo/{word}")
    async def echo(request: Request, word: str) -> str:
        return word

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        async for piece in request.stream():
            digest.update(piece)
            size += len(piece)
        return {
            "size": size,
            "sha256": digest.hexdigest(),
            "chunked": request.headers.get("transfer-encoding"),
        }

    @app.post("/gated-upload")
    async def gated_upload(request: Request) -> dict[str, int]:
        await gate.wait()
        return {"size": len(await request.body(max_size=1 << 30))}

    @app.post("/ignore")
    async def ignore(request: Request) -> str:
        return "not reading that"

    @app.get("/stream/{count:int}")
    async def stream(request: Request, count: int) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            for i in range(count):
                producer.produced()
                yield chunk(i)

        return StreamingResponse(pieces(), media_type="application/octet-stream")

    @app.get("/boom")
    async def boom(request: Request) -> str:
        raise RuntimeError("a secret in the traceback")

    @app.get("/slow")
    async def slow(request: Request) -> str:
        await gate.wait()
        return "finished"

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        tls = request.tls
        if tls is None:
            raise HTTPError(500, "no TLS")
        return {
            "client": list(request.client or ()),
            "version": tls.version,
            "cipher": tls.cipher,
            "server_name": tls.server_name,
            "alpn": tls.alpn_protocol,
            "peer": tls.peer_common_name,
        }

    return Harness(app, gate, producer)


# --- clients ------------------------------------------------------------------------------


@contextmanager
def https(
    server: Server, tls_files: TLSFiles, context: ssl.SSLContext | None = None
) -> Iterator[http.client.HTTPSConnection]:
    conn = http.client.HTTPSConnection(
        "localhost", server.port, context=context or tls_files.client_context(), timeout=TIMEOUT
    )
    try:
        yield conn
    finally:
        conn.close()


def fetch(
    conn: http.client.HTTPConnection, method: str, target: str, body: Any = None, **headers: str
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, target, body=body, headers=headers)
    response = conn.getresponse()
    return response, response.read()


@contextmanager
def raw_tls(
    server: Server,
    tls_files: TLSFiles,
    *,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
) -> Iterator[ssl.SSLSocket]:
    """A TLS socket to the server; an unclean close (no close_notify) raises on read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", server.port))
        tls = tls_files.client_context().wrap_socket(
            sock, server_hostname="localhost", suppress_ragged_eofs=False
        )
    except BaseException:
        sock.close()
        raise
    with tls:
        yield tls


class Responses:
    """Parses the responses arriving on a raw socket with an h11 client connection."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT)
        self.informational: list[h11.InformationalResponse] = []

    def next(self, method: str = "GET", target: str = "/") -> tuple[h11.Response, bytes]:
        """The next response, for a request (already written raw) of ``method``."""
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        if conn.our_state is h11.IDLE:
            # The request bytes were written by the test; tell h11 what was asked.
            conn.send(h11.Request(method=method, target=target, headers=[("Host", "localhost")]))
            conn.send(h11.EndOfMessage())
        response: h11.Response | None = None
        body = []
        for _ in range(1_000_000):
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(self.sock.recv(CHUNK))
            elif type(event) is h11.InformationalResponse:
                self.informational.append(event)
            elif type(event) is h11.Response:
                response = event
            elif type(event) is h11.Data:
                body.append(event.data)
            elif type(event) is h11.EndOfMessage:
                assert response is not None
                return response, b"".join(body)
            else:
                raise AssertionError(f"unexpected {event!r}")
        raise AssertionError("no complete response")


def header(response: h11.Response, name: str) -> str | None:
    for key, value in response.headers:
        if key == name.encode():
            return value.decode("latin-1")
    return None


def assert_clean_close(sock: ssl.SSLSocket) -> None:
    """The server closed with a TLS close_notify and sent nothing more."""
    assert sock.recv(CHUNK) == b""


def request_bytes(method: str, target: str, *headers: str, body: bytes = b"") -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: localhost", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def only_connection(server: Server) -> ServerProtocol:
    (conn,) = list(server.connections)
    return conn


# --- tests --------------------------------------------------------------------------------


def test_server_hello_over_https(tls_files: TLSFiles, loop_name: str) -> None:
    harness = make_app()
    with serve_in_thread(harness.app, tls_files, loop=loop_name) as server:
        with https(server, tls_files) as conn:
            response, body = fetch(conn, "GET", "/")
    assert response.status == 200
    assert body == b"Hello, world!"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "13"


def test_server_sends_date_and_server_headers(tls_files: TLSFiles) -> None:
    with serve_in_thread(make_app().app, tls_files) as server, https(server, tls_files) as conn:
        response, _ = fetch(conn, "GET", "/")
    assert response.headers["server"] == "framework"
    assert response.headers["date"].endswith(" GMT")


def test_server_keep_alive_reuses_the_connection(tls_files: TLSFiles, loop_name: str) -> None:
    harness = make_app()
    with serve_in_thread(harness.app, tls_files, loop=loop_name) as server:
        with https(server, tls_files) as conn:
            seen = set()
            for word in ("a", "b", "c", "d"):
                response, body = fetch(conn, "GET", f"/echo/{word}")
                assert body == word.encode()
                assert response.headers.get("connection") is None
                assert conn.sock is not None
                seen.add(conn.sock.getsockname())
                assert len(server.connections) == 1
            assert len(seen) == 1
            assert only_connection(server).requests == 4


def test_server_pipelined_requests_answered_in_order(tls_files: TLSFiles, loop_name: str) -> None:
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files) as sock:
            words = [f"w{i}" for i in range(5)]
            sock.sendall(b"".join(request_bytes("GET", f"/echo/{w}") for w in words))
            responses = Responses(sock)
            for word in words:
                response, body = responses.next("GET", f"/echo/{word}")
                assert response.status_code == 200
                assert body == word.encode()


def test_server_pipelined_head_and_get(tls_files: TLSFiles) -> None:
    with serve_in_thread(make_app().app, tls_files) as server, raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("HEAD", "/") + request_bytes("GET", "/"))
        responses = Responses(sock)
        head, head_body = responses.next("HEAD", "/")
        get, get_body = responses.next("GET", "/")
    assert head_body == b""
    assert header(head, "content-length") == header(get, "content-length") == "13"
    assert get_body == b"Hello, world!"


def test_server_content_length_upload(tls_files: TLSFiles, loop_name: str) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with https(server, tls_files) as conn:
            response, body = fetch(conn, "POST", "/upload", body=data)
    assert response.status == 200
    assert json.loads(body) == {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "chunked": None,
    }


def test_server_chunked_upload(tls_files: TLSFiles, loop_name: str) -> None:
    pieces = [bytes([i]) * (1000 + i * 997) for i in range(40)]
    data = b"".join(pieces)
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with https(server, tls_files) as conn:
            # An iterator body without a length: http.client sends it chunked.
            response, body = fetch(conn, "POST", "/upload", body=iter(pieces))
            again, _ = fetch(conn, "GET", "/")  # and the connection is still usable
    assert json.loads(body) == {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "chunked": "chunked",
    }
    assert again.status == 200


def test_server_streaming_download_is_chunked_and_complete(
    tls_files: TLSFiles, loop_name: str
) -> None:
    count = 40
    expected = b"".join(chunk(i) for i in range(count))
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with https(server, tls_files) as conn:
            response, body = fetch(conn, "GET", f"/stream/{count}")
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.headers.get("content-length") is None
            assert body == expected
            _, again = fetch(conn, "GET", "/")
            assert again == b"Hello, world!"


@pytest.mark.slow
def test_server_write_backpressure_stalls_the_producer(tls_files: TLSFiles, loop_name: str) -> None:
    count = 512  # 32 MiB
    harness = make_app()
    expected = hashlib.sha256(b"".join(chunk(i) for i in range(count))).hexdigest()
    with serve_in_thread(harness.app, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files, rcvbuf=64 * 1024) as sock:
            sock.sendall(request_bytes("GET", f"/stream/{count}"))
            # The client reads nothing: once the socket buffers fill, the producer must stop.
            stalled_at = harness.producer.wait_until_quiet(quiet=0.5, limit=count + 1)
            assert stalled_at < count // 4, f"{stalled_at} of {count} chunks produced unread"
            assert only_connection(server).flow.is_write_paused
            with harness.producer.condition:
                assert not harness.producer.condition.wait_for(
                    lambda: harness.producer.chunks > stalled_at + 2, timeout=0.3
                )
            response, body = Responses(sock).next("GET", f"/stream/{count}")
    assert response.status_code == 200
    assert len(body) == count * CHUNK
    assert hashlib.sha256(body).hexdigest() == expected
    assert harness.producer.chunks == count


@pytest.mark.slow
def test_server_read_backpressure_pauses_reading(tls_files: TLSFiles, loop_name: str) -> None:
    total = 64 * 1024 * 1024
    piece = b"u" * 16 * 1024
    harness = make_app()
    with serve_in_thread(harness.app, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files, sndbuf=64 * 1024) as sock:
            sock.sendall(request_bytes("POST", "/gated-upload", f"Content-Length: {total}"))
            assert harness.gate.started.wait(TIMEOUT)
            # The handler does not read: push without blocking until the server stops taking.
            sock.setblocking(False)
            pushed = 0
            for _ in range(total // len(piece)):
                try:
                    pushed += sock.send(piece)
                    continue
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
                _, writable, _ = select.select([], [sock], [], 0.5)
                if not writable:
                    break
            else:
                raise AssertionError("the server read the whole body without the handler")
            assert pushed < total // 4, f"{pushed} bytes taken before the server pushed back"
            assert only_connection(server).flow.is_read_paused
            sock.setblocking(True)
            sock.settimeout(TIMEOUT)
            harness.gate.release.set()
            remaining = total - pushed
            for _ in range(remaining // len(piece) + 1):
                size = min(len(piece), remaining)
                if size == 0:
                    break
                sock.sendall(piece[:size])
                remaining -= size
            response, body = Responses(sock).next("POST", "/gated-upload")
    assert response.status_code == 200
    assert json.loads(body) == {"size": total}


def test_server_100_continue_sent_when_the_handler_reads(
    tls_files: TLSFiles, loop_name: str
) -> None:
    harness = make_app()
    with serve_in_thread(harness.app, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files) as sock:
            client = h11.Connection(h11.CLIENT)
            sock.sendall(
                client.send(
                    h11.Request(
                        method="POST",
                        target="/gated-upload",
                        headers=[
                            ("Host", "localhost"),
                            ("Content-Length", "5"),
                            ("Expect", "100-continue"),
                        ],
                    )
                )
            )
            assert harness.gate.started.wait(TIMEOUT)
            # The handler has started but not asked for the body: no go-ahead yet.
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(CHUNK)
            sock.settimeout(TIMEOUT)
            harness.gate.release.set()
            client.receive_data(sock.recv(CHUNK))
            event = client.next_event()
            assert type(event) is h11.InformationalResponse
            assert event.status_code == 100
            sock.sendall(client.send(h11.Data(data=b"hello")) + client.send(h11.EndOfMessage()))
            responses = Responses(sock)
            responses.conn = client
            response, body = responses.next()
    assert response.status_code == 200
    assert json.loads(body) == {"size": 5}
    assert header(response, "connection") is None


def test_server_100_continue_not_sent_when_answered_without_reading(
    tls_files: TLSFiles, loop_name: str
) -> None:
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(
                request_bytes("POST", "/ignore", "Content-Length: 100000", "Expect: 100-continue")
            )
            responses = Responses(sock)
            response, body = responses.next("POST", "/ignore")
            assert responses.informational == []
            assert response.status_code == 200
            assert body == b"not reading that"
            assert header(response, "connection") == "close"
            assert_clean_close(sock)


def test_server_unread_body_that_arrived_whole_keeps_the_connection(
    tls_files: TLSFiles,
) -> None:
    with serve_in_thread(make_app().app, tls_files) as server, raw_tls(server, tls_files) as sock:
        # The body came with the head, so h11 has it all: the connection can carry on.
        sock.sendall(request_bytes("POST", "/ignore", "Content-Length: 10", body=b"0123456789"))
        responses = Responses(sock)
        response, _ = responses.next("POST", "/ignore")
        assert header(response, "connection") is None
        sock.sendall(request_bytes("GET", "/"))
        assert responses.next()[1] == b"Hello, world!"


def test_server_404_405_and_head(tls_files: TLSFiles, loop_name: str) -> None:
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with https(server, tls_files) as conn:
            missing, missing_body = fetch(conn, "GET", "/nope")
            wrong, _ = fetch(conn, "DELETE", "/")
            head, head_body = fetch(conn, "HEAD", "/")
            get, get_body = fetch(conn, "GET", "/")  # the HEAD left no body bytes behind
    assert (missing.status, missing_body) == (404, b"Not Found")
    assert wrong.status == 405
    assert wrong.headers["allow"] == "GET, HEAD"
    assert head.status == 200
    assert head_body == b""
    assert head.headers["content-length"] == get.headers["content-length"] == "13"
    assert get_body == b"Hello, world!"


def test_server_handler_error_is_500_and_serving_goes_on(
    tls_files: TLSFiles, loop_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with caplog.at_level(logging.ERROR), https(server, tls_files) as conn:
            response, body = fetch(conn, "GET", "/boom")
            assert response.status == 500
            assert body == b"Internal Server Error"
            _, again = fetch(conn, "GET", "/")
            assert again == b"Hello, world!"
            with https(server, tls_files) as other:
                assert fetch(other, "GET", "/")[1] == b"Hello, world!"
    assert any("a secret in the traceback" in (r.exc_text or "") for r in caplog.records)


def test_server_bare_handler_errors_are_500(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request) -> Response:
        if request.path == "/raise":
            raise ValueError("handler bug")
        if request.path == "/wrong-type":
            return "not a Response"  # type: ignore[return-value]
        return Response("fine")

    with serve_in_thread(handler, tls_files) as server:
        with (
            caplog.at_level(logging.ERROR, logger="framework.server"),
            https(server, tls_files) as conn,
        ):
            for target in ("/raise", "/wrong-type"):
                response, body = fetch(conn, "GET", target)
                assert (response.status, body) == (500, b"Internal Server Error")
            assert fetch(conn, "GET", "/")[1] == b"fine"
    messages = [r.exc_text or "" for r in caplog.records if r.name == "framework.server"]
    assert any("ValueError: handler bug" in m for m in messages)
    assert any("expected a Response" in m for m in messages)


def test_server_oversized_head_is_431_then_closed(tls_files: TLSFiles, loop_name: str) -> None:
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("GET", "/", "X-Big: " + "a" * 20_000))
            response, body = Responses(sock).next()
            assert response.status_code == 431
            assert header(response, "connection") == "close"
            assert body.startswith(b"431")
            assert_clean_close(sock)


@pytest.mark.parametrize(
    "line",
    [b"NOT HTTP AT ALL", b"GET /\x00 HTTP/1.1", b"GET / HTTP/1.1 extra", b"G(T / HTTP/1.1"],
)
def test_server_malformed_request_line_is_400_then_closed(tls_files: TLSFiles, line: bytes) -> None:
    with serve_in_thread(make_app().app, tls_files) as server, raw_tls(server, tls_files) as sock:
        sock.sendall(line + b"\r\nHost: localhost\r\n\r\n")
        response, body = Responses(sock).next()
        assert response.status_code == 400
        assert header(response, "connection") == "close"
        assert header(response, "date") is not None
        assert body == b"400 Bad Request\n"
        assert_clean_close(sock)


def test_server_malformed_request_after_a_good_one(tls_files: TLSFiles, loop_name: str) -> None:
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("GET", "/") + b"BROKEN\r\n\r\n")
            responses = Responses(sock)
            good, _ = responses.next()
            bad, _ = responses.next()
            assert (good.status_code, bad.status_code) == (200, 400)
            assert_clean_close(sock)


def test_server_request_tls_and_client(tls_files: TLSFiles, loop_name: str) -> None:
    context = tls_files.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with https(server, tls_files, context) as conn:
            response, body = fetch(conn, "GET", "/whoami")
            assert conn.sock is not None
            local = list(conn.sock.getsockname())
            assert conn.sock.selected_alpn_protocol() == "http/1.1"
    info = json.loads(body)
    assert info["client"] == local
    assert info["version"] == "TLSv1.3"
    assert info["cipher"].startswith("TLS_")
    assert info["server_name"] == "localhost"
    assert info["alpn"] == "http/1.1"
    assert info["peer"] is None


def test_server_request_tls_on_tls12(tls_files: TLSFiles) -> None:
    context = tls_files.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    with (
        serve_in_thread(make_app().app, tls_files) as server,
        https(server, tls_files, context) as conn,
    ):
        info = json.loads(fetch(conn, "GET", "/whoami")[1])
    assert info["version"] == "TLSv1.2"
    assert info["cipher"].startswith("ECDHE-")
    assert info["alpn"] == "http/1.1"


def test_server_mutual_tls_sees_the_client_certificate(tls_files: TLSFiles, loop_name: str) -> None:
    with serve_in_thread(
        make_app().app, tls_files, loop=loop_name, client_cert="required"
    ) as server:
        with https(server, tls_files, tls_files.client_context(with_cert=True)) as conn:
            response, body = fetch(conn, "GET", "/whoami")
    assert response.status == 200
    assert json.loads(body)["peer"] == "test-client"


def test_server_mutual_tls_refuses_a_client_without_certificate(
    tls_files: TLSFiles, loop_name: str
) -> None:
    with serve_in_thread(
        make_app().app, tls_files, loop=loop_name, client_cert="required"
    ) as server:
        with https(server, tls_files) as conn, pytest.raises((ssl.SSLError, ConnectionError)):
            # TLS 1.3 finishes the client's side of the handshake first; the refusal
            # arrives as an alert on the first read.
            fetch(conn, "GET", "/whoami")


def test_server_mutual_tls_peer_certificate_object(tls_files: TLSFiles) -> None:
    seen: list[Any] = []

    async def handler(request: Request) -> Response:
        assert request.tls is not None
        seen.append(request.tls.peer_certificate)
        return Response("ok")

    with serve_in_thread(handler, tls_files, client_cert="required") as server:
        with https(server, tls_files, tls_files.client_context(with_cert=True)) as conn:
            fetch(conn, "GET", "/")
    (cert,) = seen
    assert isinstance(cert, x509.Certificate)
    assert cert.serial_number == _serial(tls_files.client_cert)


def test_server_refuses_tls_1_1(tls_files: TLSFiles) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(tls_files.ca_cert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # naming old versions warns
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    with (
        serve_in_thread(make_app().app, tls_files) as server,
        https(server, tls_files, context) as conn,
    ):
        with pytest.raises(ssl.SSLError):
            conn.connect()


def test_server_logs_a_failed_handshake_when_debug_logging_is_on(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    context = tls_files.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-GCM-SHA256")  # no forward secrecy: refused
    with caplog.at_level(logging.DEBUG, logger="framework.server"):
        with (
            serve_in_thread(make_app().app, tls_files) as server,
            https(server, tls_files, context) as conn,
        ):
            with pytest.raises(ssl.SSLError):
                conn.connect()
    # The loop's handshake reports nothing itself; the line comes before the alert is sent.
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)


def test_server_refuses_a_cipher_without_forward_secrecy(tls_files: TLSFiles) -> None:
    def tls12_context(cipher: str) -> ssl.SSLContext:
        context = tls_files.client_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(cipher)
        return context

    with serve_in_thread(make_app().app, tls_files) as server:
        # The same client offering an ECDHE suite is served: only the cipher differs.
        with https(server, tls_files, tls12_context("ECDHE-ECDSA-AES128-GCM-SHA256")) as conn:
            assert fetch(conn, "GET", "/")[0].status == 200
        with https(server, tls_files, tls12_context("AES128-GCM-SHA256")) as conn:
            with pytest.raises(ssl.SSLError):
                conn.connect()


def test_server_graceful_shutdown_finishes_in_flight_requests(
    tls_files: TLSFiles, loop_name: str
) -> None:
    harness = make_app()
    stopped: list[str] = []

    async def on_shutdown() -> None:
        stopped.append("shutdown hook")

    with serve_in_thread(harness.app, tls_files, loop=loop_name, shutdown=[on_shutdown]) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("GET", "/slow"))
            assert harness.gate.started.wait(TIMEOUT)

            async def begin_close() -> asyncio.Task[None]:
                task = asyncio.ensure_future(server.aclose(timeout=TIMEOUT))
                await asyncio.sleep(0)  # aclose runs up to its wait for in-flight requests
                return task

            closing = asyncio.run_coroutine_threadsafe(begin_close(), server.loop).result(TIMEOUT)
            assert server.is_draining
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT).close()
            harness.gate.release.set()
            response, body = Responses(sock).next("GET", "/slow")
            assert (response.status_code, body) == (200, b"finished")
            assert header(response, "connection") == "close"
            assert_clean_close(sock)
            finish = asyncio.wait_for(closing, TIMEOUT)
            asyncio.run_coroutine_threadsafe(finish, server.loop).result(TIMEOUT)
            assert stopped == ["shutdown hook"]


def test_server_graceful_shutdown_closes_idle_connections(tls_files: TLSFiles) -> None:
    with serve_in_thread(make_app().app, tls_files) as server, raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("GET", "/"))
        Responses(sock).next()
        asyncio.run_coroutine_threadsafe(server.aclose(timeout=TIMEOUT), server.loop).result(
            TIMEOUT
        )
        assert_clean_close(sock)


@pytest.mark.slow
def test_server_closes_idle_keep_alive_connections(tls_files: TLSFiles, loop_name: str) -> None:
    with serve_in_thread(
        make_app().app, tls_files, loop=loop_name, keep_alive_timeout=1.0
    ) as server:
        with raw_tls(server, tls_files) as sock:
            sock.sendall(request_bytes("GET", "/"))
            response, _ = Responses(sock).next()
            assert response.status_code == 200
            sock.settimeout(5.0)  # the timeout is 1 s, checked once a second
            assert_clean_close(sock)
        assert not server.connections or all(c.is_closed for c in server.connections)


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def _peer_serial(conn: http.client.HTTPSConnection) -> int:
    assert conn.sock is not None
    der = conn.sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_server_reload_certificate(tls_files: TLSFiles, tmp_path: Path, loop_name: str) -> None:
    renewed = tls_files.ca.issue(["localhost", "127.0.0.1"])
    renewed.write(tmp_path / "new.pem", tmp_path / "new.key")
    other = tls_files.ca.issue(["localhost"])
    other.write(tmp_path / "other.pem", tmp_path / "other.key")
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    old_serial = _serial(tls_files.server_cert)
    with serve_in_thread(make_app().app, tls_files, loop=loop_name) as server:
        with https(server, tls_files) as before:
            fetch(before, "GET", "/")
            assert _peer_serial(before) == old_serial
            server.reload_certificate(tmp_path / "new.pem", tmp_path / "new.key")
            # The open connection carries on with its session.
            assert fetch(before, "GET", "/")[1] == b"Hello, world!"
            assert _peer_serial(before) == old_serial
        with https(server, tls_files) as after:
            fetch(after, "GET", "/")
            assert _peer_serial(after) == renewed.certificate.serial_number
        for cert, key in [
            (tmp_path / "garbage.pem", tmp_path / "new.key"),
            (tmp_path / "new.pem", tmp_path / "other.key"),
            (tmp_path / "missing.pem", tmp_path / "missing.key"),
        ]:
            with pytest.raises(CertificateError):
                server.reload_certificate(cert, key)
        with https(server, tls_files) as still:
            fetch(still, "GET", "/")
            assert _peer_serial(still) == renewed.certificate.serial_number


def test_server_reload_without_store_is_an_error(tls_files: TLSFiles) -> None:
    with serve_in_thread(make_app().app, None) as server:
        with pytest.raises(RuntimeError, match="CertificateStore"):
            server.reload_certificate()


def test_server_plain_http_when_asked(loop_name: str) -> None:
    with serve_in_thread(make_app().app, None, loop=loop_name) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        try:
            response, body = fetch(conn, "GET", "/")
        finally:
            conn.close()
    assert body == b"Hello, world!"
    assert server.url.startswith("http://localhost:")


def test_server_busy_port_fails_before_the_startup_hooks(tls_files: TLSFiles) -> None:
    ran: list[str] = []

    async def hook() -> None:
        ran.append("startup")

    async def attempt(port: int) -> None:
        store = CertificateStore(tls_files.server_cert, tls_files.server_key)
        server = Server(make_app().app, port=port, ssl=store, startup=[hook])
        await server.start()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            asyncio.run(attempt(taken.getsockname()[1]))
    assert ran == []


def test_server_serves_a_connection_queued_during_the_startup_hooks(tls_files: TLSFiles) -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        hook_running = asyncio.Event()
        finish_hook = asyncio.Event()

        async def hook() -> None:
            hook_running.set()
            await finish_hook.wait()
            events.append("startup done")

        async def handler(request: Request) -> Response:
            events.append("request")
            return Response("ok")

        # A socket already listening, as a process manager hands over: connections queue.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        store = CertificateStore(tls_files.server_cert, tls_files.server_key)
        server = Server(handler, sock=listener, ssl=store, startup=[hook])
        starting = asyncio.create_task(server.start())
        await hook_running.wait()
        # A client connects during the hook (the kernel queues it: the TCP connect completes);
        # its TLS handshake and request can only be answered once the server accepts.
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        finish_hook.set()
        await starting
        reader, writer = await asyncio.open_connection(
            sock=raw, ssl=tls_files.client_context(), server_hostname="localhost"
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        await server.aclose()
        assert answer.startswith(b"HTTP/1.1 200 ")
        return events

    assert asyncio.run(scenario()) == ["startup done", "request"]


def test_server_repr_and_url(tls_files: TLSFiles) -> None:
    with serve_in_thread(make_app().app, tls_files) as server:
        assert server.url == f"https://localhost:{server.port}"
        assert repr(server) == f"<Server https://localhost:{server.port} listening connections=0>"


def test_server_invalid_response_header_is_500(
    tls_files: TLSFiles, loop_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request) -> Response:
        if request.path == "/inject":
            return Response("x", headers={"X-Bad": "a\r\nSet-Cookie: stolen=1"})
        return Response("fine")

    with serve_in_thread(handler, tls_files, loop=loop_name) as server:
        with (
            caplog.at_level(logging.ERROR, logger="framework.server"),
            https(server, tls_files) as conn,
        ):
            response, body = fetch(conn, "GET", "/inject")
            assert (response.status, body) == (500, b"Internal Server Error")
            assert response.headers.get("set-cookie") is None
            assert fetch(conn, "GET", "/")[1] == b"fine"
    assert any("invalid response for GET /inject" in r.getMessage() for r in caplog.records)


def test_server_failing_body_iterator_cuts_the_connection(
    tls_files: TLSFiles, loop_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request) -> Response:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"first piece"
            raise RuntimeError("the stream broke")

        if request.path == "/broken":
            return StreamingResponse(pieces())
        return Response("fine")

    with serve_in_thread(handler, tls_files, loop=loop_name) as server:
        with caplog.at_level(logging.ERROR, logger="framework.server"):
            with (
                https(server, tls_files) as conn,
                pytest.raises((http.client.IncompleteRead, ConnectionError, ssl.SSLError)),
            ):
                fetch(conn, "GET", "/broken")
            with https(server, tls_files) as other:
                assert fetch(other, "GET", "/")[1] == b"fine"
    assert any("RuntimeError: the stream broke" in (r.exc_text or "") for r in caplog.records)


def test_server_large_in_memory_bodies_are_whole_in_every_form(
    tls_files: TLSFiles, loop_name: str
) -> None:
    # Bodies above one write go out in pieces; the bytes on the wire must not show it.
    big = bytes(range(256)) * 4097  # just over 1 MiB, not a multiple of the piece size

    async def handler(request: Request) -> Response:
        if request.path == "/framed":
            return Response(big, headers={"Content-Length": str(len(big))})
        return Response(big, media_type="application/octet-stream")

    with serve_in_thread(handler, tls_files, loop=loop_name) as server:
        with https(server, tls_files) as conn:
            for target in ("/", "/framed", "/"):
                response, body = fetch(conn, "GET", target)
                assert response.status == 200
                assert response.headers["content-length"] == str(len(big))
                assert response.headers.get("transfer-encoding") is None
                assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
            response, body = fetch(conn, "HEAD", "/")
            assert (response.headers["content-length"], body) == (str(len(big)), b"")
            assert fetch(conn, "GET", "/")[1] == big  # the HEAD left the connection in step
            assert only_connection(server).requests == 5


def test_server_access_log_has_the_status_sent(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request) -> Response:
        if request.path == "/inject":
            return Response("x", headers={"X-Bad": "a\r\nb"})
        return Response("fine", status=201)

    # The line is logged once the response is written, so after the client has it: the level
    # must hold until the server stopped (which waits for every request to finish).
    with (
        caplog.at_level(logging.INFO, logger="framework.access"),
        serve_in_thread(handler, tls_files, access_log=True) as server,
    ):
        with https(server, tls_files) as conn:
            assert fetch(conn, "GET", "/inject?q=1")[0].status == 500
            assert fetch(conn, "GET", "/ok")[0].status == 201
    lines = [r.getMessage() for r in caplog.records if r.name == "framework.access"]
    assert [line.split(" TLSv")[0].rsplit(" ", 2)[0] for line in lines] == [
        '127.0.0.1 - "GET /inject?q=1 HTTP/1.1" 500',
        '127.0.0.1 - "GET /ok HTTP/1.1" 201',
    ]


class _Upper(asyncio.Protocol):
    """What a protocol after ``101 Switching Protocols`` might be: answers in upper case."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


def test_server_connection_hands_its_transport_over(tls_files: TLSFiles, loop_name: str) -> None:
    async def handler(request: Request) -> Response:
        return Response("ok")

    async def hand_over(server: Server) -> int:
        conn = only_connection(server)
        conn.hand_over(_Upper())
        return len(server.connections)

    with serve_in_thread(handler, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files) as sock:
            # The bytes after the request arrive with it: they are the new protocol's first.
            sock.sendall(request_bytes("GET", "/") + b"early ")
            response, body = Responses(sock).next()
            assert (response.status_code, body) == (200, b"ok")
            # The response is written in the same step that ends the cycle, so the hand-over
            # below runs on a connection waiting for its next request.
            left = asyncio.run_coroutine_threadsafe(hand_over(server), server.loop).result(10)
            assert left == 0  # it left the server's connections: no timeout, no drain
            sock.sendall(b"late")
            received = b""
            while len(received) < len(b"EARLY LATE"):
                received += sock.recv(CHUNK)
            assert received == b"EARLY LATE"


def test_server_and_client_h11_only_switch_reaches_their_drivers(tls_files: TLSFiles) -> None:
    from framework import Client

    async def main() -> list[bool]:
        store = CertificateStore(tls_files.server_cert, tls_files.server_key)
        seen = []
        for h11_only in (False, True):
            async with (
                Server(make_app().app, port=0, ssl=store, h11_only=h11_only) as server,
                Client(
                    f"https://localhost:{server.port}", ca=tls_files.ca_cert, h11_only=h11_only
                ) as client,
            ):
                response = await client.get("/")
                assert response.status == 200
                (conn,) = server.connections
                pooled = client.pool
                assert pooled is not None
                (client_conn,) = pooled._connections
                seen += [conn.driver.is_plain, client_conn.driver.is_plain]
        return seen

    # The plain path serves and reads a plain GET unless switched off, on both sides.
    assert asyncio.run(main()) == [True, True, False, False]


@pytest.mark.parametrize("status", [204, 304])
def test_server_bodiless_statuses_have_no_content_length(
    tls_files: TLSFiles, loop_name: str, status: int
) -> None:
    app = App()

    @app.get("/")
    async def bodiless(request: Request) -> Response:
        return Response(b"", status=status, headers={"etag": '"v1"'})

    with serve_in_thread(app, tls_files, loop=loop_name) as server:
        with raw_tls(server, tls_files) as sock:
            responses = Responses(sock)
            for _ in range(2):  # and the connection carries the next request
                sock.sendall(request_bytes("GET", "/"))
                response, body = responses.next("GET", "/")
                assert response.status_code == status
                assert body == b""
                names = {name.lower() for name, _ in response.headers}
                assert b"content-length" not in names
                assert (b"etag", b'"v1"') in response.headers
