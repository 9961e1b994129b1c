"""A closed connection is freed at once, without waiting for the cyclic garbage collector.

Each connection's TLS state lives mostly outside Python's heap (OpenSSL's buffers, tens of
KiB), so a protocol kept alive by a reference cycle until the next full collection makes
resident memory climb under reconnects even though nothing leaks for good. With the
collector off, every protocol object must die by reference counting alone.
"""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from framework import App, Request, WebSocket
from framework.server import Server
from framework.server.protocol import ServerProtocol
from tests.conftest import TLSFiles, serve_in_thread
from tests.e2e.test_server import Responses, only_connection, raw_tls, request_bytes


def _app() -> App:
    app = App()

    @app.get("/")
    async def hello(request: Request) -> str:
        return "Hello, world!"

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    @app.post("/upload")
    async def upload(request: Request) -> str:
        return str(len(await request.body()))

    return app


@contextmanager
def _collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _wait_freed(ref: weakref.ref[ServerProtocol], server: Server) -> None:
    deadline = time.monotonic() + 5
    while (ref() is not None or server.connections) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the server thread's state, bounded by the deadline
    assert not server.connections, "the server still counts the connection as open"
    assert ref() is None, "the closed connection's protocol is still alive (a reference cycle)"


def _closed_by_server(server: Server, tls_files: TLSFiles) -> weakref.ref[ServerProtocol]:
    with raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("GET", "/", "Connection: close"))
        response, body = Responses(sock).next("GET", "/")
        assert (response.status_code, body) == (200, b"Hello, world!")
        ref = weakref.ref(only_connection(server))
    return ref


def _closed_by_client_when_idle(server: Server, tls_files: TLSFiles) -> weakref.ref[ServerProtocol]:
    with raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("GET", "/"))
        assert Responses(sock).next("GET", "/")[1] == b"Hello, world!"
        ref = weakref.ref(only_connection(server))
    return ref


def _closed_by_client_mid_body(server: Server, tls_files: TLSFiles) -> weakref.ref[ServerProtocol]:
    with raw_tls(server, tls_files) as sock:
        sock.sendall(request_bytes("POST", "/upload", "Content-Length: 100000", body=b"x" * 10))
        deadline = time.monotonic() + 5
        while not server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        ref = weakref.ref(only_connection(server))
    return ref


def _websocket_closed_by_client(server: Server, tls_files: TLSFiles) -> weakref.ref[ServerProtocol]:
    # After 101 the connection belongs to the WebSocket: the HTTP protocol that answered the
    # handshake must not be kept alive by the request it answered.
    with raw_tls(server, tls_files) as sock:
        deadline = time.monotonic() + 5
        while not server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        ref = weakref.ref(only_connection(server))
        sock.sendall(
            request_bytes(
                "GET",
                "/ws",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version: 13",
            )
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 "), head
    return ref


@pytest.mark.parametrize(
    "close",
    [
        _closed_by_server,
        _closed_by_client_when_idle,
        _closed_by_client_mid_body,
        _websocket_closed_by_client,
    ],
    ids=["server-closes", "client-closes-idle", "client-closes-mid-body", "websocket"],
)
def test_closed_connection_is_freed_without_the_collector(
    tls_files: TLSFiles,
    loop_name: str,
    close: Callable[[Server, TLSFiles], weakref.ref[ServerProtocol]],
) -> None:
    with serve_in_thread(_app(), tls_files, loop=loop_name) as server:
        with _collector_off():
            ref = close(server, tls_files)
            _wait_freed(ref, server)
